"""What the feature store knows: event types (the payload schema of what is ingested) and
feature views (named, versioned features computed from one event type).

A view's features are each computed by one transformation over the events of its ``source``
type for one entity: ``latest`` (the field's value in the last event that carries it) or a
windowed aggregate (``count``, ``sum``, ``mean``, ``min``, ``max``) over the events in
``(t - window, t]``. Everything here is immutable and free of I/O; the checks that need the
event types (a view's source and fields exist, aggregates read numbers) live in
:func:`view_problems`, run by the loader.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ombud.core.errors import NotFound

FieldType = Literal["number", "integer", "boolean", "category", "string"]
NUMERIC: frozenset[str] = frozenset({"number", "integer"})
NAME = r"^[a-z][a-z0-9_]{0,62}$"
RESERVED = frozenset({"entity_id", "label_time"})
"""Columns every training-set row has: no feature may be called so."""
SUBJECT = "subject"
"""The entity whose ids are pseudonymous data-subject ids (``sub_<32 hex>``)."""
SUBJECT_ID = re.compile(r"sub_[0-9a-f]{32}")
WINDOW = re.compile(r"([1-9][0-9]{0,4})([smhd])")
MAX_WINDOW = timedelta(days=3660)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``30d`` … as a duration.

    Raises:
        ValueError: not a number (1-99999) followed by ``s``, ``m``, ``h`` or ``d``, or longer
            than ten years.
    """
    match = WINDOW.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a window such as 1h, 7d or 30d")
    duration = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if duration > MAX_WINDOW:
        raise ValueError(f"{text!r} is longer than ten years")
    return duration


class PayloadField(BaseModel):
    """One field of an event type's payload. In YAML, ``amount: number`` is short for
    ``amount: {type: number}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    required: bool = True
    """A required field must be present and not null in every event of the type."""
    categories: tuple[str, ...] | None = None
    """For ``category``: the values allowed; unset: any string."""
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _categories_for_category(self) -> PayloadField:
        if self.categories is not None and self.type != "category":
            raise ValueError("only a category field lists categories")
        return self


class EventType(BaseModel):
    """A kind of event that may be ingested, and the schema its payload is checked against."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    entity: str = Field(default=SUBJECT, pattern=NAME)
    """What the events are about; ``subject`` ids must be ``sub_<32 hex>``."""
    description: str = ""
    fields: Mapping[str, PayloadField] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: Mapping[str, PayloadField]) -> Mapping[str, PayloadField]:
        bad = [name for name in value if not re.fullmatch(NAME, name)]
        if bad:
            raise ValueError(f"field names must match {NAME}: {', '.join(map(repr, bad))}")
        return value


class Latest(BaseModel):
    """The field's value in the last event (at or before the time asked) that carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["latest"]
    field: str


class WindowAggregate(BaseModel):
    """An aggregate of the events in ``(t - window, t]``. ``count`` without a field counts
    the events; with one, the events that carry it. The others need a numeric field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["count", "sum", "mean", "min", "max"]
    field: str | None = None
    window: str

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    @model_validator(mode="after")
    def _field_unless_count(self) -> WindowAggregate:
        if self.kind != "count" and self.field is None:
            raise ValueError(f"{self.kind} needs the numeric field it aggregates")
        return self

    @property
    def span(self) -> timedelta:
        return parse_window(self.window)


Transformation = Annotated[Latest | WindowAggregate, Field(discriminator="kind")]


class Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    type: FieldType
    description: str = ""
    transformation: Transformation

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED:
            raise ValueError(f"{value!r} is a column of every training set, not a feature name")
        return value


