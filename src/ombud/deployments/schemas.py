"""The shapes of a deployment: what creates one (also the schema of declared deployment files),
what changes one, and what the API answers.

:class:`DeploymentCreate` is self-contained on purpose: it validates a ``POST /v1/deployments``
body and a ``deployments/*.yaml`` file alike, without a database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9\-]{0,99}$"
"""The registry's model names (kept here so the schema needs nothing else)."""


class DeploymentMode(StrEnum):
    CANARY = "canary"
    """The candidate serves ``percent``% of subjects; the rest get the stable version."""
    SHADOW = "shadow"
    """Stable answers every call; the candidate scores a mirror of it, compared, never served."""
    AB = "ab"
    """Two arms (``a`` = stable, ``b`` = candidate) by weight, both served and recorded."""


class DeploymentStatus(StrEnum):
    ACTIVE = "active"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"


class Arm(StrEnum):
    STABLE = "stable"
    CANARY = "canary"
    A = "a"
    B = "b"

    @property
    def is_candidate(self) -> bool:
        """Whether this arm is served by the deployment's candidate version."""
        return self in (Arm.CANARY, Arm.B)


class Guards(BaseModel):
    """When the rollback monitor rolls a canary or A/B deployment back.

    Over the last ``window_s`` seconds, once the candidate arm has seen ``min_requests`` calls,
    any breached threshold rolls the deployment back. A threshold left null is not checked.
    """

    model_config = ConfigDict(extra="forbid")

    max_error_rate: float | None = Field(default=0.05, ge=0.0, le=1.0)
    """Highest share of the candidate arm's calls whose model invocation may fail."""
    max_p99_latency_ms: float | None = Field(default=None, gt=0)
    """Highest 99th percentile of the candidate arm's model latency."""
    max_score_psi: float | None = Field(default=0.25, ge=0.0)
    """Highest population stability index of the candidate's scores against the stable arm's."""
    min_requests: int = Field(default=100, ge=1, le=10_000_000)
    window_s: int = Field(default=900, ge=60, le=7 * 24 * 3600)


class ArmWeights(BaseModel):
    """Relative weights of an A/B deployment's arms: ``a`` is stable, ``b`` the candidate."""

    model_config = ConfigDict(extra="forbid")

    a: int = Field(ge=0, le=10_000)
    b: int = Field(ge=0, le=10_000)

    @model_validator(mode="after")
    def _some_weight(self) -> Self:
        if self.a + self.b == 0:
            raise ValueError("at least one arm needs a weight above 0")
        return self

    @property
    def percent_b(self) -> float:
        return 100.0 * self.b / (self.a + self.b)


def _check_split(mode: DeploymentMode, percent: float | None, weights: ArmWeights | None) -> None:
    if mode is DeploymentMode.CANARY and (percent is None or weights is not None):
        raise ValueError("a canary deployment takes percent (and no weights)")
    if mode is DeploymentMode.AB and (weights is None or percent is not None):
        raise ValueError("an ab deployment takes weights (and no percent)")
    if mode is DeploymentMode.SHADOW and (percent is not None or weights is not None):
        raise ValueError("a shadow deployment takes neither percent nor weights")


class DeploymentCreate(BaseModel):
    """A new rollout of ``candidate_version`` against ``stable_version`` of ``model``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=MODEL_NAME_PATTERN)
    stable_version: int = Field(ge=1)
    candidate_version: int = Field(ge=1)
    mode: DeploymentMode
    percent: float | None = Field(default=None, ge=0.0, le=100.0)
    """Canary only: share of subjects the candidate serves (resolution 0.01)."""
    weights: ArmWeights | None = None
    """A/B only: the arms' relative weights."""
    guards: Guards = Guards()
    reason: str | None = Field(default=None, max_length=2_000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.stable_version == self.candidate_version:
            raise ValueError("stable_version and candidate_version must differ")
        _check_split(self.mode, self.percent, self.weights)
        return self

    @property
    def candidate_percent(self) -> float:
        """The share of subjects routed to the candidate's arm."""
        if self.weights is not None:
            return self.weights.percent_b
        return self.percent or 0.0


class DeploymentUpdate(BaseModel):
    """A new split: ``percent`` for a canary, ``weights`` for an A/B deployment."""

    model_config = ConfigDict(extra="forbid")

    percent: float | None = Field(default=None, ge=0.0, le=100.0)
    weights: ArmWeights | None = None
    reason: str | None = Field(default=None, max_length=2_000)

    @model_validator(mode="after")
    def _one_split(self) -> Self:
        if (self.percent is None) == (self.weights is None):
            raise ValueError("give exactly one of percent and weights")
        return self


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2_000)


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2_000, pattern=r"\S")


class DeploymentRead(BaseModel):
    id: str
    model: str
    mode: DeploymentMode
    status: DeploymentStatus
    stable_version: int
    candidate_version: int
    percent: float
    weights: ArmWeights | None
    guards: Guards
    created_by: str
    created_at: datetime
    updated_at: datetime
    ended_by: str | None
    ended_at: datetime | None
    end_reason: str | None


class DeploymentEventRead(BaseModel):
    seq: int
    action: str
    actor: str
    reason: str | None
    detail: dict[str, Any]
    occurred_at: datetime


class ShadowSummary(BaseModel):
    """How the candidate of a shadow deployment compares with stable on mirrored calls."""

    deployment_id: str
    count: int
    """Mirrored calls recorded (compared or failed)."""
    compared: int
    """Calls the candidate scored."""
    errors: int
    """Calls the candidate failed (raised, timed out, refused the features)."""
    agreement_rate: float | None
    """Share of compared calls where both versions reached the same decision."""
    mean_abs_score_diff: float | None
