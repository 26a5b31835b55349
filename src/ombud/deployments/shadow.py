"""Shadow deployments: the candidate scores a mirror of each call the stable version answered.

Mirrors run after the stable answer is recorded, in tasks of their own, on threads of their own
(at most ``shadow_concurrency``, never the inference pool that answers calls), so a candidate
that fails, hangs or is slow never changes a response. At most ``shadow_queue`` mirrors wait for
a thread; past that a mirror is dropped and counted (``ombud_shadow_mirrors_total{outcome=
"dropped"}``). A candidate slower than ``shadow_timeout_s`` is recorded as a ``timeout``. Each
result goes to ``shadow_results`` through the group-commit record writer, and to metrics.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from ombud.config import DeploymentSettings
from ombud.core.clock import Clock
from ombud.core.ids import new_id
from ombud.deployments.failures import TIMEOUT, error_kind
from ombud.deployments.records import ShadowResult
from ombud.deployments.routing import DeploymentRouting
from ombud.deployments.schemas import Arm, DeploymentMode
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome as StageOutcome
from ombud.observability.metrics import Metrics
from ombud.records.writer import RecordWriter
from ombud.registry.schemas import ModelVersion
from ombud.serving.ports import AnyRuntime
from ombud.serving.runtime import LoadedModel
from ombud.serving.schemas import PredictionRead

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mirror:
    """One call to replay on a shadow deployment's candidate."""

    deployment_id: str
    candidate: ModelVersion
    features: dict[str, Any]
    prediction_id: str
    stable_score: float


class ShadowMirror:
    """Runs mirrors in the background, bounded; see the module docstring."""

    def __init__(
        self,
        runtime: AnyRuntime,
        records: RecordWriter,
        metrics: Metrics,
        clock: Clock,
        settings: DeploymentSettings,
    ) -> None:
        self._runtime = runtime
        self._records = records
        self._metrics = metrics
        self._clock = clock
        self._settings = settings
        self._capacity = settings.shadow_concurrency + settings.shadow_queue
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None

    @property
    def pending(self) -> int:
        """Mirrors running or waiting for a thread."""
        return len(self._tasks)

    def submit(self, mirror: Mirror) -> bool:
        """Start ``mirror`` in the background; False (and counted) when the queue is full."""
        if len(self._tasks) >= self._capacity:
            self._metrics.shadow_mirrors.labels(mirror.candidate.model, "dropped").inc()
            return False
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._settings.shadow_concurrency)
        task = asyncio.create_task(self._run(mirror, self._slots), name="ombud-shadow")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def drain(self) -> None:
        """Wait until every mirror submitted so far is finished and recorded."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Abandon unfinished mirrors (their threads finish on their own, unrecorded)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self, mirror: Mirror, slots: asyncio.Semaphore) -> None:
        async with slots:
            started = self._clock.monotonic()
            score, error = await self._score(mirror)
            latency_ms = (self._clock.monotonic() - started) * 1000.0
        if error is None and latency_ms > self._settings.shadow_timeout_s * 1000.0:
            score, error = None, TIMEOUT
        result = ShadowResult(
            id=new_id("shr"), deployment_id=mirror.deployment_id,
            prediction_id=mirror.prediction_id, stable_score=mirror.stable_score,
            candidate_score=score, error=error, latency_ms=latency_ms,
            created_at=self._clock.now(),
        )  # fmt: skip
        self._count(mirror, result)
        try:
            await self._records.write([result])
        except Exception as exc:  # noqa: BLE001 - a lost comparison must not take the process down
            log.error("could not record a shadow result of %s: %s", mirror.deployment_id,
                      type(exc).__name__)  # fmt: skip

    async def _score(self, mirror: Mirror) -> tuple[float | None, str | None]:
        timeout_s = self._settings.shadow_timeout_s
        try:
            with anyio.fail_after(timeout_s):
                handle = await self._runtime.get(mirror.candidate)
            features = handle.validate(mirror.features)
            if isinstance(handle, LoadedModel):
                # In-process: a thread of the shadow's own, never the pool that answers calls.
                score = await anyio.to_thread.run_sync(
                    handle.score, features, abandon_on_cancel=True
                )
            else:
                with anyio.fail_after(timeout_s):
                    score = await self._runtime.score(handle, features)
        except Exception as exc:  # noqa: BLE001 - the candidate's failure is what the shadow records
            return None, error_kind(exc)
        return float(score), None

    def _count(self, mirror: Mirror, result: ShadowResult) -> None:
        model = mirror.candidate.model
        if result.candidate_score is None:
            self._metrics.shadow_mirrors.labels(model, "error").inc()
            return
        self._metrics.shadow_mirrors.labels(model, "compared").inc()
        diff = abs(result.candidate_score - result.stable_score)
        self._metrics.shadow_score_diff.labels(model).observe(diff)


class MirrorToCandidate:
    """``model.shadow``: hand a recorded stable answer of a shadow deployment to the mirror.

    Reads the deployment the call was routed by from the routing cache (no I/O), so nothing
    here can fail the call.
    """

    name = "model.shadow"

    def __init__(self, routing: DeploymentRouting, mirror: ShadowMirror) -> None:
        self._routing = routing
        self._mirror = mirror

    async def __call__(self, call: Call) -> StageOutcome:
        if call.deployment_id is None or call.arm != Arm.STABLE.value:
            return None
        if not isinstance(call.result, PredictionRead):
            return None
        deployment = self._routing.peek(call.target or "")
        if deployment is None or deployment.id != call.deployment_id:
            return None
        if deployment.mode is not DeploymentMode.SHADOW:
            return None
        self._mirror.submit(
            Mirror(
                deployment_id=deployment.id, candidate=deployment.candidate,
                features=dict(call.payload), prediction_id=call.result.prediction_id,
                stable_score=call.result.score,
            )
        )  # fmt: skip
        return None
