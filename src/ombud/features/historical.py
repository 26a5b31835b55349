"""Point-in-time-correct training sets: a view's features as they were at each label time.

For a row (entity, label time ``t``) every feature reads only the entity's events of the
view's source type with ``event_ts <= t``; a windowed aggregate reads those with
``t - window < event_ts <= t`` (half-open: an event exactly one window old is out). So no
value ever depends on an event newer than its label, whatever was ingested since.

The events are read from the offline store per chunk of :data:`ENTITY_CHUNK` entities, only
the source type's, only up to the chunk's latest label time and, unless a ``latest`` feature
needs the whole history, only from its earliest label time minus the longest window. A request
reads at most ``max_events`` events in all (else it is refused: nothing is silently cut); the
arithmetic runs in a worker thread once a chunk holds more than :data:`INLINE_EVENTS`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.core.errors import FieldError, InvalidRequest
from ombud.features.definitions import Feature, FeatureView, Latest, WindowAggregate
from ombud.features.repository import FeatureEventRepository, StoredEvent

ENTITY_CHUNK = 500
INLINE_EVENTS = 2_000
DEFAULT_MAX_EVENTS = 500_000
Row = tuple[str, datetime]
"""An entity id and the label time its features are wanted at."""


@dataclass(slots=True)
class _History:
    """One entity's events in time order: their times (for bisection) and payloads."""

    times: list[datetime] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)


async def historical_features(
    session: AsyncSession,
    tenant_id: str,
    view: FeatureView,
    rows: Sequence[Row],
    *,
    exclude: Collection[str] = (),
    max_events: int = DEFAULT_MAX_EVENTS,
) -> list[dict[str, Any]]:
    """The training set of ``rows``: per row not excluded, in order, ``entity_id``,
    ``label_time`` and each feature of ``view`` computed from events at or before the label
    time (``null`` without any; a ``count`` is 0). Entities in ``exclude`` are left out.

    Raises:
        InvalidRequest: the rows need more than ``max_events`` events; ask for fewer rows.
    """
    excluded = set(exclude)
    wanted = [(i, entity, t) for i, (entity, t) in enumerate(rows) if entity not in excluded]
    entities = sorted({entity for _, entity, _ in wanted})
    repository = FeatureEventRepository(session)
    values: dict[int, dict[str, Any]] = {}
    budget = max_events
    for start in range(0, len(entities), ENTITY_CHUNK):
        chunk = set(entities[start : start + ENTITY_CHUNK])
        chunk_rows = [(i, entity, t) for i, entity, t in wanted if entity in chunk]
        events = await _slice(repository, tenant_id, view, chunk_rows, budget)
        budget -= len(events)
        compute = partial(features_for_rows, view, events, chunk_rows)
        if len(events) > INLINE_EVENTS:
            values.update(await anyio.to_thread.run_sync(compute))
        else:
            values.update(compute())
    return [{"entity_id": entity, "label_time": t, **values[i]} for i, entity, t in wanted]


async def _slice(
    repository: FeatureEventRepository,
    tenant_id: str,
    view: FeatureView,
    rows: Sequence[tuple[int, str, datetime]],
    budget: int,
) -> list[StoredEvent]:
    """The events the rows can depend on, refusing the request past ``budget`` of them."""
    times = [t for _, _, t in rows]
    longest = view.longest_window
    events = await repository.slice(
        tenant_id, view.source, {entity for _, entity, _ in rows},
        after=None if longest is None else min(times) - longest, until=max(times),
        limit=budget + 1,
    )  # fmt: skip
    if len(events) > budget:
        msg = "these rows need more events than one request may read; send fewer rows"
        raise InvalidRequest(detail=msg, errors=[FieldError(("body", "rows"), msg, "too_long")])
    return events


def features_for_rows(
    view: FeatureView,
    events: Sequence[StoredEvent],
    rows: Sequence[tuple[int, str, datetime]],
) -> dict[int, dict[str, Any]]:
    """Each row's features (by row index) from ``events``, in time order per entity."""
    histories: defaultdict[str, _History] = defaultdict(_History)
    for event in events:
        history = histories[event.entity_id]
        history.times.append(event.event_ts)
        history.payloads.append(event.payload)
    return {i: features_at(view, histories.get(entity) or _History(), t) for i, entity, t in rows}


def features_at(view: FeatureView, history: _History, label_time: datetime) -> dict[str, Any]:
    """The view's features from ``history`` as of ``label_time``."""
    end = bisect_right(history.times, label_time)
    return {f.name: _feature(f, history, end, label_time) for f in view.features}


def _feature(feature: Feature, history: _History, end: int, label_time: datetime) -> Any:
    t = feature.transformation
    if isinstance(t, Latest):
        for payload in reversed(history.payloads[:end]):
            if payload.get(t.field) is not None:
                return payload[t.field]
        return None
    start = bisect_right(history.times, label_time - t.span)
    window = history.payloads[start:end]
    if t.field is None:
        return len(window)
    values = [p[t.field] for p in window if p.get(t.field) is not None]
    return aggregate(t, feature.type, values)


def aggregate(t: WindowAggregate, result_type: str, values: Sequence[Any]) -> Any:
    """``count``, ``sum``, ``mean``, ``min`` or ``max`` of ``values``; ``None`` (but a count
    of 0) when there are none. Sums of numbers are exactly rounded (``math.fsum``), so they do
    not depend on the order events were stored in."""
    if t.kind == "count":
        return len(values)
    if not values:
        return None
    if t.kind == "sum":
        return int(sum(values)) if result_type == "integer" else math.fsum(values)
    if t.kind == "mean":
        return math.fsum(values) / len(values)
    return min(values) if t.kind == "min" else max(values)
