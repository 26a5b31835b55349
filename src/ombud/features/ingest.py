"""Event ingestion: strict checks against the declared event types, then an all-or-nothing
append to the offline store.

Every event of a batch is checked before anything is stored, and every problem is reported
(the type, the entity id, the time, each payload field), so a producer fixes a batch in one
round. The audit event (counts only: payloads may hold personal data) is written before the
insert: the record writer commits on connections of its own and must not wait on this unit
of work's write lock (SQLite has one writer).

Residency: each event goes to its entity's home store (:mod:`ombud.privacy.regions`). A batch
whose entities live in one store commits in one transaction; a batch spanning stores commits
once per store, so a failure in between can leave part of it stored. Repeating the batch is
safe for events with an ``event_id`` (those already stored are skipped), which is why
producers should send one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.errors import FieldError, InvalidRequest
from ombud.core.ids import new_id
from ombud.features.definitions import SUBJECT, SUBJECT_ID, FeatureCatalog, PayloadField
from ombud.features.repository import FeatureEventRepository
from ombud.features.schemas import EventIn, IngestResult
from ombud.identity.principal import Principal
from ombud.privacy.exclusions import TrainingExclusions
from ombud.privacy.regions import RegionalStores
from ombud.records.writer import RecordWriter

ACTION = "event.ingest"
Loc = tuple[str | int, ...]
_TYPE_ERRORS = {
    "number": "float_type",
    "integer": "int_type",
    "boolean": "bool_type",
    "category": "string_type",
    "string": "string_type",
}
MAX_STRING = 10_000


def event_problems(
    catalog: FeatureCatalog, event: EventIn, loc: Loc, *, latest: datetime
) -> list[FieldError]:
    """Everything wrong with ``event`` (nothing: storable); ``latest`` is the newest event
    time accepted (now plus the allowed skew)."""
    event_type = catalog.event_types.get(event.type)
    if event_type is None:
        known = ", ".join(sorted(catalog.event_types)) or "none"
        msg = f"unknown event type {event.type!r} (declared: {known})"
        return [FieldError((*loc, "type"), msg, "unknown_event_type")]
    errors: list[FieldError] = []
    if event_type.entity == SUBJECT and not SUBJECT_ID.fullmatch(event.entity_id):
        msg = "a subject's events name it by its pseudonymous id sub_<32 hex>"
        errors.append(FieldError((*loc, "entity_id"), msg, "value_error"))
    if event.timestamp > latest:
        msg = "the event time is in the future"
        errors.append(FieldError((*loc, "timestamp"), msg, "value_error"))
    errors.extend(payload_problems(event_type.fields, event.payload, (*loc, "payload")))
    return errors


def payload_problems(
    fields: Mapping[str, PayloadField], payload: Mapping[str, Any], loc: Loc
) -> list[FieldError]:
    """Unknown fields, missing required ones and values of the wrong type, field by field."""
    errors = [
        FieldError((*loc, name), "not a field of this event type", "extra_forbidden")
        for name in payload
        if name not in fields
    ]
    for name, spec in fields.items():
        value = payload.get(name)
        if value is None:
            if spec.required:
                errors.append(FieldError((*loc, name), "required", "missing"))
            continue
        problem = value_problem(spec, value)
        if problem is not None:
            errors.append(FieldError((*loc, name), problem, _TYPE_ERRORS[spec.type]))
    return errors


def value_problem(spec: PayloadField, value: object) -> str | None:
    """Why ``value`` does not fit ``spec``; ``None`` when it does. Strict: no coercion, a
    boolean is not a number and ``"3"`` is not an integer."""
    if spec.type == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if spec.type in ("category", "string"):
        if not isinstance(value, str) or len(value) > MAX_STRING:
            return f"must be a string of at most {MAX_STRING} characters"
        if spec.categories is not None and value not in spec.categories:
            return f"must be one of {', '.join(spec.categories)}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be {'an integer' if spec.type == 'integer' else 'a number'}"
    if spec.type == "integer" and not isinstance(value, int):
        return "must be an integer"
    return None if math.isfinite(value) else "must be a finite number"


class IngestService:
    """Appends events to the caller's tenant's offline store, each in its entity's home store.

    Args:
        regions: The stores of the regions; each store's events commit in one transaction.
        catalog: The declared event types.
        clock: Ingestion times and the bound on event times.
        records: Where audit events go (the group-commit record writer).
        max_skew: How far in the future an event time may lie.
        exclusions: The exclusion list: events about an erased subject are refused.
    """

    def __init__(
        self,
        regions: RegionalStores,
        catalog: FeatureCatalog,
        clock: Clock,
        records: RecordWriter,
        *,
        max_skew: timedelta,
        exclusions: TrainingExclusions | None = None,
    ) -> None:
        self._regions = regions
        self._exclusions = exclusions
        self._catalog = catalog
        self._clock = clock
        self._records = records
        self._max_skew = max_skew

    async def ingest(
        self,
        principal: Principal,
        events: Sequence[EventIn],
        *,
        batch: bool,
        request_id: str | None,
    ) -> IngestResult:
        """Check every event, then store those not stored before (already authorized).

        Raises:
            InvalidRequest: any event is unknown, malformed or from the future; lists each
                problem, and nothing is stored.
        """
        now = self._clock.now()
        errors: list[FieldError] = []
        for i, event in enumerate(events):
            loc: Loc = ("body", "events", i) if batch else ("body",)
            errors.extend(event_problems(self._catalog, event, loc, latest=now + self._max_skew))
        if not errors and self._exclusions is not None:
            erased = await self._exclusions.excluded(
                principal.tenant_id, (e.entity_id for e in events)
            )
            errors = [
                FieldError(
                    (("body", "events", i) if batch else ("body",)) + ("entity_id",),
                    "the subject was erased; nothing more is stored about it", "subject_erased",
                )
                for i, e in enumerate(events)
                if e.entity_id in erased
            ]  # fmt: skip
        if errors:
            raise InvalidRequest(detail=f"{len(errors)} problem(s) in the events", errors=errors)
        fresh = await self._fresh(principal.tenant_id, events)
        await self._audit(principal, events, len(fresh), request_id)
        stored = 0
        homes = await self._regions.homes(
            dict.fromkeys(e.entity_id for e in fresh), tenant_id=principal.tenant_id
        )
        for name, members in homes.items():
            local = set(members)
            rows = [_row(principal.tenant_id, e, now) for e in fresh if e.entity_id in local]
            async with self._regions.store(name).sessions.begin() as session:
                stored += await FeatureEventRepository(session).append(rows)
        return IngestResult(received=len(events), stored=stored, duplicates=len(events) - stored)

    async def _fresh(self, tenant_id: str, events: Sequence[EventIn]) -> list[EventIn]:
        """The events not sent before: without an id, or with one neither stored nor earlier
        in the batch."""
        ids = {e.event_id for e in events if e.event_id is not None}
        seen: set[str] = set()
        if ids:
            for store in self._regions.stores:
                async with store.sessions() as session:
                    seen |= await FeatureEventRepository(session).known_event_ids(tenant_id, ids)
        fresh: list[EventIn] = []
        for event in events:
            if event.event_id is not None:
                if event.event_id in seen:
                    continue
                seen.add(event.event_id)
            fresh.append(event)
        return fresh

    async def _audit(
        self,
        principal: Principal,
        events: Sequence[EventIn],
        fresh: int,
        request_id: str | None,
    ) -> None:
        types = Counter(e.type for e in events)
        detail: dict[str, Any] = {
            "received": len(events), "new": fresh, "duplicates": len(events) - fresh,
            "types": dict(sorted(types.items())),
        }  # fmt: skip
        resource = "events:" + ",".join(sorted(types))
        await self._records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(), actor=principal.id,
                action=ACTION, resource=resource, outcome=Outcome.SUCCESS,
                tenant_id=principal.tenant_id, request_id=request_id, detail=detail,
            )
        ])  # fmt: skip


def _row(tenant_id: str, event: EventIn, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id("fev"), "tenant_id": tenant_id, "event_type": event.type,
        "entity_id": event.entity_id, "event_ts": event.timestamp, "ingested_ts": now,
        "event_id": event.event_id, "payload": event.payload,
    }  # fmt: skip
