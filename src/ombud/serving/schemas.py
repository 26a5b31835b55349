"""Request and response shapes of the predict route."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ombud.demo.example import EXAMPLE_APPLICANT


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"features": EXAMPLE_APPLICANT}]}
    )

    features: dict[str, Any] = Field(
        description="Feature name → value, as declared by the model version's input schema."
    )


class PredictionRead(BaseModel):
    prediction_id: str
    model: str
    model_version: int
    score: float = Field(description="Probability of the model's positive class.")
    decision: str
    threshold: float
    created_at: datetime
