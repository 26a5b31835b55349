"""Rows of the registry as the API's schemas."""

from __future__ import annotations

from ombud.registry.schemas import (
    Approval,
    ArtifactFormat,
    FeatureSpec,
    LineageEntry,
    ModelRead,
    ModelVersion,
    ServingConfig,
    TransitionRead,
    VersionRead,
    VersionStatus,
)
from ombud.registry.tables import ModelVersionEventRow, ModelVersionRow, RegisteredModelRow


def resource_name(model: str, version: int) -> str:
    """How audit events name a version: ``model:<name>:v<version>``."""
    return f"model:{model}:v{version}"


def serving_view(model: RegisteredModelRow, row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        model=model.name,
        version=row.version,
        status=VersionStatus(row.status),
        format=ArtifactFormat(row.format),
        artifact_uri=row.artifact_uri,
        sha256=row.sha256,
        features=[FeatureSpec.model_validate(f) for f in row.input_schema],
        serving=ServingConfig.model_validate(row.serving_config),
    )


def model_read(row: RegisteredModelRow, approved: int | None, latest: int | None) -> ModelRead:
    return ModelRead(
        id=row.id, name=row.name, owner=row.owner, description=row.description,
        created_at=row.created_at, approved_version=approved, latest_version=latest,
    )  # fmt: skip


def approval(row: ModelVersionRow) -> Approval:
    return Approval(
        status=VersionStatus(row.status), submitted_by=row.submitted_by,
        submitted_at=row.submitted_at, decided_by=row.decided_by, decided_at=row.decided_at,
        reason=row.decision_reason,
    )  # fmt: skip


def version_read(model: RegisteredModelRow, row: ModelVersionRow) -> VersionRead:
    return VersionRead(
        id=row.id, model=model.name, version=row.version, format=ArtifactFormat(row.format),
        artifact_uri=row.artifact_uri, sha256=row.sha256,
        input_schema=[FeatureSpec.model_validate(f) for f in row.input_schema],
        serving_config=ServingConfig.model_validate(row.serving_config),
        description=row.description, intended_use=row.intended_use,
        limitations=row.limitations,
        lineage=[LineageEntry.model_validate(e) for e in row.lineage],
        metrics=dict(row.metrics), created_by=row.created_by, created_at=row.created_at,
        approval=approval(row),
    )  # fmt: skip


def transition_read(row: ModelVersionEventRow) -> TransitionRead:
    return TransitionRead(
        action=row.action,
        from_status=VersionStatus(row.from_status) if row.from_status else None,
        to_status=VersionStatus(row.to_status), actor=row.actor, reason=row.reason,
        at=row.occurred_at,
    )  # fmt: skip
