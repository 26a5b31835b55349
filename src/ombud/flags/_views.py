"""Converting between the stored row, the API's shapes and the evaluator's definition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ombud.flags.evaluation import FlagDefinition, FlagType
from ombud.flags.schemas import FlagRead, FlagWrite
from ombud.flags.tables import FeatureFlagRow


def definition(row: FeatureFlagRow) -> FlagDefinition:
    return FlagDefinition(
        key=row.key,
        type=FlagType(row.type),
        enabled=row.enabled,
        variants=dict(row.variants),
        default_variant=row.default_variant,
        tenant_overrides=dict(row.tenant_overrides),
        rollout_percent=row.rollout_percent,
        rollout_variant=row.rollout_variant,
    )


def flag_read(row: FeatureFlagRow) -> FlagRead:
    return FlagRead(
        key=row.key, type=FlagType(row.type), enabled=row.enabled, description=row.description,
        variants=row.variants, default_variant=row.default_variant,
        tenant_overrides=row.tenant_overrides, rollout_percent=row.rollout_percent,
        rollout_variant=row.rollout_variant, updated_by=row.updated_by,
        updated_at=row.updated_at,
    )  # fmt: skip


def stored_values(body: FlagWrite) -> Mapping[str, Any]:
    """The row's columns for ``body`` (JSON-safe, as the audit trail records them too)."""
    return body.model_dump(mode="json")
