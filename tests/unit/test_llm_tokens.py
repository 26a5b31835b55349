"""Offline token estimates and the cost arithmetic of LLM calls."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ombud.llm.catalog import Price
from ombud.llm.tokens import (
    MESSAGE_OVERHEAD,
    estimate_embedding_tokens,
    estimate_request_tokens,
    estimate_tokens,
)
from ombud.llm.types import ChatRequest, Message, Usage
from ombud.llm.usage.budgets import window_of
from ombud.llm.usage.records import (
    cost_micro_usd,
    cost_usd,
    micro_to_usd,
    usd_to_micro,
    worst_case_cost,
    worst_case_micro_usd,
)


def test_the_empty_text_costs_nothing() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens(" ") == 0
    assert estimate_embedding_tokens([]) == 0


def test_english_prose_is_about_a_token_per_word() -> None:
    text = "The quick brown fox jumps over the lazy dog near the riverbank."
    words = len(text.split())
    assert words <= estimate_tokens(text) <= words + 4
    # Close to the 4-characters-per-token rule on prose.
    assert abs(estimate_tokens(text) - len(text) / 4) <= 4


def test_long_words_cost_a_token_per_four_characters() -> None:
    assert estimate_tokens("hello") == 1
    assert estimate_tokens("internationalization") == 5


def test_cjk_counts_a_token_per_character() -> None:
    text = "今日は良い天気ですね"
    assert estimate_tokens(text) == len(text)
    # The 4-characters-per-token rule would count about 3.
    assert estimate_tokens(text) > len(text) / 4 * 3
    assert estimate_tokens("안녕하세요") == 5


def test_code_counts_its_punctuation() -> None:
    code = 'def f(x):\n    return {"a": x[0] + 1}\n'
    tokens = estimate_tokens(code)
    # Every bracket, quote and operator is a piece of its own.
    assert tokens >= code.count("(") + code.count("{") + code.count('"') + code.count("[")
    assert tokens > len(code) / 4


def test_numbers_split_into_groups_of_three_digits() -> None:
    assert estimate_tokens("123") == 1
    assert estimate_tokens("1234567") == 3


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_more_text_never_costs_less(head: str, tail: str) -> None:
    assert estimate_tokens(head + tail) >= estimate_tokens(head)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200).filter(lambda t: not t.isspace()))
def test_visible_text_costs_at_least_one_token(text: str) -> None:
    assert estimate_tokens(text) >= 1


def test_a_request_adds_overhead_per_message() -> None:
    one = ChatRequest(model="m", messages=[Message("user", "hi")])
    two = ChatRequest(model="m", messages=[Message("user", "hi"), Message("assistant", "hi")])
    with_system = ChatRequest(model="m", messages=[Message("user", "hi")], system="be brief")
    base = estimate_request_tokens(one)
    assert base > estimate_tokens("hi")
    assert estimate_request_tokens(two) == base + estimate_tokens("hi") + MESSAGE_OVERHEAD
    assert estimate_request_tokens(with_system) == (
        base + estimate_tokens("be brief") + MESSAGE_OVERHEAD
    )


def test_embedding_inputs_add_up() -> None:
    inputs = ["first text", "second, longer text"]
    assert estimate_embedding_tokens(inputs) == sum(estimate_tokens(t) for t in inputs)


def test_a_long_prompt_is_estimated() -> None:
    text = "word " * 50_000 + "終" * 10_000
    assert estimate_tokens(text) == 60_000


PRICE = Price(input_per_mtok=3.0, output_per_mtok=15.0)


def test_dollars_per_million_tokens_are_micro_dollars_per_token() -> None:
    usage = Usage(1000, 500)
    assert cost_micro_usd(PRICE, usage) == 3 * 1000 + 15 * 500
    assert cost_usd(PRICE, usage) == Decimal("0.010500")


def test_costs_are_exact_and_rounded_up() -> None:
    price = Price(input_per_mtok=0.1, output_per_mtok=0.3)
    # 0.1 and 0.3 are not exact floats; the charge is still exact.
    assert cost_micro_usd(price, Usage(10, 10)) == 4
    assert cost_micro_usd(price, Usage(1, 0)) == 1  # 0.1 µ$ rounds up to 1
    assert cost_micro_usd(price, Usage(0, 0)) == 0
    many = sum(cost_micro_usd(price, Usage(10, 10)) for _ in range(1000))
    assert many == 4000


def test_a_free_deployment_costs_nothing() -> None:
    assert cost_micro_usd(Price(), Usage(10_000, 10_000)) == 0


def test_worst_case_bounds_every_actual_cost() -> None:
    worst = worst_case_micro_usd(PRICE, 1200, 800)
    assert worst == 3 * 1200 + 15 * 800
    assert worst_case_cost(PRICE, 1200, 800) == Decimal("0.015600")
    assert all(cost_micro_usd(PRICE, Usage(1200, out)) <= worst for out in range(0, 801, 50))


def test_negative_token_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        worst_case_micro_usd(PRICE, -1, 0)


def test_dollars_and_micro_dollars_convert() -> None:
    assert micro_to_usd(1_500_000) == Decimal("1.500000")
    assert str(micro_to_usd(7)) == "0.000007"
    assert usd_to_micro(Decimal("2.5")) == 2_500_000
    assert usd_to_micro(Decimal("0.0000001")) == 1


def test_budget_windows_are_utc_days_and_months() -> None:
    at = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    day = window_of("tenant", "t", "day", at)
    month = window_of("tenant", "t", "month", at)
    total = window_of("tenant", "t", "total", at)
    assert (day.window, day.start, day.end) == (
        "day-2026-12-31",
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert (month.window, month.end) == ("month-2026-12", datetime(2027, 1, 1, tzinfo=UTC))
    assert (total.window, total.start, total.end) == ("total", None, None)
    assert window_of("key", "k", "day", datetime(2027, 1, 1, tzinfo=UTC)).window > day.window
