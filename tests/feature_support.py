"""A feature view, random event streams and a brute-force reference for point-in-time tests.

The reference reads the events in no particular order and knows nothing of bisection or
query bounds: it keeps exactly the events a value may depend on (``event_ts <= label``, and
``label - window < event_ts`` for an aggregate) and computes from those alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from ombud.features.definitions import (
    EventType,
    Feature,
    FeatureView,
    FieldType,
    Latest,
    PayloadField,
    WindowAggregate,
)
from ombud.features.repository import StoredEvent

START = datetime(2026, 1, 1, tzinfo=UTC)
ENTITIES = ("e1", "e2", "e3")
EVENT_TYPE = EventType(
    name="txn",
    entity="account",
    fields={
        "amount": PayloadField(type="number"),
        "items": PayloadField(type="integer", required=False),
        "channel": PayloadField(type="category", required=False),
    },
)


def _agg(
    name: str, kind: str, field: str | None, window: str, type_: FieldType = "number"
) -> Feature:
    transformation = WindowAggregate.model_validate(
        {"kind": kind, "field": field, "window": window}
    )
    return Feature(name=name, type=type_, transformation=transformation)


def _latest(name: str, type_: FieldType, field: str) -> Feature:
    transformation = Latest(kind="latest", field=field)
    return Feature(name=name, type=type_, transformation=transformation)


VIEW = FeatureView(
    name="spend",
    version=3,
    entity="account",
    source="txn",
    ttl_s=3600,
    features=(
        _agg("n_1h", "count", None, "1h", "integer"),
        _agg("n_items_7d", "count", "items", "7d", "integer"),
        _agg("sum_1d", "sum", "amount", "1d"),
        _agg("items_sum_7d", "sum", "items", "7d", "integer"),
        _agg("mean_7d", "mean", "amount", "7d"),
        _agg("min_7d", "min", "amount", "7d"),
        _agg("max_30d", "max", "amount", "30d"),
        _agg("n_30d", "count", None, "30d", "integer"),
        _latest("last_amount", "number", "amount"),
        _latest("last_channel", "category", "channel"),
    ),
)  # fmt: skip
WINDOWED_VIEW = VIEW.model_copy(
    update={
        "name": "windowed",
        "features": tuple(f for f in VIEW.features if f.name[:5] != "last_"),
    }
)
"""Only aggregates: the store reads a bounded time slice for it."""
WINDOWS = [timedelta(hours=1), timedelta(days=1), timedelta(days=7), timedelta(days=30)]


def reference(
    view: FeatureView, events: Sequence[StoredEvent], entity: str, label: datetime
) -> dict[str, Any]:
    """The features of ``entity`` at ``label``, by brute force (distinct event times)."""
    past = [e for e in events if e.entity_id == entity and e.event_ts <= label]
    row: dict[str, Any] = {}
    for feature in view.features:
        t = feature.transformation
        if isinstance(t, Latest):
            carrying = [e for e in past if e.payload.get(t.field) is not None]
            last = max(carrying, key=lambda e: e.event_ts, default=None)
            row[feature.name] = None if last is None else last.payload[t.field]
            continue
        inside = [e for e in past if e.event_ts > label - t.span]
        if t.field is None:
            row[feature.name] = len(inside)
            continue
        values = [e.payload[t.field] for e in inside if e.payload.get(t.field) is not None]
        row[feature.name] = _brute(t.kind, feature.type, values)
    return row


def _brute(kind: str, result_type: str, values: list[Any]) -> Any:
    if kind == "count":
        return len(values)
    if not values:
        return None
    if kind == "sum":
        return sum(values) if result_type == "integer" else math.fsum(values)
    if kind == "mean":
        return math.fsum(values) / len(values)
    return min(values) if kind == "min" else max(values)


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "amount": draw(st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-1000, 1000))
    }
    if draw(st.booleans()):
        payload["items"] = draw(st.integers(0, 50))
    if draw(st.booleans()):
        payload["channel"] = draw(st.sampled_from(["card", "transfer"]))
    return payload


@st.composite
def streams(draw: st.DrawFn, max_events: int = 40) -> list[StoredEvent]:
    """Events of a few entities at distinct times (whole seconds, within 40 days)."""
    # Drawn as day, hour and second, so that streams spread over weeks as often as seconds.
    offsets = st.tuples(st.integers(0, 40), st.integers(0, 23), st.integers(0, 3599))
    seconds = draw(
        st.lists(
            offsets.map(lambda o: o[0] * 86400 + o[1] * 3600 + o[2]),
            max_size=max_events,
            unique=True,
        )
    )
    return [
        StoredEvent(draw(st.sampled_from(ENTITIES)), START + timedelta(seconds=s), draw(payloads()))
        for s in seconds
    ]


@st.composite
def label_rows(draw: st.DrawFn, events: Sequence[StoredEvent]) -> list[tuple[str, datetime]]:
    """Label times anywhere, and many exactly on an event or one window after it (the edges)."""
    rows: list[tuple[str, datetime]] = []
    for _ in range(draw(st.integers(1, 12))):
        entity = draw(st.sampled_from(ENTITIES))
        anchored = draw(st.booleans())
        if events and anchored:
            anchor = draw(st.sampled_from(list(events)))
            entity = anchor.entity_id
            shift = draw(st.sampled_from([timedelta(0), timedelta(microseconds=1), *WINDOWS]))
            label = anchor.event_ts + shift * draw(st.sampled_from([1, -1]))
        else:
            day, second = draw(st.integers(0, 41)), draw(st.integers(-3600, 86400))
            label = START + timedelta(days=day, seconds=second)
        rows.append((entity, label))
    return rows


def in_store_order(events: Sequence[StoredEvent]) -> list[StoredEvent]:
    """Ordered as the store answers: by entity, then event time."""
    return sorted(events, key=lambda e: (e.entity_id, e.event_ts))
