"""What the request path records about a deployment, through the group-commit record writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ShadowResult:
    """The candidate's answer to one mirrored call (or why there was none)."""

    id: str
    deployment_id: str
    prediction_id: str
    stable_score: float
    candidate_score: float | None
    error: str | None
    latency_ms: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeploymentFailure:
    """A routed call whose model could not be loaded or invoked."""

    id: str
    deployment_id: str
    arm: str
    error: str
    request_id: str
    created_at: datetime
