"""The prediction record: enough to know and reproduce what a model was asked and answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    id: str
    request_id: str
    tenant_id: str
    principal_id: str
    model_name: str
    model_version: int
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    latency_ms: float
    created_at: datetime
    subject: str | None = None
    purpose: str | None = None
    model_version_id: str | None = None
    """The registry id of the exact version, and its artifact's digest: what replay loads."""
    artifact_sha256: str | None = None
    feature_views: dict[str, int] = field(default_factory=dict)
    """Feature views (name → version) the inputs were read from."""
    deployment_id: str | None = None
    arm: str | None = None
    """The rollout and its arm that routed the call to this version, if any."""
