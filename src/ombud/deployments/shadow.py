"""Shadow deployments: the candidate scores a mirror of each call the stable version answered.

Mirrors run after the stable answer is recorded, in tasks of their own, on threads of their own
(at most ``shadow_concurrency``, never the inference pool that answers calls), so a candidate
that fails, hangs or is slow never changes a response. At most ``shadow_queue`` mirrors wait for
a thread; past that a mirror is dropped and counted (``ombud_shadow_mirrors_total{outcome=
"dropped"}``). Loading and scoring together are bounded by ``shadow_timeout_s``: a slower
candidate is recorded as a ``timeout`` and its slot is freed at once, while its thread (which
cannot be stopped) is left to finish on its own and its late answer is discarded. At most
``shadow_concurrency`` such abandoned threads may be alive at a time; while that many are, new
mirrors are dropped and counted, so a candidate that hangs for good cannot pile up threads.
Each result goes to ``shadow_results`` through the group-commit record writer, and to metrics.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
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


class _AllThreadsHeld(Exception):
    """No scoring thread is free: each is still held by a candidate that timed out."""


class ScoringThreads:
    """Counts scoring threads that are alive, abandoned ones included.

    A thread cannot be stopped: a candidate that hangs keeps its thread after the mirror timed
    out and freed its slot. This caps how many threads scorings may hold at once (running or
    abandoned), so a candidate that never returns cannot make the process start thread after
    thread.
    """

    def __init__(self, limit: int) -> None:
        self._free = threading.BoundedSemaphore(limit)

    def job(self, score: Callable[[], float]) -> _ThreadJob | None:
        """A job holding one thread's place, or None when every place is held."""
        if not self._free.acquire(blocking=False):
            return None
        return _ThreadJob(score, self._free.release)


class _ThreadJob:
    """One scoring that gives its place back exactly once: when its thread finishes, or when
    it is abandoned before a thread ever started it."""

    def __init__(self, score: Callable[[], float], release: Callable[[], None]) -> None:
        self._score = score
        self._release = release
        self._lock = threading.Lock()
        self._started = False
        self._abandoned = False

    def run(self) -> float:
        """In the thread."""
        with self._lock:
            if self._abandoned:
                raise TimeoutError("abandoned before it started")
            self._started = True
        try:
            return self._score()
        finally:
            self._release()

    def abandon(self) -> None:
        """On the event loop, when the wait for the thread ends early (timeout, shutdown)."""
        with self._lock:
            if self._started or self._abandoned:
                return
            self._abandoned = True
        self._release()


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
        self._slots: tuple[asyncio.Semaphore, anyio.CapacityLimiter] | None = None
        self._threads = ScoringThreads(2 * settings.shadow_concurrency)

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
            # Made on the event loop, at the first mirror.
            concurrency = self._settings.shadow_concurrency
            self._slots = asyncio.Semaphore(concurrency), anyio.CapacityLimiter(concurrency)
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

    async def _run(
        self, mirror: Mirror, slots: tuple[asyncio.Semaphore, anyio.CapacityLimiter]
    ) -> None:
        semaphore, limiter = slots
        async with semaphore:
            started = self._clock.monotonic()
            try:
                score, error = await self._score(mirror, limiter)
            except _AllThreadsHeld:
                self._metrics.shadow_mirrors.labels(mirror.candidate.model, "dropped").inc()
                return
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

    async def _score(
        self, mirror: Mirror, limiter: anyio.CapacityLimiter
    ) -> tuple[float | None, str | None]:
        """The candidate's score, or the kind of its failure; ``timeout`` past the shadow
        timeout, which bounds loading and scoring together.

        Raises:
            _AllThreadsHeld: every scoring thread is still held by a hung candidate.
        """
        try:
            with anyio.fail_after(self._settings.shadow_timeout_s):
                handle = await self._runtime.get(mirror.candidate)
                features = handle.validate(mirror.features)
                if isinstance(handle, LoadedModel):
                    score = await self._in_thread(handle, features, limiter)
                else:
                    score = await self._runtime.score(handle, features)
        except _AllThreadsHeld:
            raise
        except Exception as exc:  # noqa: BLE001 - the candidate's failure is what the shadow records
            return None, error_kind(exc)
        return float(score), None

    async def _in_thread(
        self, handle: LoadedModel, features: dict[str, Any], limiter: anyio.CapacityLimiter
    ) -> float:
        """Score in a thread of the shadow's own (its own limiter: never the pool that answers
        calls). Cancelled by the timeout, the thread is abandoned and its answer discarded."""
        job = self._threads.job(lambda: handle.score(features))
        if job is None:
            raise _AllThreadsHeld
        try:
            return await anyio.to_thread.run_sync(job.run, abandon_on_cancel=True, limiter=limiter)
        except BaseException:
            job.abandon()
            raise

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
        if not deployment.candidate.serving.serves(call.subject_region):
            return None  # residency: the subject's data goes to no version outside its region
        self._mirror.submit(
            Mirror(
                deployment_id=deployment.id, candidate=deployment.candidate,
                features=dict(call.payload), prediction_id=call.result.prediction_id,
                stable_score=call.result.score,
            )
        )  # fmt: skip
        return None
