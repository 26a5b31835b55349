"""Point-in-time computation without a database: every value equals a brute-force reference
computed only from events at or before the label time, and later events change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ombud.features.historical import features_for_rows
from ombud.features.repository import StoredEvent
from tests.feature_support import (
    START,
    VIEW,
    in_store_order,
    label_rows,
    payloads,
    reference,
    streams,
)


def _compute(events: list[StoredEvent], rows: list[tuple[str, datetime]]) -> list[dict[str, Any]]:
    indexed = [(i, entity, label) for i, (entity, label) in enumerate(rows)]
    result = features_for_rows(VIEW, in_store_order(events), indexed)
    return [result[i] for i in range(len(rows))]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), events=streams())
def test_values_match_a_reference_that_sees_only_the_past(
    data: st.DataObject, events: list[StoredEvent]
) -> None:
    rows = data.draw(label_rows(events))
    computed = _compute(events, rows)
    expected = [reference(VIEW, events, entity, label) for entity, label in rows]
    assert computed == expected


@settings(max_examples=200, deadline=None)
@given(data=st.data(), events=streams())
def test_events_after_the_label_time_change_nothing(
    data: st.DataObject, events: list[StoredEvent]
) -> None:
    rows = data.draw(label_rows(events))
    before = _compute(events, rows)
    latest_label = max(label for _, label in rows)
    later = [
        StoredEvent(entity, latest_label + timedelta(microseconds=1 + i), data.draw(payloads()))
        for i, (entity, _) in enumerate(rows)
    ]
    assert _compute(events + later, rows) == before


def test_windows_are_half_open_at_the_label_and_one_window_back() -> None:
    label = START + timedelta(days=10)
    events = [
        StoredEvent("e1", label - timedelta(days=7), {"amount": 1000.0}),  # out: exactly 7d old
        StoredEvent("e1", label - timedelta(days=7) + timedelta(microseconds=1), {"amount": 2.0}),
        StoredEvent("e1", label - timedelta(hours=1), {"amount": 3.0}),  # out of the 1h count
        StoredEvent("e1", label, {"amount": 4.0, "items": 2}),  # in: at the label
        StoredEvent("e1", label + timedelta(microseconds=1), {"amount": -50.0}),  # future: out
    ]
    [row] = _compute(events, [("e1", label)])
    assert row["n_1h"] == 1
    assert row["min_7d"] == 2.0
    assert row["mean_7d"] == 3.0
    assert row["max_30d"] == 1000.0
    assert row["sum_1d"] == 7.0
    assert row["items_sum_7d"] == 2
    assert row["last_amount"] == 4.0


def test_no_events_give_nulls_and_zero_counts() -> None:
    events = [StoredEvent("e1", START, {"amount": 1.0, "channel": "card"})]
    [row] = _compute(events, [("e1", START - timedelta(seconds=1))])
    assert row == {
        "n_1h": 0, "n_items_7d": 0, "sum_1d": None, "items_sum_7d": None, "mean_7d": None,
        "min_7d": None, "max_30d": None, "n_30d": 0, "last_amount": None, "last_channel": None,
    }  # fmt: skip


def test_latest_takes_the_last_event_that_carries_the_field() -> None:
    events = [
        StoredEvent("e1", START, {"amount": 1.0, "channel": "card"}),
        StoredEvent("e1", START + timedelta(hours=1), {"amount": 2.0}),
    ]
    [row] = _compute(events, [("e1", START + timedelta(days=90))])
    assert row["last_channel"] == "card"
    assert row["last_amount"] == 2.0
    assert row["max_30d"] is None  # both events are older than the window
