"""The provider's key set: caching, refetch on an unknown kid with a floor, rotation, outages,
and what a key set may contain. Time is a FrozenClock; the server is local."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ombud.config import OidcSettings, Settings
from ombud.core.clock import FrozenClock
from ombud.core.errors import Unauthenticated
from ombud.identity.jwks import JwksUnavailable, key_algorithms, parse_key_set
from ombud.identity.oidc import TokenVerifier, build_token_verifier
from ombud.identity.tables import TenantRow
from tests.oidc_support import AUDIENCE, ISSUER, JwksServer, SigningKeyPair, claims, mint, rsa_key

pytestmark = pytest.mark.anyio

DEMO = TenantRow(
    id="ten_demo", slug="demo", name="Demo", tier="standard", created_at=datetime(2026, 1, 1)
)
FLOOR = 30.0
TTL = 600.0
ALLOWED = frozenset({"RS256", "PS256", "ES256", "EdDSA"})


class Tenants:
    async def tenant_by_slug(self, slug: str) -> TenantRow | None:
        return DEMO if slug == "demo" else None


@pytest.fixture(scope="module")
def old_key() -> SigningKeyPair:
    return rsa_key(kid="2026-01")


@pytest.fixture(scope="module")
def new_key() -> SigningKeyPair:
    return rsa_key(kid="2026-02")


@pytest.fixture
def jwks(old_key: SigningKeyPair) -> Iterator[JwksServer]:
    with JwksServer(keys=[old_key]).running() as server:
        yield server


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


def make_verifier(url: str, clock: FrozenClock, **changes: Any) -> TokenVerifier:
    options: dict[str, Any] = {
        "jwks_cache_ttl_s": TTL,
        "jwks_min_refetch_interval_s": FLOOR,
        **changes,
    }
    oidc = OidcSettings(issuer=ISSUER, audience=[AUDIENCE], jwks_url=url, **options)
    verifier = build_token_verifier(Settings(oidc=oidc), clock)
    assert verifier is not None
    return verifier


@pytest.fixture
def verifier(jwks: JwksServer, clock: FrozenClock) -> TokenVerifier:
    return make_verifier(jwks.url, clock)


def token(key: SigningKeyPair, clock: FrozenClock, kid: str | None = None) -> str:
    return mint(key, claims(clock.now().timestamp()), headers={"kid": kid or key.kid})


async def accepted(verifier: TokenVerifier, jwt_token: str) -> bool:
    try:
        await verifier.authenticate(jwt_token, Tenants())
    except Unauthenticated:
        return False
    return True


async def detail_of(verifier: TokenVerifier, jwt_token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        await verifier.authenticate(jwt_token, Tenants())
    return info.value.detail


async def test_keys_are_fetched_once_and_cached(
    verifier: TokenVerifier, jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair
) -> None:
    for _ in range(5):
        assert await accepted(verifier, token(old_key, clock))
    assert jwks.fetches == 1 == verifier.keys.fetches


async def test_cache_expires_after_its_ttl(
    verifier: TokenVerifier, jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair
) -> None:
    assert await accepted(verifier, token(old_key, clock))
    clock.advance(TTL)
    assert await accepted(verifier, token(old_key, clock))
    assert jwks.fetches == 2


async def test_unknown_kid_refetches_once_then_respects_the_floor(
    verifier: TokenVerifier, jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair
) -> None:
    assert await accepted(verifier, token(old_key, clock))
    clock.advance(FLOOR)

    assert "unknown key" in await detail_of(verifier, token(old_key, clock, kid="made-up-1"))
    assert jwks.fetches == 2  # one refetch for the unknown kid
    assert "unknown key" in await detail_of(verifier, token(old_key, clock, kid="made-up-2"))
    assert jwks.fetches == 2  # a second unknown kid within the floor: no fetch
    assert await accepted(verifier, token(old_key, clock))  # known keys keep working

    clock.advance(FLOOR)
    await detail_of(verifier, token(old_key, clock, kid="made-up-3"))
    assert jwks.fetches == 3


async def test_a_flood_of_random_kids_causes_one_fetch(
    verifier: TokenVerifier, jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair
) -> None:
    tokens = [token(old_key, clock, kid=f"random-{i}") for i in range(50)]
    results = await asyncio.gather(*(accepted(verifier, t) for t in tokens))
    assert not any(results)
    assert jwks.fetches == 1


async def test_key_rotation_is_picked_up_and_retired_keys_dropped(
    verifier: TokenVerifier,
    jwks: JwksServer,
    clock: FrozenClock,
    old_key: SigningKeyPair,
    new_key: SigningKeyPair,
) -> None:
    assert await accepted(verifier, token(old_key, clock))
    clock.advance(FLOOR)
    jwks.keys = [new_key]  # the provider rotates: the new key appears, the old one goes

    assert await accepted(verifier, token(new_key, clock))
    assert jwks.fetches == 2
    assert "unknown key" in await detail_of(verifier, token(old_key, clock))


async def test_provider_down_is_401_then_recovers(
    verifier: TokenVerifier, jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair
) -> None:
    jwks.status = 503
    assert "unavailable" in await detail_of(verifier, token(old_key, clock))
    assert "unavailable" in await detail_of(verifier, token(old_key, clock))
    assert jwks.fetches == 1  # failures wait for the floor too

    jwks.status = 200
    clock.advance(FLOOR)
    assert await accepted(verifier, token(old_key, clock))
    assert jwks.fetches == 2


async def test_failed_refresh_keeps_fresh_keys_and_fails_closed_after_ttl(
    verifier: TokenVerifier, jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair
) -> None:
    assert await accepted(verifier, token(old_key, clock))
    jwks.status = 500
    clock.advance(FLOOR)
    await detail_of(verifier, token(old_key, clock, kid="unknown"))  # refetch fails
    assert await accepted(verifier, token(old_key, clock))  # still within the TTL

    clock.advance(TTL)
    assert "unavailable" in await detail_of(verifier, token(old_key, clock))


async def test_nothing_listening_is_401(clock: FrozenClock, old_key: SigningKeyPair) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = make_verifier(f"http://127.0.0.1:{port}/jwks.json", clock)
    assert "unavailable" in await detail_of(verifier, token(old_key, clock))


async def test_oversized_key_set_is_refused(
    jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair
) -> None:
    document = {"keys": [old_key.jwk()], "padding": "x" * 4096}
    jwks.body = json.dumps(document).encode()
    verifier = make_verifier(jwks.url, clock, jwks_max_bytes=2048)
    assert "unavailable" in await detail_of(verifier, token(old_key, clock))


async def test_slow_provider_times_out(
    jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair
) -> None:
    jwks.delay_s = 2.0
    verifier = make_verifier(jwks.url, clock, jwks_fetch_timeout_s=0.2)
    started = time.monotonic()
    assert "unavailable" in await detail_of(verifier, token(old_key, clock))
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"keys": "none"}', b'{"keys": []}'], ids=str
)
async def test_broken_key_sets_verify_nothing(
    jwks: JwksServer, clock: FrozenClock, old_key: SigningKeyPair, body: bytes
) -> None:
    jwks.body = body
    verifier = make_verifier(jwks.url, clock)
    assert not await accepted(verifier, token(old_key, clock))


def test_key_set_keeps_only_public_signature_keys(old_key: SigningKeyPair) -> None:
    good = old_key.jwk()
    private = {**rsa_key(kid="priv").jwk(), "d": "AQAB"}
    encryption = {**rsa_key(kid="enc").jwk(), "use": "enc"}
    declared_hs = {**rsa_key(kid="hs").jwk(), "alg": "HS256"}
    symmetric = {"kty": "oct", "kid": "oct", "k": "c2VjcmV0"}
    no_kid = {k: v for k, v in rsa_key().jwk().items() if k != "kid"}
    duplicate = {**rsa_key().jwk(), "kid": good["kid"]}
    document = {"keys": [good, private, encryption, declared_hs, symmetric, no_kid, duplicate]}

    keys = parse_key_set(json.dumps(document).encode(), ALLOWED)

    assert list(keys) == [good["kid"]]
    assert keys[good["kid"]].algorithms == {"RS256"}


def test_short_rsa_keys_are_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = SigningKeyPair("weak", "RS256", rsa.generate_private_key(65537, 1024))
    assert parse_key_set(json.dumps({"keys": [weak.jwk()]}).encode(), ALLOWED) == {}


def test_unparseable_documents_raise() -> None:
    for body in (b"{", b"[1]", b'{"keys": 1}'):
        with pytest.raises(JwksUnavailable):
            parse_key_set(body, ALLOWED)


@pytest.mark.parametrize(
    ("jwk", "expected"),
    [
        ({"kty": "RSA"}, {"RS256", "PS256"}),
        ({"kty": "RSA", "alg": "PS256"}, {"PS256"}),
        ({"kty": "RSA", "alg": "ES256"}, set()),
        ({"kty": "RSA", "alg": "HS256"}, set()),
        ({"kty": "EC", "crv": "P-256"}, {"ES256"}),
        ({"kty": "EC", "crv": "P-384"}, set()),  # ES384 not on the allow-list
        ({"kty": "OKP", "crv": "Ed25519"}, {"EdDSA"}),
        ({"kty": "oct", "alg": "HS256"}, set()),
        ({"kty": "XYZ"}, set()),
    ],
)
def test_key_algorithms_follow_the_key(jwk: dict[str, object], expected: set[str]) -> None:
    assert key_algorithms(jwk, ALLOWED) == expected
