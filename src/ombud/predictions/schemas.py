"""Shapes of the predictions API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PredictionDetail(BaseModel):
    """A recorded prediction, as its tenant may read it back."""

    prediction_id: str
    request_id: str
    model: str
    model_version: int
    score: float
    decision: str
    threshold: float
    inputs: dict[str, Any] | None
    """``null`` once the subject was erased (its key destroyed)."""
    subject: str | None
    purpose: str | None
    latency_ms: float
    created_at: datetime


class PredictionExportRequest(BaseModel):
    """A bulk export of a tenant's predictions, inputs included, for a time range."""

    model_config = ConfigDict(extra="forbid")

    since: datetime
    until: datetime
    model: str | None = None
    limit: int = Field(default=10_000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class PredictionExport(BaseModel):
    count: int
    truncated: bool
    predictions: list[PredictionDetail]
