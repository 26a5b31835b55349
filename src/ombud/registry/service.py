"""Registry rules: registering models and versions, and which version serves a model name."""

from __future__ import annotations

from ombud.core.clock import Clock
from ombud.core.errors import ModelNotFound
from ombud.core.ids import new_id
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import (
    ArtifactFormat,
    FeatureSpec,
    ModelVersion,
    ServingConfig,
    VersionStatus,
)
from ombud.registry.tables import ModelVersionRow, RegisteredModelRow


class RegistryService:
    def __init__(self, repository: RegistryRepository, clock: Clock) -> None:
        self._repo = repository
        self._clock = clock

    async def register_version(
        self,
        *,
        model: str,
        artifact_uri: str,
        sha256: str,
        artifact_format: ArtifactFormat,
        features: list[FeatureSpec],
        serving: ServingConfig,
        status: VersionStatus = VersionStatus.DRAFT,
        description: str = "",
        owner: str = "",
    ) -> ModelVersion:
        """Add the next version of ``model`` (registering the model on first use)."""
        model_row = await self._repo.model_by_name(model)
        if model_row is None:
            model_row = RegisteredModelRow(
                id=new_id("mdl"),
                name=model,
                description=description,
                owner=owner,
                created_at=self._clock.now(),
            )
            self._repo.add(model_row)
            await self._repo.flush()
        version_row = ModelVersionRow(
            id=new_id("mv"),
            model_id=model_row.id,
            version=await self._repo.next_version_number(model_row.id),
            status=status.value,
            format=artifact_format.value,
            artifact_uri=artifact_uri,
            sha256=sha256,
            input_schema=[f.model_dump() for f in features],
            serving_config=serving.model_dump(),
            created_at=self._clock.now(),
        )
        self._repo.add(version_row)
        await self._repo.flush()
        return _version(model_row, version_row)

    async def serving_version(self, model: str) -> ModelVersion:
        """The newest approved version of ``model``; unknown or unapproved models are not found."""
        found = await self._repo.latest_with_status(model, VersionStatus.APPROVED)
        if found is None:
            raise ModelNotFound(detail=f"no approved model named {model!r}")
        return _version(*found)


def _version(model: RegisteredModelRow, row: ModelVersionRow) -> ModelVersion:
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
