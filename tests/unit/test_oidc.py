"""Bearer JWT verification: claim mapping and the attacks a verifier must refuse.

Keys come from a local JWKS server (tests/oidc_support.py); time is a FrozenClock, so nothing
sleeps. Key-set caching and refetching are in test_jwks.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ombud.config import OidcSettings, Settings
from ombud.core.clock import FrozenClock
from ombud.core.errors import Unauthenticated
from ombud.identity.jwks import JwksCache
from ombud.identity.oidc import TokenVerifier, build_token_verifier, looks_like_jwt, principal_id
from ombud.identity.principal import PrincipalKind
from ombud.identity.tables import TenantRow
from tests.oidc_support import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKeyPair,
    alg_none,
    b64,
    claims,
    ec_key,
    ed25519_key,
    hs256_with_public_key,
    mint,
    rsa_key,
    tampered_payload,
    tampered_signature,
)

pytestmark = pytest.mark.anyio

DEMO = TenantRow(
    id="ten_demo", slug="demo", name="Demo", tier="standard", created_at=datetime(2026, 1, 1)
)


class Tenants:
    """An in-memory tenant lookup."""

    def __init__(self, *rows: TenantRow) -> None:
        self._rows = {row.slug: row for row in rows}

    async def tenant_by_slug(self, slug: str) -> TenantRow | None:
        return self._rows.get(slug)


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKeyPair]:
    return {"rsa": rsa_key(), "ec": ec_key(), "ed": ed25519_key()}


@pytest.fixture
def jwks(keys: dict[str, SigningKeyPair]) -> Iterator[JwksServer]:
    with JwksServer(keys=list(keys.values())).running() as server:
        yield server


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


def make_verifier(url: str, clock: FrozenClock, **changes: Any) -> TokenVerifier:
    oidc = OidcSettings(issuer=ISSUER, audience=[AUDIENCE], jwks_url=url, **changes)
    verifier = build_token_verifier(Settings(oidc=oidc), clock)
    assert verifier is not None
    return verifier


@pytest.fixture
def verifier(jwks: JwksServer, clock: FrozenClock) -> TokenVerifier:
    return make_verifier(jwks.url, clock)


def now_of(clock: FrozenClock) -> float:
    return clock.now().timestamp()


async def refused(verifier: TokenVerifier, token: str, tenants: Tenants | None = None) -> str:
    with pytest.raises(Unauthenticated) as info:
        await verifier.authenticate(token, tenants or Tenants(DEMO))
    return info.value.detail


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed"])
async def test_valid_token_becomes_a_user_principal(
    verifier: TokenVerifier, clock: FrozenClock, keys: dict[str, SigningKeyPair], kind: str
) -> None:
    token = mint(keys[kind], claims(now_of(clock)))

    principal = await verifier.authenticate(token, Tenants(DEMO))

    assert principal.id == principal_id(ISSUER, "user-1234")
    assert principal.id.startswith("oidc:")
    assert principal.id.endswith(":user-1234")
    assert principal.credential_id == principal.id
    assert (principal.tenant_id, principal.tenant_slug, principal.tenant_tier) == (
        "ten_demo",
        "demo",
        "standard",
    )
    assert principal.roles == {"analyst"}
    assert principal.kind is PrincipalKind.USER
    assert principal.attributes["email"] == "ada@example.test"
    assert principal.attributes["iss"] == ISSUER
    assert not {"exp", "nbf", "iat", "sub", "tenant", "roles"} & principal.attributes.keys()


async def test_roles_may_be_a_space_separated_string(
    verifier: TokenVerifier, clock: FrozenClock, keys: dict[str, SigningKeyPair]
) -> None:
    token = mint(keys["rsa"], claims(now_of(clock), roles="analyst reviewer"))
    assert (await verifier.authenticate(token, Tenants(DEMO))).roles == {"analyst", "reviewer"}


async def test_claims_may_be_nested_paths(jwks: JwksServer, clock: FrozenClock) -> None:
    verifier = make_verifier(jwks.url, clock, roles_claim="realm_access.roles")
    payload = claims(now_of(clock), roles=None, realm_access={"roles": ["reviewer"]})
    principal = await verifier.authenticate(mint(jwks.keys[0], payload), Tenants(DEMO))
    assert principal.roles == {"reviewer"}


async def test_missing_roles_claim_means_no_roles(
    verifier: TokenVerifier, clock: FrozenClock, keys: dict[str, SigningKeyPair]
) -> None:
    token = mint(keys["rsa"], claims(now_of(clock), roles=None))
    assert (await verifier.authenticate(token, Tenants(DEMO))).roles == frozenset()


async def test_client_credentials_token_is_a_service(
    verifier: TokenVerifier, clock: FrozenClock, keys: dict[str, SigningKeyPair]
) -> None:
    payload = claims(now_of(clock), sub="billing-job", azp="billing-job", roles=["service"])
    principal = await verifier.authenticate(mint(keys["rsa"], payload), Tenants(DEMO))
    assert principal.kind is PrincipalKind.SERVICE
    assert principal.name == "billing-job"


async def test_user_token_with_a_different_client_is_a_user(
    verifier: TokenVerifier, clock: FrozenClock, keys: dict[str, SigningKeyPair]
) -> None:
    payload = claims(now_of(clock), azp="web-console")
    principal = await verifier.authenticate(mint(keys["rsa"], payload), Tenants(DEMO))
    assert principal.kind is PrincipalKind.USER


async def test_configured_service_claim_marks_a_service(
    jwks: JwksServer, clock: FrozenClock
) -> None:
    verifier = make_verifier(
        jwks.url, clock, service_claim="gty", service_claim_values=["client-credentials"]
    )
    payload = claims(now_of(clock), sub="svc@clients", gty="client-credentials")
    principal = await verifier.authenticate(mint(jwks.keys[0], payload), Tenants(DEMO))
    assert principal.kind is PrincipalKind.SERVICE


def test_principal_ids_are_stable_and_fit_the_id_columns() -> None:
    assert principal_id(ISSUER, "alice") == principal_id(ISSUER, "alice")
    assert principal_id(ISSUER, "alice") != principal_id("https://other.test", "alice")
    long_id = principal_id(ISSUER, "x" * 300)
    assert len(long_id) <= 64
    assert ":#" in long_id
    # Subjects that could pass for a hashed one, or hold spaces, are hashed too.
    assert not principal_id(ISSUER, "#abc").endswith(":#abc")
    assert ":#" in principal_id(ISSUER, "a b")


def test_only_jwt_shaped_credentials_go_to_the_verifier() -> None:
    assert looks_like_jwt("eyJh.eyJz.c2ln")
    assert looks_like_jwt("eyJh.eyJz.")  # alg none: refused by the verifier, not misrouted
    assert not looks_like_jwt("omb_0123456789ab_" + "A" * 43)
    assert not looks_like_jwt("not-a-key")
    assert not looks_like_jwt("a.b")


async def test_within_leeway_is_accepted(
    verifier: TokenVerifier, clock: FrozenClock, keys: dict[str, SigningKeyPair]
) -> None:
    now = now_of(clock)
    late = mint(keys["rsa"], claims(now, exp=int(now) - 20))
    early = mint(keys["rsa"], claims(now, nbf=int(now) + 20, iat=int(now) + 20))
    for token in (late, early):
        assert (await verifier.authenticate(token, Tenants(DEMO))).tenant_slug == "demo"


async def test_token_expires_on_the_injected_clock(
    verifier: TokenVerifier, clock: FrozenClock, keys: dict[str, SigningKeyPair]
) -> None:
    token = mint(keys["rsa"], claims(now_of(clock)))
    await verifier.authenticate(token, Tenants(DEMO))
    clock.advance(300 + 30)  # lifetime plus leeway
    assert await refused(verifier, token) == "token has expired"


def es256_header_on_rsa_kid(keys: dict[str, SigningKeyPair], now: float) -> str:
    return mint(keys["ec"], claims(now), headers={"kid": "rsa-1"})


def embedded_attacker_jwk(keys: dict[str, SigningKeyPair], now: float) -> str:
    attacker = rsa_key(kid="attacker")
    return mint(attacker, claims(now), headers={"jwk": attacker.jwk(), "jku": "http://x.test/"})


def signed(**changes: Any) -> Callable[[dict[str, SigningKeyPair], float], str]:
    return lambda keys, now: mint(keys["rsa"], claims(now, **changes))


def relative(**offsets: int) -> Callable[[dict[str, SigningKeyPair], float], str]:
    return lambda keys, now: mint(
        keys["rsa"], claims(now, **{name: int(now) + delta for name, delta in offsets.items()})
    )


ATTACKS: dict[str, tuple[Callable[[dict[str, SigningKeyPair], float], str], str]] = {
    "alg-none": (alg_none, "token algorithm is not allowed"),
    "hs256-key-confusion": (hs256_with_public_key, "token algorithm is not allowed"),
    "alg-mismatching-key": (es256_header_on_rsa_kid, "does not match its signing key"),
    "embedded-jwk-and-jku": (embedded_attacker_jwk, "unknown key"),
    "no-kid": (lambda k, n: jwt.encode(claims(n), k["rsa"].private, "RS256"), "key id"),
    "crit-header": (
        lambda k, n: mint(k["rsa"], claims(n), headers={"crit": ["exp"], "exp": 1}),
        "token is malformed",
    ),
    "wrong-iss": (signed(iss="https://evil.test"), "issuer is not accepted"),
    "wrong-aud": (signed(aud="another-api"), "audience is not accepted"),
    "no-aud": (signed(aud=None), "'aud' claim"),
    "no-exp": (signed(exp=None), "'exp' claim"),
    "no-sub": (signed(sub=None), "'sub' claim"),
    "empty-sub": (signed(sub=" "), "subject is invalid"),
    "expired": (relative(exp=-31), "token has expired"),
    "not-yet-valid": (relative(nbf=31), "not valid yet"),
    "issued-in-future": (relative(iat=31), "issued in the future"),
    "exp-not-a-number": (signed(exp="tomorrow"), "not a NumericDate"),
    "tampered-payload": (tampered_payload, "signature is invalid"),
    "tampered-signature": (tampered_signature, "signature is invalid"),
    "no-tenant": (signed(tenant=None), "'tenant' claim"),
    "tenant-not-a-slug": (signed(tenant="../Demo"), "not a tenant slug"),
    "unknown-tenant": (signed(tenant="elsewhere"), "tenant that does not exist"),
    "roles-malformed": (signed(roles={"admin": True}), "not a list of roles"),
    "oversized": (signed(padding="x" * 9000), "too large"),
    "garbage": (lambda k, n: "abc.def.ghi", "malformed"),
    "garbage-header": (lambda k, n: "e30.e30.e30", "algorithm is not allowed"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attacks_are_refused(
    verifier: TokenVerifier, clock: FrozenClock, keys: dict[str, SigningKeyPair], name: str
) -> None:
    build, expected = ATTACKS[name]
    detail = await refused(verifier, build(keys, now_of(clock)))
    assert expected in detail


async def test_hs256_is_refused_even_with_a_symmetric_key_in_the_set(
    jwks: JwksServer, clock: FrozenClock, keys: dict[str, SigningKeyPair]
) -> None:
    """An ``oct`` key published by mistake is never used, whatever the token claims."""
    secret = b"s" * 32
    oct_key = {"kty": "oct", "kid": "oct-1", "k": b64(secret), "alg": "HS256"}
    document = {"keys": [oct_key, keys["rsa"].jwk()]}
    jwks.body = json.dumps(document).encode()
    verifier = make_verifier(jwks.url, clock)
    token = jwt.encode(claims(now_of(clock)), secret, algorithm="HS256", headers={"kid": "oct-1"})
    assert await refused(verifier, token) == "token algorithm is not allowed"


async def test_rsa_key_declaring_ps256_refuses_rs256_tokens(clock: FrozenClock) -> None:
    pss = rsa_key(kid="pss", alg="PS256")
    with JwksServer(keys=[pss]).running() as server:
        verifier = make_verifier(server.url, clock)
        good = mint(pss, claims(now_of(clock)))
        assert (await verifier.authenticate(good, Tenants(DEMO))).tenant_slug == "demo"
        bad = jwt.encode(claims(now_of(clock)), pss.private, "RS256", headers={"kid": "pss"})
        assert "does not match its signing key" in await refused(verifier, bad)


async def test_rsa_key_without_alg_accepts_the_rsa_family_only(clock: FrozenClock) -> None:
    bare = rsa_key(kid="bare", declare_alg=False)
    with JwksServer(keys=[bare]).running() as server:
        verifier = make_verifier(server.url, clock)
        for alg in ("RS256", "PS256"):
            token = jwt.encode(claims(now_of(clock)), bare.private, alg, headers={"kid": "bare"})
            assert (await verifier.authenticate(token, Tenants(DEMO))).roles == {"analyst"}


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], ["RS256", "HS512"], []])
def test_settings_refuse_symmetric_and_none_algorithms(algorithms: list[str]) -> None:
    with pytest.raises(ValueError, match="ALGORITHMS"):
        OidcSettings(algorithms=algorithms)


def test_settings_need_an_audience_when_enabled() -> None:
    with pytest.raises(ValueError, match="AUDIENCE"):
        OidcSettings(issuer=ISSUER, jwks_url="https://idp.test/jwks")
    assert build_token_verifier(Settings(oidc=OidcSettings()), FrozenClock()) is None


class StaticFetcher:
    """A key set without HTTP, for property tests that run many event loops."""

    def __init__(self, document: bytes) -> None:
        self._document = document

    async def __call__(self, url: str) -> bytes:
        return self._document


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_NOW = 1_772_366_400  # 2026-03-01 12:00 UTC


@settings(max_examples=150, deadline=None)
@given(
    kid=st.sampled_from(["rsa-1", "ec-1", "missing", ""]),
    extra_header=st.dictionaries(st.sampled_from(["typ", "jku", "x5u", "cty", "zip"]), _JSON),
    payload=st.dictionaries(
        st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat", "tenant", "roles", "azp"]),
        _JSON | st.sampled_from([ISSUER, AUDIENCE, "demo", _NOW, _NOW + 60, ["analyst"]]),
    ),
)
def test_any_signed_payload_is_a_principal_or_unauthenticated(
    keys: dict[str, SigningKeyPair],
    kid: str,
    extra_header: dict[str, object],
    payload: dict[str, object],
) -> None:
    """Whatever a correctly signed token carries, the verifier never fails in another way."""
    try:
        token = jwt.encode(payload, keys["rsa"].private, "RS256", {"kid": kid, **extra_header})
    except (jwt.PyJWTError, TypeError, ValueError):
        assume(False)
    oidc = OidcSettings(issuer=ISSUER, audience=[AUDIENCE], jwks_url="https://idp.test/jwks")
    document = json.dumps({"keys": [key.jwk() for key in keys.values()]}).encode()
    clock = FrozenClock()
    clock.advance(_NOW - clock.now().timestamp())
    cache = JwksCache(
        "https://idp.test/jwks",
        StaticFetcher(document),
        clock,
        allowed=frozenset(oidc.algorithms),
        ttl_s=60,
        min_interval_s=0,
    )
    verifier = TokenVerifier(oidc, cache, clock)
    try:
        principal = asyncio.run(verifier.authenticate(token, Tenants(DEMO)))
    except Unauthenticated:
        return
    assert principal.tenant_slug == "demo"
