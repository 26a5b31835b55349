"""The shapes of the promotion gate: golden datasets, promotion policies and gate reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Metric = Literal["roc_auc", "accuracy", "precision", "recall", "brier"]
"""The metrics the gate computes. Brier is lower-is-better; the others higher-is-better."""
FloorMetric = Literal["roc_auc", "accuracy", "precision", "recall"]
"""Metrics that may have an absolute floor (``min_metrics``)."""

MAX_GOLDEN_ROWS = 50_000


class GoldenRow(BaseModel):
    """One labelled example: the model's declared inputs and the true outcome."""

    model_config = ConfigDict(extra="forbid")

    features: dict[str, Any]
    label: int = Field(strict=True, ge=0, le=1, description="The true outcome: 1 positive, 0 not.")


class GoldenCreate(BaseModel):
    """A model's golden dataset, replacing the previous one."""

    model_config = ConfigDict(extra="forbid")

    rows: list[GoldenRow] = Field(min_length=2, max_length=MAX_GOLDEN_ROWS)
    description: str = Field(default="", max_length=10_000)


class GoldenRead(BaseModel):
    """A golden dataset's summary: the rows stay in the artifact store."""

    model: str
    uri: str
    sha256: str
    rows: int
    description: str
    created_by: str
    created_at: datetime


def _default_drops() -> dict[Metric, float]:
    return {"roc_auc": 0.02, "accuracy": 0.03}


def _default_floors() -> dict[FloorMetric, float]:
    return {"roc_auc": 0.5}


class PromotionPolicy(BaseModel):
    """The bar a candidate must clear on the golden dataset.

    Relative limits compare with the baseline (the version serving now) and are skipped when
    there is none; floors always apply. ``None`` turns a limit off.
    """

    model_config = ConfigDict(extra="forbid")

    max_metric_drop: dict[Metric, float] = Field(
        default_factory=_default_drops,
        description="Largest worsening allowed per metric (for brier: largest increase).",
    )
    min_metrics: dict[FloorMetric, float] = Field(
        default_factory=_default_floors,
        description="Absolute floors, whatever the baseline.",
    )
    max_score_change: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Largest |score_new - score_old| allowed on any golden row.",
    )  # fmt: skip
    max_decision_change_fraction: float | None = Field(
        default=0.2, ge=0.0, le=1.0,
        description="Largest share of golden rows whose decision may flip.",
    )  # fmt: skip

    @field_validator("max_metric_drop", "min_metrics")
    @classmethod
    def _within_unit_interval(cls, limits: dict[str, float]) -> dict[str, float]:
        for name, value in limits.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: {value} is outside [0, 1]")
        return limits


class PromotionPolicyRead(PromotionPolicy):
    model: str
    updated_by: str | None
    """None while the model uses the defaults."""
    updated_at: datetime | None


class MetricComparison(BaseModel):
    candidate: float
    baseline: float | None
    delta: float | None
    """candidate - baseline."""


class ScoreChange(BaseModel):
    """How far the candidate's scores move from the baseline's, over the golden rows."""

    max_abs: float
    mean_abs: float
    rows_over_limit: int


class PromotionReport(BaseModel):
    """The gate's verdict on one candidate, and every number it was based on."""

    id: str
    model: str
    version: int
    baseline_version: int | None
    passed: bool
    reasons: list[str]
    """Each breached threshold, in words with the numbers; empty when passed."""
    notes: list[str] = Field(default_factory=list)
    """What the gate could not check (no baseline, a baseline that would not load)."""
    metrics: dict[str, MetricComparison]
    score_change: ScoreChange | None
    decision_change_fraction: float | None
    threshold: float
    golden_sha256: str
    golden_rows: int
    golden_created_by: str | None = None
    """Who set the golden dataset the report was computed on (an approver, or ``operator`` /
    ``system`` for the command line and the demo seed); null in reports stored before it was
    recorded."""
    policy: PromotionPolicy
    dry_run: bool
    created_by: str
    created_at: datetime
