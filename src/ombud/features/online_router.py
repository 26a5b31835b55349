"""``POST /v1/features/{view}/online``: a view's current features for up to 100 entities,
read from the online store for the purpose declared in ``X-Ombud-Purpose``.

Everything is decided by :meth:`~ombud.features.online_reads.OnlineFeatures.get_features`,
the same call in-process callers make: ``feature.read``, the purpose, and for subject views
the data access layer's check of every subject (403 without consent or with a purpose that may
not read the view's data categories; audited there).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from ombud.api.deps import ContainerDep, PrincipalDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.features.definitions import NAME
from ombud.features.online_reads import ACTION, MAX_ENTITIES, find_view

router = APIRouter(tags=["features"])

ViewName = Annotated[str, Path(pattern=NAME)]
PurposeHeader = Annotated[str | None, Header(alias="X-Ombud-Purpose", max_length=64)]


class OnlineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=MAX_ENTITIES
    )
    version: int | None = Field(default=None, ge=1)
    """Default: the view's highest version."""


class OnlineRow(BaseModel):
    entity_id: str
    values: dict[str, JsonValue]
    """Every feature; all null when nothing was materialized or the values are stale."""
    event_ts: AwareDatetime | None
    """The time of the latest event behind the values."""
    materialized_at: AwareDatetime | None
    """When the values were computed."""
    stale: bool
    """Values exist but are older than the view's ``ttl_s``: served as nulls."""
    found: bool
    """Anything was materialized for the entity."""


class OnlineFeaturesOut(BaseModel):
    view: str
    name: str
    version: int
    entity: str
    features: list[str]
    rows: list[OnlineRow]
    """One per distinct entity asked for, in request order."""


@router.post(
    "/v1/features/{view}/online", name=ACTION,
    summary="Read a view's current features", responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def online(
    view: ViewName,
    body: OnlineRequest,
    request: Request,
    principal: PrincipalDep,
    container: ContainerDep,
    purpose: PurposeHeader = None,
) -> OnlineFeaturesOut:
    """The view's materialized features of each entity; missing or stale values are null."""
    service = container.online_features
    rows = await service.get_features(
        view, body.entity_ids, purpose, principal=principal, version=body.version,
        request_id=request.state.request_id,
    )  # fmt: skip
    # get_features found the view already (else it raised); this only names it.
    declared = find_view(service.catalog, view, body.version)
    return OnlineFeaturesOut(
        view=declared.id, name=declared.name, version=declared.version, entity=declared.entity,
        features=[f.name for f in declared.features],
        rows=[
            OnlineRow(
                entity_id=r.entity_id, values=r.values, event_ts=r.event_ts,
                materialized_at=r.materialized_at, stale=r.stale, found=r.found,
            )
            for r in rows.values()
        ],
    )  # fmt: skip
