"""Identity rules: issuing, listing and revoking API keys, and authenticating presented keys
and (with OIDC configured) bearer JWTs.

Services never commit: the caller (a request or a CLI command) owns the unit of work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ombud.core.clock import Clock
from ombud.core.errors import InvalidRequest, NotFound, Unauthenticated
from ombud.core.ids import new_id
from ombud.identity import keys
from ombud.identity.oidc import TokenVerifier, looks_like_jwt
from ombud.identity.principal import Principal, PrincipalKind
from ombud.identity.repository import IdentityRepository, KeyRecord
from ombud.identity.schemas import ApiKeyCreated, ApiKeyRead
from ombud.identity.tables import ApiKeyRow, PrincipalRow, TenantRow

_SLUG = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}$")
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class IdentityService:
    def __init__(
        self,
        repository: IdentityRepository,
        pepper: bytes,
        clock: Clock,
        *,
        tokens: TokenVerifier | None = None,
        on_revoke: Callable[[], None] | None = None,
    ) -> None:
        """``on_revoke`` runs after a key is revoked (the container passes its key cache's
        ``forget_all``, so a revocation here applies at once in this process)."""
        self._repo = repository
        self._pepper = pepper
        self._clock = clock
        self._tokens = tokens
        self._on_revoke = on_revoke

    async def ensure_tenant(self, slug: str, *, name: str | None = None) -> TenantRow:
        """Return the tenant ``slug``, creating it on first use."""
        if not _SLUG.match(slug):
            raise InvalidRequest(detail=f"tenant slug {slug!r} must match {_SLUG.pattern}")
        tenant = await self._repo.tenant_by_slug(slug)
        if tenant is None:
            tenant = TenantRow(
                id=new_id("ten"),
                slug=slug,
                name=name or slug,
                tier="standard",
                created_at=self._clock.now(),
            )
            self._repo.add(tenant)
            await self._repo.flush()
        return tenant

    async def create_api_key(
        self,
        *,
        tenant: str,
        roles: Iterable[str],
        principal: str | None = None,
        name: str | None = None,
    ) -> ApiKeyCreated:
        """Issue a key for ``principal`` (created with ``roles`` if new) in ``tenant``."""
        role_list = sorted(set(roles))
        bad = [r for r in role_list if not _ROLE.match(r)]
        if bad:
            raise InvalidRequest(detail=f"invalid role names: {', '.join(bad)}")
        tenant_row = await self.ensure_tenant(tenant)
        issued = keys.generate()
        principal_row = await self._principal(tenant_row, principal or f"key-{issued.prefix}")
        principal_row.roles = sorted(set(principal_row.roles) | set(role_list))
        key_row = ApiKeyRow(
            id=new_id("key"),
            tenant_id=tenant_row.id,
            principal_id=principal_row.id,
            prefix=issued.prefix,
            digest=keys.digest(issued.token, self._pepper),
            name=name or principal_row.name,
            created_at=self._clock.now(),
        )
        self._repo.add(key_row)
        await self._repo.flush()
        read = _key_read((key_row, principal_row, tenant_row))
        return ApiKeyCreated(**read.model_dump(), token=issued.token)

    async def _principal(self, tenant: TenantRow, name: str) -> PrincipalRow:
        row = await self._repo.principal_by_name(tenant.id, name)
        if row is None:
            row = PrincipalRow(
                id=new_id("prn"),
                tenant_id=tenant.id,
                name=name,
                kind=PrincipalKind.SERVICE.value,
                roles=[],
                created_at=self._clock.now(),
            )
            self._repo.add(row)
            await self._repo.flush()
        return row

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyRead]:
        return [_key_read(record) for record in await self._repo.keys(tenant)]

    async def revoke_api_key(self, prefix_or_id: str) -> None:
        """Revoke a key by prefix or id; it stops working on the next request."""
        if not await self._repo.revoke(prefix_or_id, self._clock.now()):
            raise NotFound(detail=f"no live API key {prefix_or_id!r}")
        if self._on_revoke is not None:
            self._on_revoke()

    async def authenticate(self, token: str) -> Principal:
        """Resolve a presented API key or JWT to its principal, or raise :class:`Unauthenticated`.

        A credential shaped like a JWT goes to the token verifier when OIDC is configured;
        everything else is treated as an API key.
        """
        if self._tokens is not None and looks_like_jwt(token):
            return await self._tokens.authenticate(token, self._repo)
        prefix = keys.prefix_of(token)
        record = await self._repo.key_by_prefix(prefix) if prefix else None
        if record is None:
            raise Unauthenticated(detail="unknown API key")
        key, principal, tenant = record
        if not keys.verify(token, self._pepper, key.digest):
            raise Unauthenticated(detail="unknown API key")
        if key.revoked_at is not None:
            raise Unauthenticated(detail="API key revoked")
        return Principal(
            id=principal.id,
            name=principal.name,
            kind=PrincipalKind(principal.kind),
            roles=frozenset(principal.roles),
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            tenant_tier=tenant.tier,
            credential_id=key.id,
        )


def _key_read(record: KeyRecord) -> ApiKeyRead:
    key, principal, tenant = record
    return ApiKeyRead(
        id=key.id,
        prefix=key.prefix,
        name=key.name,
        tenant=tenant.slug,
        principal=principal.name,
        roles=list(principal.roles),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )
