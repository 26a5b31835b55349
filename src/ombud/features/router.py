"""``/v1/events`` and ``/v1/features/{view}/historical``: feeding the offline store and
reading point-in-time training sets out of it, within the caller's tenant.

The declared views are loaded once, when the app is created (``OMBUD_FEATURES__VIEWS_DIR``),
and kept on the app's state.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from ombud.api.deps import ContainerDep, PrincipalDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.features import ingest, training
from ombud.features.definitions import NAME, FeatureCatalog
from ombud.features.ingest import IngestService
from ombud.features.schemas import (
    EventBatch,
    EventsIn,
    HistoricalRequest,
    IngestResult,
    TrainingSet,
)
from ombud.features.training import TrainingSetService
from ombud.privacy.exclusions import TrainingExclusions
from ombud.privacy.wiring import lookup_key

router = APIRouter(tags=["features"])

ViewName = Annotated[str, Path(pattern=NAME)]


async def get_catalog(request: Request) -> FeatureCatalog:
    """The declarations loaded at start (none when the app was built without them)."""
    catalog = getattr(request.app.state, "feature_catalog", None)
    return catalog if isinstance(catalog, FeatureCatalog) else FeatureCatalog()


CatalogDep = Annotated[FeatureCatalog, Depends(get_catalog)]
INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    201: {"model": IngestResult, "description": "Events were stored"},
}


@router.post("/v1/events", name=ingest.ACTION, summary="Ingest events", responses=INGEST_RESPONSES)
async def ingest_events(
    body: EventsIn,
    request: Request,
    response: Response,
    principal: PrincipalDep,
    container: ContainerDep,
    catalog: CatalogDep,
) -> IngestResult:
    """Store one event, or ``{"events": [...]}`` (up to 1,000), each checked against its
    declared event type; one bad event refuses the whole batch (422, every problem listed).
    Answers 201 when anything was stored, 200 when every event was a repeat."""
    resource = Resource(kind="events", tenant_id=principal.tenant_id)
    container.authorizer.authorize(principal, ingest.ACTION, resource)
    service = IngestService(
        container.regions, catalog, container.clock, container.records,
        max_skew=timedelta(seconds=container.settings.features.max_clock_skew_s),
        exclusions=TrainingExclusions(container.sessions, lookup_key(container)),
    )  # fmt: skip
    batch = isinstance(body, EventBatch)
    events = body.events if isinstance(body, EventBatch) else [body]
    result = await service.ingest(
        principal, events, batch=batch, request_id=request.state.request_id
    )
    response.status_code = 201 if result.stored else 200
    return result


@router.post(
    "/v1/features/{view}/historical", name=training.ACTION,
    summary="Build a point-in-time training set", responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def historical(
    view: ViewName,
    body: HistoricalRequest,
    request: Request,
    principal: PrincipalDep,
    container: ContainerDep,
    catalog: CatalogDep,
) -> TrainingSet:
    """The view's features for each ``(entity_id, label_time)`` row (up to 10,000), from only
    the events at or before each label time; 404 for an unknown view or version."""
    # The action first, so a caller without the right cannot probe which views exist.
    container.authorizer.authorize(principal, training.ACTION, Resource(kind="feature_view"))
    declared = catalog.view(view, body.version)
    resource = Resource(kind="feature_view", id=declared.id, tenant_id=principal.tenant_id)
    container.authorizer.authorize(principal, training.ACTION, resource)
    service = TrainingSetService(
        container.regions, container.clock, container.records,
        max_events=container.settings.features.historical_max_events,
        exclusions=TrainingExclusions(container.sessions, lookup_key(container)),
    )  # fmt: skip
    return await service.training_set(
        principal, declared, body, request_id=request.state.request_id
    )
