"""Shapes of the predictions API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class PredictionDetail(BaseModel):
    """A recorded prediction, as its tenant may read it back."""

    prediction_id: str
    request_id: str
    model: str
    model_version: int
    score: float
    decision: str
    threshold: float
    inputs: dict[str, Any]
    subject: str | None
    purpose: str | None
    latency_ms: float
    created_at: datetime
