"""Rows of the deployments domain as the API shows them."""

from __future__ import annotations

from ombud.deployments.schemas import (
    ArmWeights,
    DeploymentEventRead,
    DeploymentMode,
    DeploymentRead,
    DeploymentStatus,
    Guards,
)
from ombud.deployments.tables import DeploymentEventRow, DeploymentRow


def deployment_read(row: DeploymentRow) -> DeploymentRead:
    return DeploymentRead(
        id=row.id,
        model=row.model_name,
        mode=DeploymentMode(row.mode),
        status=DeploymentStatus(row.status),
        stable_version=row.stable_version,
        candidate_version=row.candidate_version,
        percent=row.percent,
        weights=ArmWeights.model_validate(row.weights) if row.weights else None,
        guards=Guards.model_validate(row.guards),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        ended_by=row.ended_by,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
    )


def event_read(row: DeploymentEventRow) -> DeploymentEventRead:
    return DeploymentEventRead(
        seq=row.seq,
        action=row.action,
        actor=row.actor,
        reason=row.reason,
        detail=dict(row.detail),
        occurred_at=row.occurred_at,
    )
