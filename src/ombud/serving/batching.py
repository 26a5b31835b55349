"""Dynamic micro-batching of single-row predictions.

A scikit-learn estimator pays a fixed per-call overhead (input checks, column transforms, tree
traversal setup) that dwarfs the per-row work, so under concurrent load many single-row calls
cost far more than one call over the same rows. A :class:`MicroBatcher` queues each caller's row
and a collector task forms batches: up to ``max_batch_size`` rows, or whatever has arrived
``max_wait_ms`` after the first row. Each batch runs as ONE vectorized call in the inference
thread pool, never on the event loop, and every caller gets its own row's score back.

While every inference thread is busy the queue keeps filling, so batches grow with load without
any tuning. A latency bound keeps that from turning into unbounded queueing: behind a backlog (more
rows queued than one batch takes), a row that has waited longer than ``max_queue_delay_ms`` is
refused with :class:`Overloaded` (503 with ``Retry-After``) instead of being run late, and a queue
of ``max_queue_rows`` refuses new rows at once. Late rows that all fit in the next batch still
run: one vectorized call costs about the same with or without them. Time is read from the
injected :class:`Clock`, so the decisions can be tested without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread

from ombud.core.clock import Clock
from ombud.core.errors import ModelUnavailable, Overloaded

log = logging.getLogger(__name__)

T = TypeVar("T")

RunMany = Callable[[list[dict[str, Any]]], Sequence[T]]
"""A blocking, vectorized function of a batch of rows: one result per row, in order."""

RETRY_AFTER_S = 1
"""Shedding is about the next few milliseconds of load; a client may retry after a second."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How batches form and when rows are shed; see ``ServingSettings``."""

    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_queue_delay_ms: float = 50.0
    max_queue_rows: int = 1024

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_queue_rows < 1:
            raise ValueError("max_batch_size and max_queue_rows must be at least 1")
        if self.max_wait_ms < 0 or self.max_queue_delay_ms <= 0:
            raise ValueError("max_wait_ms must be >= 0 and max_queue_delay_ms > 0")


@dataclass(eq=False, slots=True)
class _Pending(Generic[T]):
    row: dict[str, Any]
    enqueued_at: float
    future: asyncio.Future[T]


