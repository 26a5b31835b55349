"""Registry rules: registering models and versions, reading them back, and which version serves
a model name.

Status changes after registration go through :class:`~ombud.registry.approvals.ApprovalService`
(the state machine, its authorization and its audit trail). The service never commits: the
request or command that uses it owns the unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence

from ombud.core.clock import Clock
from ombud.core.errors import Conflict, ModelNotFound, NotFound
from ombud.core.ids import new_id
from ombud.registry._views import model_read, serving_view, transition_read, version_read
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import (
    ArtifactFormat,
    CardFields,
    FeatureSpec,
    ModelCreate,
    ModelRead,
    ModelVersion,
    ServingConfig,
    TransitionRead,
    VersionCreate,
    VersionRead,
    VersionStatus,
)
from ombud.registry.tables import ModelVersionEventRow, ModelVersionRow, RegisteredModelRow

REGISTER = "register"


class RegistryService:
    def __init__(self, repository: RegistryRepository, clock: Clock) -> None:
        self._repo = repository
        self._clock = clock

    async def create_model(self, body: ModelCreate) -> ModelRead:
        """Register a model name; 409 when the name is taken."""
        if await self._repo.model_by_name(body.name) is not None:
            raise Conflict(detail=f"a model named {body.name!r} already exists")
        row = await self._new_model(body.name, body.description, body.owner)
        return model_read(row, None, None)

    async def exists(self, name: str) -> bool:
        return await self._repo.model_by_name(name) is not None

    async def list_models(self) -> list[ModelRead]:
        rows = await self._repo.models()
        summary = await self._repo.version_summary([r.id for r in rows])
        return [model_read(r, *summary.get(r.id, (None, None))) for r in rows]

    async def get_model(self, name: str) -> ModelRead:
        row = await self.model_row(name)
        approved, latest = (await self._repo.version_summary([row.id])).get(row.id, (None, None))
        return model_read(row, approved, latest)

    async def create_version(self, name: str, body: VersionCreate, *, actor: str) -> VersionRead:
        """Add the next version of an existing model as a draft."""
        model = await self.model_row(name)
        card = CardFields.model_validate(body.model_dump(include=set(CardFields.model_fields)))
        row = await self._new_version(
            model, artifact_uri=body.artifact_uri, sha256=body.sha256,
            artifact_format=body.format, features=body.input_schema,
            serving=body.serving_config, status=VersionStatus.DRAFT, card=card, actor=actor,
        )  # fmt: skip
        return version_read(model, row)

    async def list_versions(self, name: str) -> list[VersionRead]:
        model = await self.model_row(name)
        return [version_read(model, row) for row in await self._repo.versions(model.id)]

    async def get_version(self, name: str, version: int) -> VersionRead:
        return version_read(*await self.version_rows(name, version))

    async def history(self, version_id: str) -> list[TransitionRead]:
        return [transition_read(e) for e in await self._repo.events(version_id)]

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
        card: CardFields | None = None,
        actor: str = "system",
    ) -> ModelVersion:
        """Add the next version of ``model`` (registering the model on first use).

        This is the operator's bootstrap path (the demo seed, imports): ``status`` is set as
        given and recorded as decided by ``actor``; earlier approved versions stay approved
        (deprecation is explicit). Requests use :meth:`create_version` and the approval
        workflow instead.
        """
        model_row = await self._repo.model_by_name(model)
        if model_row is None:
            model_row = await self._new_model(model, description, owner)
        row = await self._new_version(
            model_row, artifact_uri=artifact_uri, sha256=sha256,
            artifact_format=artifact_format, features=features, serving=serving,
            status=status, card=card or CardFields(description=description), actor=actor,
        )  # fmt: skip
        if status is not VersionStatus.DRAFT:
            now = self._clock.now()
            row.submitted_by, row.submitted_at = actor, now
            if status in (VersionStatus.APPROVED, VersionStatus.REJECTED):
                row.decided_by, row.decided_at = actor, now
                row.decision_reason = "registered by the operator"
            await self._repo.flush()
        return serving_view(model_row, row)

    async def serving_version(self, model: str) -> ModelVersion:
        """The newest approved version of ``model``; unknown or unapproved models are not found.

        This is what serves the model when no deployment is active for it (an active deployment
        routes each call to its stable or candidate version instead).
        """
        found = await self._repo.latest_with_status(model, VersionStatus.APPROVED)
        if found is None:
            raise ModelNotFound(detail=f"no approved model named {model!r}")
        return serving_view(*found)

    async def version_view(self, name: str, version: int) -> ModelVersion:
        """``name`` v``version`` as the serving layer needs it, whatever its status."""
        return serving_view(*await self.version_rows(name, version))

    async def model_row(self, name: str) -> RegisteredModelRow:
        row = await self._repo.model_by_name(name)
        if row is None:
            raise ModelNotFound(detail=f"no model named {name!r} in the registry")
        return row

    async def version_rows(
        self, name: str, version: int
    ) -> tuple[RegisteredModelRow, ModelVersionRow]:
        model = await self.model_row(name)
        row = await self._repo.version(model.id, version)
        if row is None:
            raise NotFound(detail=f"model {name!r} has no version {version}")
        return model, row

    async def approved_rows(self, model_id: str) -> Sequence[ModelVersionRow]:
        return await self._repo.with_status(model_id, VersionStatus.APPROVED)

    async def move(
        self,
        row: ModelVersionRow,
        *,
        action: str,
        to: VersionStatus,
        actor: str,
        reason: str | None,
        values: dict[str, object] | None = None,
    ) -> None:
        """Apply one transition if nobody moved the version since it was read (else 409), and
        append it to the version's history."""
        before = VersionStatus(row.status)
        if not await self._repo.move(row.id, before, {**(values or {}), "status": to.value}):
            raise Conflict(detail="the version changed meanwhile; read it again")
        await self._repo.refresh(row)
        await self._append(row, action, before, to, actor, reason)

    async def _new_model(self, name: str, description: str, owner: str) -> RegisteredModelRow:
        row = RegisteredModelRow(
            id=new_id("mdl"), name=name, description=description, owner=owner,
            created_at=self._clock.now(),
        )  # fmt: skip
        self._repo.add(row)
        await self._repo.flush()
        return row

    async def _new_version(
        self,
        model: RegisteredModelRow,
        *,
        artifact_uri: str,
        sha256: str,
        artifact_format: ArtifactFormat,
        features: list[FeatureSpec],
        serving: ServingConfig,
        status: VersionStatus,
        card: CardFields,
        actor: str,
    ) -> ModelVersionRow:
        row = ModelVersionRow(
            id=new_id("mv"), model_id=model.id,
            version=await self._repo.next_version_number(model.id), status=status.value,
            format=artifact_format.value, artifact_uri=artifact_uri, sha256=sha256,
            input_schema=[f.model_dump() for f in features],
            serving_config=serving.model_dump(), created_at=self._clock.now(),
            description=card.description, intended_use=card.intended_use,
            limitations=card.limitations,
            lineage=[e.model_dump(mode="json", by_alias=True) for e in card.lineage],
            metrics=dict(card.metrics), created_by=actor,
        )  # fmt: skip
        self._repo.add(row)
        await self._repo.flush()
        await self._append(row, REGISTER, None, status, actor, None)
        return row

    async def _append(
        self,
        row: ModelVersionRow,
        action: str,
        before: VersionStatus | None,
        to: VersionStatus,
        actor: str,
        reason: str | None,
    ) -> None:
        seq = len(await self._repo.events(row.id)) + 1
        self._repo.add(
            ModelVersionEventRow(
                id=new_id("mve"), version_id=row.id, seq=seq, action=action,
                from_status=before.value if before else None, to_status=to.value, actor=actor,
                reason=reason, occurred_at=self._clock.now(),
            )
        )  # fmt: skip
        await self._repo.flush()
