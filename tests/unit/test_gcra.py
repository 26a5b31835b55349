from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ombud.ratelimit.gcra import MICROS, GcraResult, Outcome, Quota, decide, decide_all

START_US = 1_700_000_000 * MICROS

quotas = st.builds(
    Quota,
    name=st.just("q"),
    rate=st.floats(min_value=0.05, max_value=5000, allow_nan=False, allow_infinity=False),
    burst=st.integers(min_value=1, max_value=50),
)
requests = st.lists(
    st.tuples(st.integers(min_value=0, max_value=3 * MICROS), st.integers(1, 60)),
    min_size=1,
    max_size=120,
)


def run(quota: Quota, steps: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], int, int]:
    """Feed (advance, cost) requests; return admitted (time, cost), the final TAT and time."""
    tat, now = 0, START_US
    admitted: list[tuple[int, int]] = []
    for advance, cost in steps:
        now += advance
        result = decide(quota, tat, now, cost)
        if result.allowed:
            tat = result.tat_us
            admitted.append((now, cost))
    return admitted, tat, now


@given(quotas, requests)
def test_no_window_admits_more_than_burst_plus_rate_times_its_length(
    quota: Quota, steps: list[tuple[int, int]]
) -> None:
    admitted, _, _ = run(quota, steps)
    rate = Fraction(quota.rate)
    # Relative slack for the emission interval taken as a whole microsecond (see Quota).
    slack = Fraction(1, 10**6)
    for i, (start, _) in enumerate(admitted):
        units = 0
        for end, cost in admitted[i:]:
            units += cost
            window_s = Fraction(end - start, MICROS)
            assert units <= quota.burst + rate * window_s * (1 + slack)


@given(quotas, requests, st.integers(0, 3 * MICROS), st.integers(1, 60))
def test_a_refused_request_changes_nothing(
    quota: Quota, steps: list[tuple[int, int]], advance: int, cost: int
) -> None:
    _, tat, now = run(quota, steps)
    now += advance
    result = decide(quota, tat, now, cost)
    assume(not result.allowed)
    assert result.tat_us == (tat if tat > now else 0)
    # Whatever comes next is decided as if the refused request had never arrived.
    for later, next_cost in [(0, 1), (1, cost), (MICROS, 1), (10 * MICROS, quota.burst)]:
        assert decide(quota, result.tat_us, now + later, next_cost) == decide(
            quota, tat, now + later, next_cost
        )


@given(quotas, requests, st.integers(1, 60))
def test_retry_after_is_exact(quota: Quota, steps: list[tuple[int, int]], cost: int) -> None:
    _, tat, now = run(quota, steps)
    result = decide(quota, tat, now, cost)
    assume(result.outcome is Outcome.LIMITED)
    assert result.retry_after_us is not None
    assert result.retry_after_us > 0
    assert decide(quota, tat, now + result.retry_after_us, cost).allowed
    assert not decide(quota, tat, now + result.retry_after_us - 1, cost).allowed


@given(st.integers(1, 100_000), st.integers(1, 50), st.integers(0, 200))
def test_steady_traffic_at_exactly_the_rate_is_always_admitted(
    interval_us: int, burst: int, prior: int
) -> None:
    quota = Quota("q", MICROS / interval_us, burst)
    assert quota.interval_us == interval_us
    tat, now = 0, START_US
    # However much of the burst was just spent, traffic at the rate from then on is admitted.
    for _ in range(min(prior, burst)):
        tat = decide(quota, tat, now, 1).tat_us
    now += interval_us
    for _ in range(300):
        result = decide(quota, tat, now, 1)
        assert result.allowed
        tat, now = result.tat_us, now + interval_us


@given(quotas, st.integers(1, 10**6), st.integers(0, 10 * MICROS))
def test_a_cost_above_the_burst_is_always_refused_with_its_reason(
    quota: Quota, extra: int, tat_offset: int
) -> None:
    result = decide(quota, START_US + tat_offset, START_US, quota.burst + extra)
    assert result.outcome is Outcome.COST_EXCEEDS_BURST
    assert result.retry_after_us is None
    assert not result.allowed


def test_a_full_bucket_admits_exactly_the_burst_at_once() -> None:
    quota = Quota("per-key", 50, 100)
    tat = 0
    results: list[GcraResult] = []
    for _ in range(101):
        results.append(decide(quota, tat, START_US, 1))
        if results[-1].allowed:
            tat = results[-1].tat_us
    assert [r.remaining for r in results[:3]] == [99, 98, 97]
    assert sum(r.allowed for r in results) == 100
    refused = results[-1]
    assert refused.outcome is Outcome.LIMITED
    assert refused.remaining == 0
    assert refused.retry_after_us == 20_000
    assert refused.reset_after_us == 2 * MICROS


def test_weighted_costs_take_that_many_units() -> None:
    quota = Quota("tokens", 100, 1000, unit="tokens")
    first = decide(quota, 0, START_US, 600)
    assert first.allowed
    assert first.remaining == 400
    second = decide(quota, first.tat_us, START_US, 600)
    assert second.outcome is Outcome.LIMITED
    assert second.retry_after_us == 2 * MICROS


def test_decide_all_admits_only_when_every_key_admits() -> None:
    wide, narrow = Quota("wide", 10, 10), Quota("narrow", 1, 1)
    results, admitted = decide_all([(wide, 0), (narrow, 0)], START_US)
    assert admitted
    results, admitted = decide_all(
        [(wide, results[0].tat_us), (narrow, results[1].tat_us)], START_US
    )
    assert not admitted
    assert [r.outcome for r in results] == [Outcome.ALLOWED, Outcome.LIMITED]


def test_emission_interval_rounds_up_but_ignores_float_noise() -> None:
    assert Quota("q", 50, 1).interval_us == 20_000
    assert Quota("q", 1e6 / 3, 1).interval_us == 3
    assert Quota("q", 3, 1).interval_us == 333_334
    assert Quota("q", 50, 100).window_s == 2


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1, 1), (float("nan"), 1), (1, 0), (1e-9, 10**6)]
)
def test_invalid_quotas_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="quota"):
        Quota("q", rate, burst)


def test_cost_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cost"):
        decide(Quota("q", 1, 1), 0, START_US, 0)
