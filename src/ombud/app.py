"""The application factory: ``create_app(settings)`` builds a FastAPI app and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from ombud import __version__
from ombud.api import problems
from ombud.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from ombud.api.security_headers import SecurityHeadersMiddleware
from ombud.audit.router import router as audit_router
from ombud.compliance.router import router as compliance_router
from ombud.config import Settings
from ombud.container import Container
from ombud.core.clock import Clock
from ombud.deployments.router import router as deployments_router
from ombud.deployments.wiring import deployment_jobs
from ombud.features.declarations import load_views
from ombud.features.online_router import router as online_features_router
from ombud.features.router import router as features_router
from ombud.features.wiring import materialize_jobs
from ombud.flags.router import router as flags_router
from ombud.gateway.assembly import build_gateway
from ombud.health.router import router as health_router
from ombud.jobs.catalog import default_registry
from ombud.jobs.worker import build_worker
from ombud.llm.routes import router as llm_router
from ombud.llm.usage.router import router as usage_router
from ombud.observability.middleware import ObservabilityMiddleware
from ombud.observability.router import router as metrics_router
from ombud.outcomes.kpi_router import router as kpis_router
from ombud.outcomes.router import router as outcomes_router
from ombud.outcomes.wiring import kpi_jobs
from ombud.predictions.explanation_router import router as explanations_router
from ombud.predictions.router import router as predictions_router
from ombud.privacy.router import router as privacy_router
from ombud.privacy.wiring import privacy_jobs
from ombud.registry.promotion_router import router as promotion_router
from ombud.registry.router import router as registry_router
from ombud.review.router import router as reviews_router
from ombud.review.wiring import review_jobs
from ombud.serving.router import router as models_router

log = logging.getLogger(__name__)

DESCRIPTION = """\
ombud is the governed path for every AI call: it authenticates the caller, validates the
request, runs the model off the event loop, and records a prediction log and an audit event
before it answers. Errors are RFC 9457 `application/problem+json`.

Authenticate with `Authorization: Bearer <API key>` (or `x-api-key`). Optional request headers:
`X-Ombud-Purpose`, `X-Ombud-Subject` (pseudonymous), `X-Ombud-Feature`.
"""


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Build the public app. Nothing connects until the lifespan starts.

    With an internal listener configured, ``app.state.internal_app`` holds a second app with
    /metrics and health, sharing the container.
    """
    settings = settings or Settings()
    internal = _internal_app(settings) if settings.server.internal_port is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = Container.create(settings, clock=clock)
        try:
            app.state.container = container
            app.state.gateway = build_gateway(container)
            # Loads and validates the purposes catalog now: a broken one stops the start.
            app.state.data_access = container.data_access
            # The views' data categories and the online store's choice are checked now too.
            app.state.online_features = container.online_features
            if internal is not None:
                internal.state.container = container
                internal.state.ready.set()
            async with anyio.create_task_group() as background:
                stop = anyio.Event()
                if settings.jobs.embedded_worker:
                    worker = build_worker(
                        sessions=container.sessions, clock=container.clock,
                        settings=settings.jobs, metrics=container.metrics,
                        registry=default_registry(
                            review=review_jobs(container),
                            deployments=deployment_jobs(container),
                            outcomes=kpi_jobs(container),
                            features=materialize_jobs(container),
                privacy=privacy_jobs(container),
                        ),
                    )  # fmt: skip
                    background.start_soon(worker.run, stop)
                background.start_soon(_flush_decisions, container, stop)
                try:
                    yield
                finally:
                    stop.set()
        finally:
            await container.aclose()

    app = FastAPI(title="ombud", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    _edge(app, settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    app.include_router(models_router)
    app.include_router(predictions_router)
    app.include_router(explanations_router)
    app.include_router(outcomes_router)
    app.include_router(audit_router)
    app.include_router(reviews_router)
    app.include_router(registry_router)
    app.include_router(deployments_router)
    app.include_router(promotion_router)
    app.include_router(kpis_router)
    app.include_router(llm_router)
    app.include_router(usage_router)
    app.include_router(flags_router)
    app.include_router(features_router)
    app.include_router(online_features_router)
    # Declarations are checked at start: a bad view stops the service, not a request.
    app.state.feature_catalog = load_views(settings.features.views_dir)
    app.include_router(privacy_router)
    app.include_router(compliance_router)
    if internal is None:
        app.include_router(metrics_router)
    app.state.internal_app = internal
    return app


async def _flush_decisions(container: Container, stop: anyio.Event) -> None:
    """Write buffered policy decisions (authorization decisions are buffered, not awaited)."""
    while not stop.is_set():
        with anyio.move_on_after(1.0):
            await stop.wait()
        try:
            await container.policy.flush()
        except Exception:
            # Deliberately broad: a failed write keeps the decisions buffered (flush puts them
            # back) and must not end the server's lifespan; the next round retries.
            log.exception("could not write policy decisions; retrying in a second")


def _edge(app: FastAPI, settings: Settings) -> None:
    problems.install(app)
    hsts = settings.server.tls if settings.server.hsts is None else settings.server.hsts
    app.add_middleware(SecurityHeadersMiddleware, hsts=hsts)


def _internal_app(settings: Settings) -> FastAPI:
    """Metrics and health for operators, on a listener that is not exposed to clients."""

    @asynccontextmanager
    async def wait_for_public(app: FastAPI) -> AsyncIterator[None]:
        # The public app's lifespan builds the shared container; serve nothing before it exists.
        await app.state.ready.wait()
        yield

    internal = FastAPI(
        title="ombud internal", version=__version__, lifespan=wait_for_public,
        docs_url=None, redoc_url=None, openapi_url=None,
    )  # fmt: skip
    internal.state.ready = anyio.Event()
    _edge(internal, settings)
    internal.add_middleware(RequestIdMiddleware)
    internal.include_router(health_router)
    internal.include_router(metrics_router)
    return internal
