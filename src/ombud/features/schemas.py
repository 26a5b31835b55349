"""Request and response documents of event ingestion and historical retrieval."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Discriminator, Field, Tag

MAX_BATCH = 1_000
MAX_ROWS = 10_000
EventId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@/-]+$")]
EntityId = Annotated[str, Field(min_length=1, max_length=200)]


class EventIn(BaseModel):
    """One event about one entity, as its producer saw it."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100)
    """A declared event type; its schema is what ``payload`` is checked against."""
    entity_id: EntityId
    """Whom the event is about: a pseudonymous subject id ``sub_<32 hex>`` for ``subject``
    events, else any key."""
    timestamp: AwareDatetime
    """When it happened (event time, with a timezone); not later than now plus the allowed
    clock skew."""
    payload: dict[str, Any]
    event_id: EventId | None = None
    """The producer's id: an event whose id the tenant has already sent is not stored again."""


class EventBatch(BaseModel):
    """Up to 1,000 events, stored all or none."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


def _shape(value: Any) -> str:
    if isinstance(value, dict) and "events" in value:
        return "batch"
    if isinstance(value, EventBatch):
        return "batch"
    return "one"


EventsIn = Annotated[
    Annotated[EventIn, Tag("one")] | Annotated[EventBatch, Tag("batch")], Discriminator(_shape)
]
"""A body of ``POST /v1/events``: one event, or ``{"events": [...]}``."""


class IngestResult(BaseModel):
    received: int
    stored: int
    """Events stored by this request."""
    duplicates: int
    """Events whose ``event_id`` was stored before (or repeated in the batch): not stored
    again."""


class LabelledEntity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_id: EntityId
    label_time: AwareDatetime
    """The time the label is observed at: features use only events at or before it."""


class HistoricalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[LabelledEntity] = Field(min_length=1, max_length=MAX_ROWS)
    version: int | None = Field(default=None, ge=1)
    """The view's version; default: its highest."""


class TrainingSet(BaseModel):
    """A view's features for each requested (entity, label time), point-in-time correct."""

    view: str
    """The view's id, e.g. ``credit_applicant_v1``."""
    name: str
    version: int
    entity: str
    features: list[str]
    """The feature columns, in declaration order."""
    rows: list[dict[str, Any]]
    """One per requested row, in request order, each ``entity_id``, ``label_time`` and the
    features; rows of excluded entities are left out."""
    excluded: int
    """Requested rows left out because their entity is excluded from training."""
