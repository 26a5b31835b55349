"""The record writer: the one way prediction records and audit events reach the database.

Calls hand their records to :class:`GroupCommitWriter` and wait; one writer task commits
everything that arrived meanwhile in a single transaction (group commit), then releases every
waiter at once. A call is answered only after the transaction holding its records committed, so
no answered call can lose its records, and N concurrent calls cost far fewer than N commits.
Records are written apart from the request's unit of work, so a refusal's audit event survives
the request's rollback.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.events import AuditEvent
from ombud.audit.repository import AuditRepository
from ombud.core.errors import RecordsUnavailable
from ombud.deployments.records import DeploymentFailure, ShadowResult
from ombud.deployments.repository import DeploymentRepository
from ombud.llm.usage.records import UsageRecord
from ombud.llm.usage.repository import UsageRepository
from ombud.observability.metrics import Metrics
from ombud.policy.decision import PolicyDecision
from ombud.policy.log import PolicyDecisionRepository
from ombud.predictions.explanations import ExplanationRecord, ExplanationRepository
from ombud.predictions.records import PredictionRecord
from ombud.predictions.repository import PredictionRepository

log = logging.getLogger(__name__)

Record = (
    AuditEvent
    | PredictionRecord
    | PolicyDecision
    | UsageRecord
    | ExplanationRecord
    | ShadowResult
    | DeploymentFailure
)
_Entry = tuple[list[Record], "asyncio.Future[None]"]


class RecordWriter(Protocol):
    async def write(self, records: Sequence[Record]) -> None:
        """Persist ``records`` atomically; return once they are committed."""
        ...


async def commit_records(
    sessions: async_sessionmaker[AsyncSession], records: list[Record]
) -> int | None:
    """Write ``records`` in one transaction, extending the audit hash chain in it.

    Returns:
        The seq of the last audit event chained, or None when there were no audit events.
    """
    predictions = [r for r in records if isinstance(r, PredictionRecord)]
    events = [r for r in records if isinstance(r, AuditEvent)]
    decisions = [r for r in records if isinstance(r, PolicyDecision)]
    usage = [r for r in records if isinstance(r, UsageRecord)]
    explanations = [r for r in records if isinstance(r, ExplanationRecord)]
    shadow = [r for r in records if isinstance(r, ShadowResult)]
    failures = [r for r in records if isinstance(r, DeploymentFailure)]
    async with sessions.begin() as session:
        # Predictions first: an audit event may reference the prediction it records.
        await PredictionRepository(session).add(predictions)
        if explanations:  # after their predictions, which they reference
            await ExplanationRepository(session).add(explanations)
        if decisions:
            await PolicyDecisionRepository(session).add_many(decisions)
        if usage:
            await UsageRepository(session).add(usage)
        if shadow or failures:
            await DeploymentRepository(session).add_shadow_results(shadow)
            await DeploymentRepository(session).add_failures(failures)
        links = await AuditRepository(session).append(events)
    return links[-1].seq if links else None


class GroupCommitWriter:
    """Batches concurrent writes into shared transactions. Started on first use.

    A call waits at most ``wait_timeout_s`` for its batch: past it the call gets
    :class:`RecordsUnavailable` (and no answer), even if the batch commits later.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: Metrics,
        *,
        max_batch_records: int = 512,
        wait_timeout_s: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._max_batch = max_batch_records
        self._wait_timeout_s = wait_timeout_s
        self._pending: deque[_Entry] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        if self._closing:
            raise RecordsUnavailable(detail="the record writer is shutting down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((list(records), future))
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ombud-record-writer")
        try:
            # Shielded: a caller that gives up does not take its records out of the batch.
            await asyncio.wait_for(asyncio.shield(future), self._wait_timeout_s)
        except TimeoutError:
            raise RecordsUnavailable(detail="records were not committed in time") from None

    async def aclose(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        batch: list[_Entry] = []
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    batch = self._take_batch()
                    await self._commit(batch)
                    batch = []
                if self._closing:
                    return
        finally:
            # Whatever ends this task, no caller may be left waiting on a future nobody settles.
            error = RecordsUnavailable(detail="the record writer stopped")
            _settle([*batch, *self._pending], error)
            self._pending.clear()

    def _take_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max_batch):
            entry = self._pending.popleft()
            batch.append(entry)
            size += len(entry[0])
        return batch

    async def _commit(self, batch: list[_Entry]) -> None:
        records = [record for entry_records, _ in batch for record in entry_records]
        try:
            last_seq = await commit_records(self._sessions, records)
        except (IntegrityError, DataError) as exc:
            self._metrics.record_commits.labels("error").inc()
            if len(batch) > 1:
                # One bad record must not fail its neighbours: retry each call on its own.
                for entry in batch:
                    await self._commit([entry])
                return
            self._fail(batch, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every failure must release the waiting calls
            # The database itself is failing: fail the whole batch at once, don't retry per call.
            self._metrics.record_commits.labels("error").inc()
            self._fail(batch, exc)
            return
        self._metrics.record_commits.labels("ok").inc()
        self._metrics.record_batch_size.observe(len(records))
        if last_seq is not None:
            self._metrics.audit_chain_length.set(last_seq)
        _settle(batch, None)

    def _fail(self, batch: list[_Entry], exc: Exception) -> None:
        count = sum(len(entry_records) for entry_records, _ in batch)
        # The type only: a database error's text carries statement parameters (personal data).
        log.error("could not write %d records: %s", count, type(exc).__name__)
        error = RecordsUnavailable(detail="records could not be written")
        error.__cause__ = exc
        _settle(batch, error)


def _settle(batch: Iterable[_Entry], error: Exception | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
