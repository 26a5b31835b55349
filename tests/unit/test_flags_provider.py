"""The OpenFeature provider over a fake flag source: every type, every reason, tenant overrides,
sticky percentage rollouts, and the snapshot's time to live on a frozen clock."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping

import anyio
import pytest
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from sqlalchemy.exc import OperationalError

from ombud.core.clock import FrozenClock
from ombud.flags.evaluation import FlagDefinition, FlagType, VariantValue, bucket, evaluate
from ombud.flags.provider import FlagProvider, close_client, open_client

pytestmark = pytest.mark.anyio

TTL_S = 5.0


class FakeSource:
    """The flags table, as a dict the test edits; counts reads and can fail them."""

    def __init__(self, *flags: FlagDefinition) -> None:
        self.flags = {flag.key: flag for flag in flags}
        self.loads = 0
        self.failing = False

    def put(self, flag: FlagDefinition) -> None:
        self.flags[flag.key] = flag

    async def load(self) -> Mapping[str, FlagDefinition]:
        self.loads += 1
        if self.failing:
            raise OperationalError("SELECT", {}, ConnectionError("database is down"))
        return dict(self.flags)


def boolean(
    key: str,
    enabled: bool = True,
    *,
    overrides: Mapping[str, bool | str] | None = None,
    rollout: float | None = None,
) -> FlagDefinition:
    return FlagDefinition(
        key=key, type=FlagType.BOOLEAN, enabled=enabled, tenant_overrides=overrides or {},
        rollout_percent=rollout,
    )  # fmt: skip


def variants(
    key: str,
    type_: FlagType,
    values: Mapping[str, VariantValue],
    *,
    enabled: bool = True,
    overrides: Mapping[str, bool | str] | None = None,
    rollout: tuple[float, str] | None = None,
) -> FlagDefinition:
    return FlagDefinition(
        key=key, type=type_, enabled=enabled, variants=values, default_variant=next(iter(values)),
        tenant_overrides=overrides or {}, rollout_percent=rollout[0] if rollout else None,
        rollout_variant=rollout[1] if rollout else None,
    )  # fmt: skip


def ctx(
    tenant: str | None = None, key: str | None = None, principal: str | None = None
) -> EvaluationContext:
    attributes: dict[str, str] = {}
    if tenant:
        attributes["tenant"] = tenant
    if principal:
        attributes["principal"] = principal
    return EvaluationContext(targeting_key=key, attributes=attributes)


class Flags:
    def __init__(self, source: FakeSource) -> None:
        self.source = source
        self.clock = FrozenClock()
        self.provider = FlagProvider(source.load, self.clock, ttl_s=TTL_S)
        self.client: OpenFeatureClient = open_client(self.provider)


@pytest.fixture
async def flags() -> AsyncIterator[Flags]:
    source = FakeSource(
        boolean("ai.llm.chat"),
        boolean("ai.model.predict", overrides={"acme": False, "beta": True}),
        boolean("ai.dark", enabled=False, overrides={"beta": True}),
        boolean("ai.ramp", rollout=30.0),
        variants("llm.tone", FlagType.STRING, {"plain": "plain", "warm": "warm"},
                 overrides={"acme": "warm"}),
        variants("llm.max_tokens", FlagType.INTEGER, {"small": 256, "large": 4096},
                 rollout=(50.0, "large")),
        variants("model.threshold", FlagType.FLOAT, {"strict": 0.7, "lax": 0.4}),
        variants("llm.params", FlagType.OBJECT, {"std": {"temperature": 0.2, "top_p": [1, 2]}}),
        variants("llm.paused", FlagType.STRING, {"a": "a"}, enabled=False),
    )  # fmt: skip
    state = Flags(source)
    try:
        yield state
    finally:
        close_client(state.provider)


# --- every type, every reason -------------------------------------------------------------


async def test_a_boolean_flag_without_targeting_is_static(flags: Flags) -> None:
    details = await flags.client.get_boolean_details_async("ai.llm.chat", False, ctx("acme"))
    assert (details.value, details.reason, details.variant) == (True, Reason.STATIC, "on")
    assert details.error_code is None


async def test_string_integer_float_and_object_flags_resolve(flags: Flags) -> None:
    string = await flags.client.get_string_details_async("llm.tone", "x", ctx("other"))
    integer = await flags.client.get_integer_details_async("llm.max_tokens", 1, ctx())
    number = await flags.client.get_float_details_async("model.threshold", 0.5, ctx())
    obj = await flags.client.get_object_details_async("llm.params", {}, ctx())
    assert (string.value, string.reason, string.variant) == ("plain", Reason.DEFAULT, "plain")
    assert (integer.value, integer.reason) == (256, Reason.DEFAULT)  # no key: outside the split
    assert (number.value, number.reason, number.variant) == (0.7, Reason.STATIC, "strict")
    assert obj.value == {"temperature": 0.2, "top_p": [1, 2]}
    assert obj.reason == Reason.STATIC


async def test_an_integer_flag_answers_a_float_request_as_a_float(flags: Flags) -> None:
    value = await flags.client.get_float_value_async("llm.max_tokens", 0.0, ctx())
    assert value == 256.0
    assert isinstance(value, float)


async def test_a_missing_flag_serves_the_default_with_flag_not_found(flags: Flags) -> None:
    details = await flags.client.get_boolean_details_async("ai.nothing", True, ctx("acme"))
    assert (details.value, details.reason) == (True, Reason.ERROR)
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND


async def test_a_type_mismatch_serves_the_default_with_an_error(flags: Flags) -> None:
    details = await flags.client.get_string_details_async("ai.llm.chat", "fallback", ctx())
    assert (details.value, details.reason) == ("fallback", Reason.ERROR)
    assert details.error_code == ErrorCode.TYPE_MISMATCH
    assert (await flags.client.get_integer_details_async("model.threshold", 3)).value == 3


async def test_a_disabled_variant_flag_serves_the_callers_default(flags: Flags) -> None:
    details = await flags.client.get_string_details_async("llm.paused", "mine", ctx())
    assert (details.value, details.reason, details.variant) == ("mine", Reason.DISABLED, None)


# --- tenant overrides ---------------------------------------------------------------------


async def test_a_tenant_override_beats_the_default_both_ways(flags: Flags) -> None:
    client = flags.client
    acme = await client.get_boolean_details_async("ai.model.predict", True, ctx("acme", "s1"))
    other = await client.get_boolean_details_async("ai.model.predict", True, ctx("other", "s1"))
    beta = await client.get_boolean_details_async("ai.dark", False, ctx("beta", "s1"))
    rest = await client.get_boolean_details_async("ai.dark", True, ctx("other", "s1"))
    assert (acme.value, acme.reason) == (False, Reason.TARGETING_MATCH)
    assert (other.value, other.reason) == (True, Reason.DEFAULT)
    assert (beta.value, beta.reason) == (True, Reason.TARGETING_MATCH)
    assert (rest.value, rest.reason) == (False, Reason.DISABLED)
    tone = await client.get_string_details_async("llm.tone", "x", ctx("acme"))
    assert (tone.value, tone.variant, tone.reason) == ("warm", "warm", Reason.TARGETING_MATCH)


# --- percentage rollout -------------------------------------------------------------------


async def test_a_rollout_serves_about_its_share_and_each_key_always_the_same(flags: Flags) -> None:
    await flags.provider.refresh_if_stale()
    keys = [f"subject-{n}" for n in range(4000)]
    first = [flags.provider.resolve_boolean_details("ai.ramp", False, ctx(key=k)) for k in keys]
    again = [flags.provider.resolve_boolean_details("ai.ramp", False, ctx(key=k)) for k in keys]
    share = sum(d.value for d in first) / len(keys)
    assert 0.27 < share < 0.33, share
    assert [d.value for d in first] == [d.value for d in again]
    assert {d.reason for d in first} == {Reason.SPLIT}


async def test_widening_a_rollout_keeps_everyone_already_in_it() -> None:
    keys = [f"user-{n}" for n in range(1000)]

    def inside(percent: float) -> set[str]:
        flag = boolean("r", rollout=percent)
        return {k for k in keys if evaluate(flag, None, k).value is True}

    assert inside(10.0) <= inside(20.0)
    assert len(inside(0.0)) == 0
    assert len(inside(100.0)) == len(keys)


async def test_the_bucket_is_independent_per_flag() -> None:
    same = sum(bucket("a", f"k{n}") < 50 for n in range(2000)) / 2000
    both = sum((bucket("a", f"k{n}") < 50) == (bucket("b", f"k{n}") < 50) for n in range(2000))
    assert 0.45 < same < 0.55
    assert 0.45 < both / 2000 < 0.55


async def test_the_rollout_sticks_to_the_principal_without_a_targeting_key(flags: Flags) -> None:
    via_principal = await flags.client.get_boolean_details_async(
        "ai.ramp", False, ctx(principal="prn_7")
    )
    via_key = await flags.client.get_boolean_details_async("ai.ramp", False, ctx(key="prn_7"))
    assert via_principal.reason == Reason.SPLIT
    assert via_principal.value == via_key.value == (bucket("ai.ramp", "prn_7") < 30.0)


async def test_a_variant_rollout_splits_between_its_variant_and_the_default(
    flags: Flags,
) -> None:
    await flags.provider.refresh_if_stale()
    values = {
        flags.provider.resolve_integer_details("llm.max_tokens", 0, ctx(key=f"k{n}")).value
        for n in range(200)
    }
    assert values == {256, 4096}


# --- the snapshot and its time to live ----------------------------------------------------


async def test_a_change_applies_only_once_the_ttl_has_passed(flags: Flags) -> None:
    assert await flags.client.get_boolean_value_async("ai.llm.chat", False) is True
    flags.source.put(boolean("ai.llm.chat", enabled=False))
    flags.clock.advance(TTL_S - 0.1)
    for _ in range(20):
        assert await flags.client.get_boolean_value_async("ai.llm.chat", False) is True
    assert flags.source.loads == 1
    flags.clock.advance(0.1)
    assert await flags.client.get_boolean_value_async("ai.llm.chat", True) is False
    assert flags.source.loads == 2


async def test_invalidating_reloads_on_the_next_evaluation(flags: Flags) -> None:
    await flags.client.get_boolean_value_async("ai.llm.chat", False)
    flags.source.put(boolean("ai.llm.chat", enabled=False))
    flags.provider.invalidate()
    assert await flags.client.get_boolean_value_async("ai.llm.chat", True) is False


async def test_concurrent_evaluations_of_a_stale_snapshot_load_it_once(flags: Flags) -> None:
    async with anyio.create_task_group() as tasks:
        for _ in range(25):
            tasks.start_soon(flags.client.get_boolean_value_async, "ai.llm.chat", False)
    assert flags.source.loads == 1


async def test_a_failed_reload_keeps_the_last_snapshot_and_waits_a_ttl(flags: Flags) -> None:
    assert (
        await flags.client.get_boolean_value_async("ai.model.predict", True, ctx("acme")) is False
    )
    flags.source.failing = True
    flags.clock.advance(TTL_S)
    for _ in range(5):
        assert (
            await flags.client.get_boolean_value_async("ai.model.predict", True, ctx("acme"))
            is False
        )
    assert flags.source.loads == 2
    flags.source.failing = False
    flags.source.put(boolean("ai.model.predict"))
    flags.clock.advance(TTL_S)
    assert await flags.client.get_boolean_value_async("ai.model.predict", False, ctx("acme"))


async def test_the_synchronous_api_reads_the_loaded_snapshot_without_loading(
    flags: Flags,
) -> None:
    assert flags.client.get_boolean_value("ai.llm.chat", False) is False  # nothing loaded yet
    assert flags.source.loads == 0
    await flags.provider.refresh_if_stale()
    assert flags.client.get_boolean_value("ai.llm.chat", False) is True


# --- one provider per container -----------------------------------------------------------


async def test_two_providers_never_see_each_others_flags(flags: Flags) -> None:
    other = Flags(FakeSource(boolean("ai.llm.chat", enabled=False)))
    try:
        assert other.provider.domain != flags.provider.domain
        assert await flags.client.get_boolean_value_async("ai.llm.chat", False) is True
        assert await other.client.get_boolean_value_async("ai.llm.chat", True) is False
    finally:
        close_client(other.provider)
    # A client left over after close answers defaults, never the closed provider's flags.
    assert await other.client.get_boolean_value_async("ai.llm.chat", True) is True
    assert await flags.client.get_boolean_value_async("ai.llm.chat", False) is True


def test_targets_outside_the_flag_key_alphabet_are_still_gated() -> None:
    from ombud.flags.schemas import FLAG_KEY_PATTERN
    from ombud.flags.stage import flag_safe

    for target in ("meta-llama/Llama-3:8b", "gpt 4o", "credit-risk"):
        key = f"ai.llm.chat.{flag_safe(target)}"
        assert re.fullmatch(FLAG_KEY_PATTERN, key), key
    assert flag_safe("meta-llama/Llama-3:8b") == "meta-llama-llama-3-8b"
    assert flag_safe("credit-risk") == "credit-risk"


async def test_a_change_during_a_reload_is_not_lost() -> None:
    """A reload that read the flags before a change committed must not count as fresh."""
    clock = FrozenClock()
    reading = anyio.Event()
    release = anyio.Event()
    snapshots: list[Mapping[str, FlagDefinition]] = [
        {},
        {"ai.llm.chat": boolean("ai.llm.chat", enabled=False)},
    ]
    loads = 0

    async def load() -> Mapping[str, FlagDefinition]:
        nonlocal loads
        loads += 1
        snapshot = snapshots[min(loads - 1, 1)]
        if loads == 1:
            reading.set()
            await release.wait()
        return snapshot

    provider = FlagProvider(load, clock, ttl_s=TTL_S)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(provider.refresh_if_stale)
        await reading.wait()
        provider.invalidate()  # the change commits while the first load is in flight
        release.set()
    await provider.refresh_if_stale()  # not fresh: reloads at once, without waiting the ttl
    assert loads == 2
    details = provider.resolve_boolean_details("ai.llm.chat", True)
    assert details.value is False
