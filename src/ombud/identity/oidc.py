"""Bearer JWTs from an OpenID Connect provider, verified and mapped to a :class:`Principal`.

What a token must show, in order: a size within bounds; an algorithm from the allow-list
(asymmetric only, so never ``none`` nor an HS* shared secret); critical header extensions none;
a ``kid`` naming a key from the provider's key set (:mod:`ombud.identity.jwks`) whose declared or
implied algorithms include the token's; a valid signature; ``iss`` equal to the issuer; an
``aud`` holding a configured audience; ``exp``, ``sub`` and the tenant claim present; and, on
the injected clock with ``leeway_s`` of skew, ``exp`` not passed and ``nbf``/``iat`` not in the
future. URLs in the token's header (``jku``, ``x5u``) and embedded keys (``jwk``) are ignored:
keys come from the configured key set only.

JWT principals have no database row: everything about them is in the token, and their id is
derived from issuer and subject, so it is stable across tokens and usable as a rate-limit key.
Only the tenant is looked up, and a token naming an unknown tenant is refused.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import jwt

from ombud.config import OidcSettings, Settings
from ombud.core.clock import Clock
from ombud.core.errors import Unauthenticated
from ombud.identity.jwks import HttpJwksFetcher, JwksCache, JwksFetcher, SigningKey
from ombud.identity.principal import Principal, PrincipalKind
from ombud.identity.tables import TenantRow

# Three base64url segments; the signature may be empty (``alg: none``), so that such a token
# still reaches the verifier and is refused for what it is. API keys never contain a dot.
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}$")
_PLAIN_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@|:+\-]*$")
_PRINCIPAL_ID_MAX = 64  # the width of the actor and principal_id columns
_MAX_KID = 256
# Claims about the token itself rather than the caller: not kept as principal attributes.
_TOKEN_MECHANICS = frozenset({"exp", "nbf", "iat", "jti", "sub"})
_DECODE_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidAlgorithmError, "token algorithm is not allowed"),
    (jwt.exceptions.InvalidSubjectError, "token subject is invalid"),
)


def looks_like_jwt(token: str) -> bool:
    """Whether a presented credential has the shape of a compact JWS (and so is no API key)."""
    return bool(_JWT_SHAPE.match(token))


def principal_id(issuer: str, subject: str) -> str:
    """A stable id for a token subject: ``oidc:<issuer hash>:<sub>``.

    Subjects that are long or unusual are hashed (marked ``#``), so the id always fits the
    64-character id columns and cannot collide with a plain subject.
    """
    prefix = f"oidc:{hashlib.sha256(issuer.encode()).hexdigest()[:8]}:"
    if len(prefix) + len(subject) <= _PRINCIPAL_ID_MAX and _PLAIN_SUBJECT.match(subject):
        return prefix + subject
    return f"{prefix}#{hashlib.sha256(subject.encode()).hexdigest()[:40]}"


class TenantLookup(Protocol):
    """Finds a tenant by slug (:class:`~ombud.identity.repository.IdentityRepository` does)."""

    async def tenant_by_slug(self, slug: str) -> TenantRow | None: ...


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a token proved, before its tenant is looked up."""

    principal_id: str
    subject: str
    tenant_slug: str
    roles: frozenset[str]
    kind: PrincipalKind
    attributes: Mapping[str, object]


class TokenVerifier:
    """Verifies bearer JWTs against the provider's key set and maps their claims.

    Args:
        settings: The OIDC settings; ``issuer`` and ``audience`` must be set.
        keys: The provider's key set.
        clock: Wall-clock time for ``exp``, ``nbf`` and ``iat``.
    """

    def __init__(self, settings: OidcSettings, keys: JwksCache, clock: Clock) -> None:
        if not settings.issuer or not settings.audience:
            raise ValueError("OIDC needs an issuer and at least one audience")
        self._settings = settings
        self._issuer = settings.issuer
        self._allowed = frozenset(settings.algorithms)
        self._keys = keys
        self._clock = clock

    @property
    def keys(self) -> JwksCache:
        return self._keys

    async def authenticate(self, token: str, tenants: TenantLookup) -> Principal:
        """Verify ``token`` and resolve its tenant; :class:`Unauthenticated` on any failure."""
        verified = await self.verify(token)
        tenant = await tenants.tenant_by_slug(verified.tenant_slug)
        if tenant is None:
            raise Unauthenticated(detail="token names a tenant that does not exist here")
        return Principal(
            id=verified.principal_id,
            name=verified.subject,
            kind=verified.kind,
            roles=verified.roles,
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            tenant_tier=tenant.tier,
            credential_id=verified.principal_id,
            attributes=verified.attributes,
        )

    async def verify(self, token: str) -> VerifiedToken:
        """Check header, key, signature and claims; no database access."""
        if len(token) > self._settings.max_token_bytes:
            raise Unauthenticated(detail="token is too large")
        alg, kid = self._header(token)
        signing_key = await self._keys.key(kid)
        if alg not in signing_key.algorithms:
            # The key's own algorithm decides: an RSA key never verifies an ES or HS token.
            raise Unauthenticated(detail="token algorithm does not match its signing key")
        claims = self._decode(token, signing_key, alg)
        self._check_times(claims)
        return self._verified(claims)

    def _header(self, token: str) -> tuple[str, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated(detail="token is malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise Unauthenticated(detail="token algorithm is not allowed")
        if "crit" in header:
            # RFC 7515: a critical extension the recipient does not understand voids the token.
            raise Unauthenticated(detail="token has unsupported critical header parameters")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID:
            raise Unauthenticated(detail="token has no usable key id (kid)")
        return alg, kid

    def _decode(self, token: str, signing_key: SigningKey, alg: str) -> dict[str, object]:
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                key=signing_key.key.key,
                algorithms=[alg],
                issuer=self._issuer,
                audience=list(self._settings.audience),
                # Times are checked against the injected clock (see _check_times).
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "aud", "sub"],
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(detail=f"token has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            detail = next((d for kind, d in _DECODE_ERRORS if isinstance(exc, kind)), None)
            raise Unauthenticated(detail=detail or "token is malformed") from None
        return claims

    def _check_times(self, claims: Mapping[str, object]) -> None:
        now = self._clock.now().timestamp()
        leeway = self._settings.leeway_s
        exp = _numeric_claim(claims, "exp")
        if exp is None or now >= exp + leeway:
            raise Unauthenticated(detail="token has expired")
        nbf = _numeric_claim(claims, "nbf")
        if nbf is not None and now + leeway < nbf:
            raise Unauthenticated(detail="token is not valid yet")
        iat = _numeric_claim(claims, "iat")
        if iat is not None and iat > now + leeway:
            raise Unauthenticated(detail="token was issued in the future")

    def _verified(self, claims: Mapping[str, object]) -> VerifiedToken:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise Unauthenticated(detail="token subject is invalid")
        tenant_claim, roles_claim = self._settings.tenant_claim, self._settings.roles_claim
        tenant = claim(claims, tenant_claim)
        if tenant is None:
            raise Unauthenticated(detail=f"token has no '{tenant_claim}' claim")
        if not isinstance(tenant, str) or not _SLUG.match(tenant):
            raise Unauthenticated(detail=f"token's '{tenant_claim}' claim is not a tenant slug")
        skipped = _TOKEN_MECHANICS | {tenant_claim, roles_claim}
        return VerifiedToken(
            principal_id=principal_id(self._issuer, subject),
            subject=subject,
            tenant_slug=tenant,
            roles=_roles(claim(claims, roles_claim), roles_claim),
            kind=self._kind(claims, subject),
            attributes=MappingProxyType({k: v for k, v in claims.items() if k not in skipped}),
        )

    def _kind(self, claims: Mapping[str, object], subject: str) -> PrincipalKind:
        """A client acting for itself (``client_credentials``) is a service; anyone else a user."""
        if any(claims.get(name) == subject for name in self._settings.client_id_claims):
            return PrincipalKind.SERVICE
        marker = self._settings.service_claim
        value = claims.get(marker) if marker else None
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and v in self._settings.service_claim_values for v in values):
            return PrincipalKind.SERVICE
        return PrincipalKind.USER


def claim(claims: Mapping[str, object], name: str) -> object:
    """A claim by name, or by dotted path into nested objects (``realm_access.roles``).

    The exact name wins, since namespaced claim names (``https://example.com/roles``) contain
    dots themselves.
    """
    if name in claims:
        return claims[name]
    value: object = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _roles(value: object, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(role, str) for role in value):
        return frozenset(value)
    raise Unauthenticated(detail=f"token's '{name}' claim is not a list of roles")


def _numeric_claim(claims: Mapping[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthenticated(detail=f"token's '{name}' claim is not a NumericDate")
    return float(value)


def build_token_verifier(
    settings: Settings, clock: Clock, *, fetcher: JwksFetcher | None = None
) -> TokenVerifier | None:
    """The verifier for ``settings.oidc``, or None when OIDC is not configured.

    Args:
        settings: All settings (the OIDC group is what is read).
        clock: For token times, the key cache's TTL and its refetch floor.
        fetcher: Fetches the key set; HTTP(S) with the configured timeout and size cap if None.
    """
    oidc = settings.oidc
    if not oidc.enabled or oidc.jwks_url is None:
        return None
    keys = JwksCache(
        oidc.jwks_url,
        fetcher or HttpJwksFetcher(oidc.jwks_fetch_timeout_s, oidc.jwks_max_bytes),
        clock,
        allowed=frozenset(oidc.algorithms),
        ttl_s=oidc.jwks_cache_ttl_s,
        min_interval_s=oidc.jwks_min_refetch_interval_s,
    )
    return TokenVerifier(oidc, keys, clock)