class MicroBatcher(Generic[T]):
    """Collects single rows for one loaded model version into vectorized calls.

    ``score_many`` is blocking (it runs in a worker thread under ``limiter``) and must return
    one result per row, in order: a score (``MicroBatcher[float]``), or anything else computed
    per row in one vectorized call, such as explanations. At most ``limiter.total_tokens``
    batches of this model are in flight at once, so queued rows wait in the queue, where the
    latency bound applies, rather than in the thread pool, where it cannot.

    The collector task starts on the first row, on the running event loop, and is started
    again if the batcher is later used from another loop (each test, for instance, runs its own).
    """

    def __init__(
        self,
        score_many: RunMany[T],
        *,
        limiter: anyio.CapacityLimiter,
        clock: Clock,
        limits: BatchLimits | None = None,
        name: str = "model",
    ) -> None:
        self._score_many = score_many
        self._limiter = limiter
        self._clock = clock
        self.limits = limits or BatchLimits()
        self._name = name
        self._max_wait_s = self.limits.max_wait_ms / 1000.0
        self._max_delay_s = self.limits.max_queue_delay_ms / 1000.0
        self._queue: deque[_Pending[T]] = deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._collector: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._in_flight = 0
        self._batches: set[asyncio.Task[None]] = set()
        self.shed_rows = 0
        """Rows refused by the latency or queue bound since the batcher was made."""

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def score(self, row: dict[str, Any]) -> T:
        """This row's score from the next batch; :class:`Overloaded` if it cannot run in time."""
        if self._closed:
            raise ModelUnavailable(detail=f"{self._name} was unloaded")
        self._ensure_collector()
        if len(self._queue) >= self.limits.max_queue_rows:
            self._drop_cancelled()
            if len(self._queue) >= self.limits.max_queue_rows:
                raise self._shed(f"{self.limits.max_queue_rows} rows already queued")
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()
        pending = _Pending(row, self._clock.monotonic(), future)
        self._queue.append(pending)
        # The collector needs waking only to start a window or to close a full one.
        if len(self._queue) == 1 or len(self._queue) >= self.limits.max_batch_size:
            self._wake.set()
        # Cancelling the caller cancels the future; the collector then skips the row, or the
        # finished batch leaves that future alone.
        return await future

    def close(self) -> None:
        """Take no new rows; those already queued are still scored, then the collector ends."""
        self._closed = True
        self._wake.set()

    async def aclose(self) -> None:
        """Close and wait for the queued rows and in-flight batches to finish."""
        self.close()
        if self._collector is not None and self._loop is asyncio.get_running_loop():
            await asyncio.gather(self._collector, *self._batches, return_exceptions=True)

    def _ensure_collector(self) -> None:
        loop = asyncio.get_running_loop()
        if self._collector is not None and not self._collector.done() and self._loop is loop:
            return
        if self._loop is not loop:
            # Rows and batches of a loop that has gone away can never be answered.
            self._queue.clear()
            self._batches.clear()
            self._in_flight = 0
            self._wake = asyncio.Event()
        self._loop = loop
        self._collector = loop.create_task(self._collect(), name=f"batcher:{self._name}")

    async def _collect(self) -> None:
        try:
            while True:
                while not self._queue:
                    if self._closed:
                        return
                    await self._wait(None)
                # The window: until the batch is full or max_wait after its first row.
                first = self._queue[0].enqueued_at
                while len(self._queue) < self.limits.max_batch_size and not self._closed:
                    remaining = first + self._max_wait_s - self._clock.monotonic()
                    if remaining <= 0 or not await self._wait(remaining):
                        break
                # A free thread: rows keep queueing meanwhile, and expire on their deadline.
                while self._in_flight >= self._limiter.total_tokens:
                    self._shed_expired()
                    await self._wait(self._next_deadline())
                self._shed_expired()
                batch = self._take()
                if batch:
                    self._in_flight += 1
                    task = asyncio.get_running_loop().create_task(self._run(batch))
                    self._batches.add(task)
                    task.add_done_callback(self._batches.discard)
        except asyncio.CancelledError:
            self._fail_queued(ModelUnavailable(detail=f"{self._name} was unloaded"))
            raise
        except Exception as exc:  # the collector must not die silently with callers waiting
            log.exception("micro-batcher for %s failed", self._name)
            self._fail_queued(exc)

    async def _wait(self, timeout: float | None) -> bool:
        """Until woken (True) or ``timeout`` seconds pass (False)."""
        woken = True
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            woken = False
        self._wake.clear()
        return woken

    def _next_deadline(self) -> float | None:
        """Seconds until the oldest row may be shed; None while there is no backlog to shed."""
        if len(self._queue) <= self.limits.max_batch_size:
            return None
        return max(0.0, self._queue[0].enqueued_at + self._max_delay_s - self._clock.monotonic())

    def _take(self) -> list[_Pending[T]]:
        batch: list[_Pending[T]] = []
        while self._queue and len(batch) < self.limits.max_batch_size:
            pending = self._queue.popleft()
            if not pending.future.done():
                batch.append(pending)
        return batch

    def _shed_expired(self) -> None:
        """Refuse, oldest first, rows past the latency bound while more are queued than one
        batch takes.

        Shedding exists to keep a backlog from delaying everyone behind it. Rows that all fit
        in the next batch form no backlog: they run in the same single vectorized call, so
        refusing the late ones among them would cost their callers an answer and save no one
        any time.
        """
        now = self._clock.monotonic()
        while (
            len(self._queue) > self.limits.max_batch_size
            and now - self._queue[0].enqueued_at > self._max_delay_s
        ):
            pending = self._queue.popleft()
            if not pending.future.done():
                waited_ms = (now - pending.enqueued_at) * 1000.0
                bound_ms = self._max_delay_s * 1000.0
                why = f"queued {waited_ms:.0f} ms, past the {bound_ms:.0f} ms bound"
                pending.future.set_exception(self._shed(why))

    def _shed(self, why: str) -> Overloaded:
        self.shed_rows += 1
        return Overloaded(
            detail=f"{self._name} is saturated: {why}",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    def _drop_cancelled(self) -> None:
        self._queue = deque(p for p in self._queue if not p.future.done())

    def _fail_queued(self, exc: BaseException) -> None:
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(exc)

    async def _run(self, batch: list[_Pending[T]]) -> None:
        try:
            rows = [p.row for p in batch]
            scores = await anyio.to_thread.run_sync(self._score_many, rows, limiter=self._limiter)
            if len(scores) != len(batch):
                raise RuntimeError(f"{len(scores)} scores for a batch of {len(batch)} rows")
        except Exception as exc:  # noqa: BLE001 - the model's error goes to its callers
            # One bad batch fails each of its callers with the model's own error.
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        else:
            for pending, score in zip(batch, scores, strict=True):
                if not pending.future.done():
                    pending.future.set_result(score)
        finally:
            for pending in batch:  # only when the batch task itself was cancelled
                if not pending.future.done():
                    pending.future.set_exception(
                        ModelUnavailable(detail=f"{self._name} was unloaded")
                    )
            self._in_flight -= 1
            self._wake.set()
