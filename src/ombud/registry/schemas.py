"""What a model version declares (its input features, how its score becomes a decision, its model
card) and the shapes of the registry API."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)


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


class FeatureViewSource(BaseModel):
    """Inputs a version reads from a feature view of the online store (docs/features.md)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    version: int = Field(ge=1)
    fallback: dict[str, Any] = Field(default_factory=dict)
    """Non-personalized values of the view's features, used for a subject who opted out of
    personalization (the population's typical values, not the subject's own)."""


class ServingConfig(BaseModel):
    """How a probability becomes a decision."""

    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    score_meaning: str = "probability of the positive class"
    positive_decision: str = "decline"
    negative_decision: str = "approve"
    tier: Literal["standard", "premium"] = "standard"
    """Which tenants may call the model: policy restricts premium models to premium tenants."""
    explain: bool = False
    """Explain every prediction (SHAP contributions, recorded with it): for high-impact models."""
    explanation_background: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    """Input rows a linear model's explanations are measured against (at most 100)."""
    regions: list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,15}$")]] | None = (
        Field(default=None, min_length=1, max_length=50)
    )
    """The regions whose data subjects this version may score (where it is approved and hosted
    for them; ``OMBUD_PRIVACY__REGIONS`` names them). Absent: every region."""

    feature_view: FeatureViewSource | None = None
    """The feature view the inputs a call leaves out are read from, for the call's subject
    and purpose (``model.features``); absent: every input comes with the call."""

    def serves(self, region: str | None) -> bool:
        """Whether a subject of ``region`` may be scored by this version (``None``: a call
        about no registered subject, which any version may serve)."""
        return region is None or self.regions is None or region in self.regions

    def unknown_regions(self, known: Collection[str]) -> list[str]:
        """The declared ``regions`` that are not among ``known`` (the configured ones)."""
        return sorted(set(self.regions or ()) - set(known))


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


# --- The registry API: models, versions, model cards and the approval workflow. ---

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9\-]{0,99}$"


class TimeRange(BaseModel):
    """The period a training data set covers (``from`` is a Python keyword, hence the alias)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to < self.from_:
            raise ValueError("the time range ends before it starts")
        return self


class LineageEntry(BaseModel):
    """One data set a version was trained on, and through which feature view it was read."""

    dataset_id: str = Field(min_length=1, max_length=200)
    time_range: TimeRange | None = None
    feature_view: str | None = Field(default=None, max_length=200)
    feature_view_version: int | None = Field(default=None, ge=1)


class CardFields(BaseModel):
    """What a version says about itself on its model card."""

    description: str = Field(default="", max_length=10_000)
    intended_use: str = Field(default="", max_length=10_000)
    limitations: str = Field(default="", max_length=10_000)
    lineage: list[LineageEntry] = Field(default_factory=list, max_length=100)
    metrics: dict[str, float] = Field(default_factory=dict, max_length=100)


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    owner: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=10_000)


class ModelRead(BaseModel):
    id: str
    name: str
    owner: str
    description: str
    created_at: datetime
    approved_version: int | None
    """The version that serves the name, if one is approved."""
    latest_version: int | None


class VersionCreate(CardFields):
    """A new draft version: the artifact's reference and digest, its input contract, its card."""

    model_config = ConfigDict(extra="forbid")

    artifact_uri: str = Field(min_length=1, max_length=2_000)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: ArtifactFormat
    input_schema: list[FeatureSpec] = Field(min_length=1, max_length=500)
    serving_config: ServingConfig = Field(default_factory=ServingConfig)

    @model_validator(mode="after")
    def _background_matches_inputs(self) -> Self:
        """Background rows are model inputs: each must pass the version's own input contract."""
        rows = self.serving_config.explanation_background or []
        if rows:
            check_background(rows, self.input_schema)
        return self


def check_background(rows: list[dict[str, Any]], specs: list[FeatureSpec]) -> None:
    """Raise ``ValueError`` naming the first background row that the input features refuse.

    Only ``input`` features may appear: protected attributes never reach the estimator.
    """
    from ombud.serving.features import build_validator  # deferred: serving imports this module

    validator = build_validator("background", [s for s in specs if s.role == "input"])
    for index, row in enumerate(rows):
        try:
            validator.model_validate(row)
        except ValidationError as exc:
            fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
            raise ValueError(
                f"explanation_background[{index}] does not match the input features: {fields}"
            ) from None


class Approval(BaseModel):
    """Where a version stands in review, and the last decision taken on it."""

    status: VersionStatus
    submitted_by: str | None
    submitted_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None


class VersionRead(CardFields):
    id: str
    model: str
    version: int
    format: ArtifactFormat
    artifact_uri: str
    sha256: str
    input_schema: list[FeatureSpec]
    serving_config: ServingConfig
    created_by: str | None
    created_at: datetime
    approval: Approval


class TransitionRead(BaseModel):
    """One entry of a version's append-only status history."""

    action: str
    from_status: VersionStatus | None
    to_status: VersionStatus
    actor: str
    reason: str | None
    at: datetime


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2_000)


class RejectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2_000, pattern=r"\S")


class ModelCard(BaseModel):
    """Everything a reader needs to judge a version, rendered from the registry."""

    model: str
    version: int
    owner: str
    model_description: str
    description: str
    intended_use: str
    limitations: str
    lineage: list[LineageEntry]
    metrics: dict[str, float]
    features: list[FeatureSpec]
    serving: ServingConfig
    artifact: dict[str, str]
    approval: Approval
    history: list[TransitionRead]
