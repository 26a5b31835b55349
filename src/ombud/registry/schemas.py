"""What a model version declares: its input features and how its score becomes a decision."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator


class VersionStatus(StrEnum):
    DRAFT = "draft"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    DEPRECATED = "deprecated"


class ArtifactFormat(StrEnum):
    SKOPS = "skops"
    ONNX = "onnx"


class FeatureSpec(BaseModel):
    """One named input. ``protected`` attributes (e.g. sex) are validated and recorded for
    fairness monitoring but never passed to the estimator."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    type: Literal["number", "integer", "category", "boolean"]
    categories: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    role: Literal["input", "protected"] = "input"
    required: bool = True
    description: str = ""

    @model_validator(mode="after")
    def _categories_for_category(self) -> Self:
        if (self.type == "category") != bool(self.categories):
            raise ValueError("categories are required for, and only for, category features")
        return self


class ServingConfig(BaseModel):
    """How a probability becomes a decision."""

    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    score_meaning: str = "probability of the positive class"
    positive_decision: str = "decline"
    negative_decision: str = "approve"
    tier: Literal["standard", "premium"] = "standard"
    """Which tenants may call the model: policy restricts premium models to premium tenants."""


class ModelVersion(BaseModel):
    """A registered version as the serving layer needs it."""

    id: str
    model: str
    version: int
    status: VersionStatus
    format: ArtifactFormat
    artifact_uri: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    features: list[FeatureSpec]
    serving: ServingConfig

    @property
    def input_features(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.role == "input"]
