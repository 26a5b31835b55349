"""Retry backoff and cron next-run computation: pure functions, checked as properties."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ombud.jobs.retry import backoff_ceiling, backoff_delay
from ombud.jobs.schedules import ScheduleSpec, next_run, run_key, validate_cron

bases = st.floats(min_value=0.01, max_value=100)
maxima = st.floats(min_value=0.01, max_value=86400)
attempts = st.integers(min_value=1, max_value=200)


@given(attempt=attempts, base=bases, maximum=maxima, seed=st.integers())
def test_backoff_stays_within_zero_and_the_maximum(
    attempt: int, base: float, maximum: float, seed: int
) -> None:
    delay = backoff_delay(attempt, base_s=base, max_s=maximum, rng=random.Random(seed))
    assert 0 <= delay <= maximum


@given(attempt=attempts, base=bases, maximum=maxima, seed=st.integers())
def test_backoff_never_waits_less_than_the_previous_attempt_could(
    attempt: int, base: float, maximum: float, seed: int
) -> None:
    # The fixed half of each wait is the previous ceiling (until the maximum is reached).
    rng = random.Random(seed)
    previous = backoff_ceiling(attempt, base_s=base, max_s=maximum)
    following = backoff_delay(attempt + 1, base_s=base, max_s=maximum, rng=rng)
    assert following >= min(previous, maximum / 2) - 1e-9


@given(attempt=attempts, base=bases, maximum=maxima, seed=st.integers())
def test_backoff_grows_with_attempts_on_average(
    attempt: int, base: float, maximum: float, seed: int
) -> None:
    rng = random.Random(seed)

    def mean(n: int) -> float:
        draws = [backoff_delay(n, base_s=base, max_s=maximum, rng=rng) for _ in range(200)]
        return sum(draws) / len(draws)

    now, later = (backoff_ceiling(n, base_s=base, max_s=maximum) for n in (attempt, attempt + 2))
    if later < 1.5 * now:
        assert later == maximum  # near the cap the waits stop growing
    else:
        assert mean(attempt + 2) > mean(attempt)


def test_backoff_doubles_then_caps() -> None:
    ceilings = [backoff_ceiling(a, base_s=2, max_s=20) for a in range(1, 7)]
    assert ceilings == [2, 4, 8, 16, 20, 20]
    assert backoff_ceiling(10_000, base_s=2, max_s=20) == 20


minutes = st.one_of(st.none(), st.integers(0, 59))
hours = st.one_of(st.none(), st.integers(0, 23))
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(minute=minutes, hour=hours, after=instants)
def test_next_run_is_the_first_matching_minute_after(
    minute: int | None, hour: int | None, after: datetime
) -> None:
    expression = f"{'*' if minute is None else minute} {'*' if hour is None else hour} * * *"
    result = next_run(expression, after)

    def matches(at: datetime) -> bool:
        return (minute is None or at.minute == minute) and (hour is None or at.hour == hour)

    assert result > after
    assert result.utcoffset() == timedelta(0)
    assert (result.second, result.microsecond) == (0, 0)
    assert matches(result)
    assert result - after <= timedelta(days=1)
    # No matching minute was skipped between ``after`` and the result.
    candidate = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while candidate < result:
        assert not matches(candidate)
        candidate += timedelta(minutes=1)


def test_nightly_at_two_utc() -> None:
    at = datetime(2026, 5, 4, 1, 59, 59, 999_999, tzinfo=UTC)
    assert next_run("0 2 * * *", at) == datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
    assert next_run("0 2 * * *", datetime(2026, 5, 4, 2, 0, tzinfo=UTC)) == datetime(
        2026, 5, 5, 2, 0, tzinfo=UTC
    )


def test_run_keys_identify_one_run_of_one_schedule() -> None:
    at = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
    assert run_key("prune", at) == "schedule:prune:2026-05-04T02:00:00Z"
    assert run_key("prune", at) != run_key("prune", at + timedelta(days=1))


@pytest.mark.parametrize("bad", ["", "* * * *", "0 0 2 * * *", "61 * * * *", "0 2 * * FUNDAY"])
def test_invalid_cron_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        validate_cron(bad)
    with pytest.raises(ValueError, match="cron"):
        ScheduleSpec("s", "k", bad)


def test_cron_is_normalised() -> None:
    assert validate_cron("  0   2 * *  * ") == "0 2 * * *"
