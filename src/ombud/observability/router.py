"""``/metrics`` in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ombud.api.deps import ContainerDep

router = APIRouter(tags=["observability"])


@router.get("/metrics", name="observability.metrics", include_in_schema=True)
async def metrics(container: ContainerDep) -> Response:
    """Prometheus metrics of this process."""
    return Response(container.metrics.render(), media_type=container.metrics.content_type)
