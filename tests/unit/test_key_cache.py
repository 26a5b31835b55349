"""The verified-API-key cache: TTL by the injected clock, in-process revocation at once."""

from __future__ import annotations

from ombud.core.clock import FrozenClock
from ombud.identity.key_cache import ApiKeyCache
from ombud.identity.principal import Principal, PrincipalKind

PRINCIPAL = Principal(
    id="prn_1", name="k", kind=PrincipalKind.SERVICE, roles=frozenset({"analyst"}),
    tenant_id="ten_1", tenant_slug="demo", tenant_tier="standard", credential_id="key_1",
)  # fmt: skip


def test_off_by_default_and_when_ttl_is_zero() -> None:
    assert not ApiKeyCache(FrozenClock(), ttl_s=0).enabled


def test_a_verified_key_is_reused_until_its_ttl() -> None:
    clock = FrozenClock()
    cache = ApiKeyCache(clock, ttl_s=5)
    cache.put("omb_a_secret", PRINCIPAL)
    assert cache.get("omb_a_secret") == PRINCIPAL
    assert cache.get("omb_b_other") is None
    clock.advance(5.01)
    assert cache.get("omb_a_secret") is None


def test_a_revocation_in_this_process_empties_the_cache_at_once() -> None:
    cache = ApiKeyCache(FrozenClock(), ttl_s=60)
    cache.put("omb_a_secret", PRINCIPAL)
    cache.forget_all()
    assert cache.get("omb_a_secret") is None


def test_the_cache_is_bounded() -> None:
    cache = ApiKeyCache(FrozenClock(), ttl_s=60, max_entries=2)
    for token in ("t1", "t2", "t3"):
        cache.put(token, PRINCIPAL)
    assert cache.get("t1") is None
    assert cache.get("t3") == PRINCIPAL
