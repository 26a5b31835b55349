"""Request and response documents of outcomes and KPIs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, Field, model_validator

Label = Annotated[int, Field(strict=True, ge=0, le=1)]
"""Strict: ``true``, ``1.0`` and ``"1"`` are refused, not read as the positive class."""


class OutcomeCreate(BaseModel):
    """The ground truth of one prediction of a binary classifier."""

    label: Label
    """1 when the positive class (what the version's ``score_meaning`` names) happened, else 0."""
    observed_at: AwareDatetime | None = None
    """When the outcome was observed; default: when it is recorded. Never in the future."""
    source: str | None = Field(default=None, min_length=1, max_length=100)
    """Where the label comes from (a system, a process), for whoever audits it."""
    correction: bool = False
    """Set to replace a recorded outcome with a different label; needs a ``reason``."""
    reason: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _reason_for_correction(self) -> Self:
        if self.correction and not (self.reason or "").strip():
            raise ValueError("a correction needs a reason")
        return self


class OutcomeRevision(BaseModel):
    """A value a correction replaced."""

    label: int
    observed_at: datetime
    source: str | None
    recorded_by: str
    recorded_at: datetime
    replaced_at: datetime
    replaced_by: str
    reason: str


class OutcomeRead(BaseModel):
    prediction_id: str
    model: str
    model_version: int
    arm: str | None
    label: int
    observed_at: datetime
    source: str | None
    recorded_by: str
    recorded_at: datetime
    revision: int
    history: list[OutcomeRevision]
    """Earlier values, oldest first; empty until the first correction."""


class ReliabilityBin(BaseModel):
    """One of ten equal-width score bins: ``(lower, upper]`` (the first one includes 0)."""

    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    """Mean score of the labelled predictions in the bin; ``null`` for an empty bin."""
    observed_rate: float | None
    """Share of them whose label is 1; ``null`` for an empty bin."""


class Kpis(BaseModel):
    """A version's (or arm's) quality on the labelled predictions of a window."""

    predictions: int
    """Predictions made in the window."""
    labelled: int
    """Of them, those with an outcome."""
    positives: int
    """Of the labelled, those whose label is 1."""
    label_coverage: float | None
    """``labelled / predictions``; ``null`` without predictions."""
    scored: int
    """Labelled predictions the metrics below were computed on (fewer than ``labelled`` only
    when the response is ``truncated``)."""
    auc: float | None
    """ROC AUC of the scores; ``null`` unless both labels occur."""
    precision: float | None
    """At each prediction's own threshold; ``null`` when nothing was decided positive."""
    recall: float | None
    """``null`` without positive labels."""
    f1: float | None
    brier: float | None
    ece: float | None
    """Expected calibration error over the ten reliability bins."""
    reliability: list[ReliabilityBin]


class ArmKpis(BaseModel):
    arm: str | None
    """The rollout arm that served (``stable``, ``canary``, ``a``, ``b``); ``null``: served
    without a deployment."""
    kpis: Kpis


class VersionKpis(BaseModel):
    version: int
    kpis: Kpis
    arms: list[ArmKpis]
    """Per arm, when a deployment served some of the version's predictions; else empty."""


class KpiReport(BaseModel):
    """KPIs of a model's versions over ``[since, until)``, in the caller's tenant."""

    model: str
    window: str | None
    """The ``window`` asked for; ``null`` when ``since``/``until`` were given."""
    since: datetime
    until: datetime
    row_cap: int
    """At most this many labelled predictions (the newest) are scored per request."""
    truncated: bool
    """More labelled predictions than ``row_cap`` were in the window: metrics cover the newest
    ``row_cap`` of them; counts still cover all."""
    versions: list[VersionKpis]
