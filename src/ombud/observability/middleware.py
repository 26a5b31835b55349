"""Per-request metrics and one structured access-log line per request."""

from __future__ import annotations

import time

import structlog
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ombud.observability.metrics import Metrics

log = structlog.get_logger("ombud.access")


class ObservabilityMiddleware:
    """Binds the request id to the log context, times the request, labels it by route template
    (never the raw path, to keep metric cardinality bounded) and by model."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        state = scope.get("state", {})
        structlog.contextvars.bind_contextvars(
            request_id=state.get("request_id"), client_request_id=state.get("client_request_id")
        )
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = route.path if isinstance(route, Route) else "unmatched"
        call = scope.get("state", {}).get("call")
        version = getattr(call, "model_version", None)
        model = f"{version.model}:v{version.version}" if version is not None else ""
        metrics: Metrics = scope["app"].state.container.metrics
        metrics.request_duration.labels(template, scope["method"], str(status), model).observe(
            seconds
        )
        log.info(
            "request",
            method=scope["method"],
            route=template,
            status=status,
            duration_ms=round(seconds * 1000, 3),
        )