class FeatureView(BaseModel):
    """A named, versioned set of features of one entity, computed from one event type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    version: int = Field(ge=1, le=100_000)
    entity: str = Field(default=SUBJECT, pattern=NAME)
    source: str = Field(pattern=NAME)
    """The event type the features are computed from."""
    ttl_s: int = Field(gt=0, le=10 * 366 * 86400)
    """How long a computed value stays valid when served online."""
    data_categories: tuple[str, ...] = Field(default=("behavioural",), min_length=1)
    """The data categories (of the purposes catalog) its values are: an online read of a
    subject's features must have a purpose that may read every one of them."""
    description: str = ""
    features: tuple[Feature, ...]
    """At least one, at most 500 (checked after each feature, so a bad one is not reported
    as a missing one too)."""

    @field_validator("features")
    @classmethod
    def _unique_names(cls, value: tuple[Feature, ...]) -> tuple[Feature, ...]:
        if not 1 <= len(value) <= 500:
            raise ValueError("a view has 1 to 500 features")
        twice = sorted(n for n, k in Counter(f.name for f in value).items() if k > 1)
        if twice:
            raise ValueError(f"features declared twice: {', '.join(twice)}")
        return value

    @property
    def id(self) -> str:
        """``credit_applicant_v1``: the name and version as one identifier."""
        return f"{self.name}_v{self.version}"

    @property
    def transformations(self) -> dict[str, Latest | WindowAggregate]:
        """Each feature's transformation, by feature name."""
        return {f.name: f.transformation for f in self.features}

    @property
    def longest_window(self) -> timedelta | None:
        """The widest aggregate window; ``None`` when a ``latest`` feature reads unbounded
        history (then every event up to the time asked may matter)."""
        spans = [t.span for t in self.transformations.values() if isinstance(t, WindowAggregate)]
        if len(spans) < len(self.features):
            return None
        return max(spans)


def view_problems(view: FeatureView, event_types: Mapping[str, EventType]) -> Iterator[str]:
    """What is wrong with ``view`` given the declared event types (nothing: a usable view)."""
    source = event_types.get(view.source)
    if source is None:
        yield f"{view.id}: unknown source event type {view.source!r}"
        return
    if source.entity != view.entity:
        yield (
            f"{view.id}: the view is about {view.entity!r} but {view.source!r} events are "
            f"about {source.entity!r}"
        )
    for feature in view.features:
        yield from _feature_problems(view.id, feature, source)


def _feature_problems(view_id: str, feature: Feature, source: EventType) -> Iterator[str]:
    where = f"{view_id}.{feature.name}"
    t = feature.transformation
    if t.field is None:
        read = "integer"  # a plain count
    elif t.field not in source.fields:
        yield f"{where}: {source.name!r} events have no field {t.field!r}"
        return
    else:
        read = source.fields[t.field].type
    if t.kind not in ("latest", "count") and read not in NUMERIC:
        yield f"{where}: {t.kind} needs a numeric field; {t.field!r} is {read}"
        return
    allowed = _result_types(t.kind, read)
    if feature.type not in allowed:
        gives = " or ".join(sorted(allowed))
        yield f"{where}: {t.kind} of {read} gives {gives}, not {feature.type}"


def _result_types(kind: str, read: str) -> frozenset[str]:
    if kind == "count":
        return frozenset({"integer", "number"})
    if kind == "mean" or (kind in ("sum", "min", "max") and read == "number"):
        return frozenset({"number"})
    if kind == "latest" and read not in NUMERIC:
        return frozenset({read})
    return frozenset({"integer", "number"})


@dataclass(frozen=True, slots=True)
class FeatureCatalog:
    """The declared event types and feature views, checked together."""

    event_types: Mapping[str, EventType] = field(default_factory=dict)
    views: Mapping[tuple[str, int], FeatureView] = field(default_factory=dict)

    def view(self, name: str, version: int | None = None) -> FeatureView:
        """The view ``name`` at ``version`` (default: its highest version).

        Raises:
            NotFound: no such view or version.
        """
        versions = [v for (n, v) in self.views if n == name]
        if not versions:
            raise NotFound(detail=f"no feature view {name!r}")
        chosen = max(versions) if version is None else version
        found = self.views.get((name, chosen))
        if found is None:
            raise NotFound(detail=f"feature view {name!r} has no version {chosen}")
        return found
