"""The prediction record: enough to know and reproduce what a model was asked and answered."""

from __future__ import annotations

from dataclasses import dataclass
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
