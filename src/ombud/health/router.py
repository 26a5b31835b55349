"""``/healthz``: the process answers. ``/readyz``: the database (and Redis, when configured) too."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from ombud.api.deps import ContainerDep
from ombud.api.problems import PROBLEM_RESPONSES, respond
from ombud.container import Container
from ombud.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", name="health.live", summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", name="health.ready", summary="Readiness", responses={503: PROBLEM_RESPONSES[503]}
)
async def readyz(request: Request, container: ContainerDep) -> Any:
    checks = {"database": await _check(_database, container)}
    if container.redis is not None:
        checks["redis"] = await _check(_redis, container)
    if all(v == "ok" for v in checks.values()):
        return Health(status="ready", checks=checks)
    failing = ", ".join(k for k, v in checks.items() if v != "ok")
    response: JSONResponse = await respond(
        request, ServiceUnavailable(detail=f"not ready: {failing}"), audit=False
    )
    return response


async def _check(probe: Callable[[Container], Awaitable[None]], container: Container) -> str:
    try:
        with anyio.fail_after(CHECK_TIMEOUT_S):
            await probe(container)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; reported, not raised
        log.warning("readiness check %s failed: %s", probe.__name__, exc)
        return f"failed: {type(exc).__name__}"
    return "ok"


async def _database(container: Container) -> None:
    async with container.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis(container: Container) -> None:
    if container.redis is not None:
        await container.redis.ping()
