"""The right to erasure (GDPR Art. 17): a request that shreds at once, and a cascade job.

``POST /v1/subjects/{id}/erasure`` (:meth:`ErasureService.request`):

1. authorizes ``subject.erase`` on the subject, in the caller's tenant (404 otherwise);
2. audits the request (``subject.erase``), then destroys the subject's data key: from that
   instant its vault, prediction inputs and explanations can never be decrypted again;
3. records the erasure (``subject_erasures``, pending), adds the subject to the
   training-exclusion list and enqueues the ``privacy.erasure`` job, in one transaction.

The job (:class:`ErasureJobs`) then removes every row and copy left: in every regional store
the subject, its vault, consents, preferences, access history, feature events and online
features (through the online store's ``delete``, in the database and in Redis); in the main
database its review items with their history, its predictions' explanations and the subject
column of its predictions and LLM usage; in the LLM response cache its entries. Predictions are
kept, de-identified: their inputs stay sealed under the destroyed key (unreadable for ever),
their outputs, outcomes and shadow scores carry no subject, and so KPIs, rollout monitors and
drift still count them; the free-text history of their outcomes' corrections is cleared.
SQLite stores securely delete (``secure_delete``) and are checkpointed afterwards, so no deleted
bytes stay in the file or its write-ahead log. The job is idempotent (a retry after a crash
finds less to delete), audits its completion (``subject.erased``, with the counts) and clears
the subject id from the erasure record, which from then on names the subject only by a keyed
hash (:func:`subject_ref`); so do the exclusion list and every lookup of a past erasure.

What stays: the audit trail (hash-chained, it names subjects by pseudonymous id only, and
hashes ciphertext) and the destroyed key's tombstone in ``data_keys`` (the owner id, no key
material; it is what refuses a new key for an erased subject).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.events import AuditEvent, Outcome
from ombud.authz import Authorizer, Resource
from ombud.core.clock import Clock
from ombud.core.errors import NotFound
from ombud.core.ids import new_id
from ombud.crypto.service import KeyManager
from ombud.features.online import DatabaseOnlineStore, OnlineStore, RedisOnlineStore
from ombud.features.tables import FeatureEventRow
from ombud.identity.principal import Principal
from ombud.jobs.queue import enqueue_in
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.llm.cache import CacheUnavailable, ResponseCache
from ombud.llm.usage.tables import LlmUsageRow
from ombud.outcomes.tables import PredictionOutcomeRow
from ombud.predictions.explanations import PredictionExplanationRow
from ombud.predictions.tables import PredictionRow
from ombud.privacy.exclusions import subject_ref
from ombud.privacy.regions import MAIN, RegionalStores
from ombud.privacy.rights_tables import (
    SubjectErasureRow,
    SubjectExternalRefRow,
    TrainingExclusionRow,
)
from ombud.privacy.schemas import ErasureRead, ErasureRequest
from ombud.privacy.tables import (
    DataSubjectRow,
    SubjectAccessRow,
    SubjectConsentRow,
    SubjectPreferenceRow,
    SubjectVaultRow,
)
from ombud.records.writer import RecordWriter
from ombud.review.tables import ReviewEventRow, ReviewRow

log = logging.getLogger(__name__)

ACTION = "subject.erase"
ERASURE_JOB = "privacy.erasure"
PENDING: Literal["pending"] = "pending"
COMPLETED: Literal["completed"] = "completed"
KEY_SCOPE = "subject"
_SUBJECT_TABLES = (
    (FeatureEventRow, FeatureEventRow.entity_id),
    (SubjectAccessRow, SubjectAccessRow.subject_id),
    (SubjectPreferenceRow, SubjectPreferenceRow.subject_id),
    (SubjectConsentRow, SubjectConsentRow.subject_id),
    (SubjectVaultRow, SubjectVaultRow.subject_id),
    (DataSubjectRow, DataSubjectRow.id),
)
"""Every table of a regional store that holds a subject's rows, children before parents."""


@dataclass(frozen=True, slots=True)
class ErasureDeps:
    """What erasure touches: every store, key management, the caches and the job queue."""

    regions: RegionalStores
    sessions: async_sessionmaker[AsyncSession]
    keys: KeyManager
    records: RecordWriter
    clock: Clock
    authorizer: Authorizer
    lookup_key: bytes
    redis: Redis | None
    llm_cache: ResponseCache | None
    max_attempts: int


class ErasureService:
    """Erasure requests and their status (see the module docstring)."""

    def __init__(self, deps: ErasureDeps) -> None:
        self._d = deps

    async def request(
        self,
        principal: Principal,
        subject_id: str,
        body: ErasureRequest,
        *,
        request_id: str | None = None,
    ) -> tuple[ErasureRead, bool]:
        """Erase ``subject_id``: the key at once, the rest by the job. Returns the record and
        whether this call started it (false: it was already requested, nothing more is done).

        Raises:
            Forbidden: the principal may not erase subjects.
            NotFound: no such subject in the principal's tenant, and none erased.
        """
        d = self._d
        d.authorizer.authorize(principal, ACTION, Resource(kind="subject"))
        ref = subject_ref(d.lookup_key, subject_id)
        existing = await self._find(principal.tenant_id, ref)
        if existing is not None:
            return _read(existing), False
        home = await d.regions.home(subject_id)
        async with home.sessions() as session:
            subject = await session.get(DataSubjectRow, subject_id)
        if subject is None:
            raise NotFound(detail=f"no subject {subject_id!r}")
        resource = Resource(kind="subject", id=subject_id, tenant_id=subject.tenant_id)
        d.authorizer.authorize(principal, ACTION, resource)
        erasure_id = new_id("era")
        await self._audit(principal.id, principal.tenant_id, ACTION, subject_id, request_id,
                          {"erasure_id": erasure_id, "reason": body.reason})  # fmt: skip
        destroyed = await d.keys.destroy(scope=KEY_SCOPE, owner=subject_id)
        now = d.clock.now()
        row = SubjectErasureRow(
            id=erasure_id, tenant_id=subject.tenant_id, subject_ref=ref, subject_id=subject_id,
            status=PENDING, reason=body.reason, requested_by=principal.id, requested_at=now,
            report={"key_destroyed": destroyed},
        )  # fmt: skip
        try:
            async with d.sessions.begin() as session:
                # The exclusion first: its key (tenant, ref) makes a concurrent second request
                # fail here rather than start a second erasure.
                session.add(TrainingExclusionRow(tenant_id=subject.tenant_id, entity_ref=ref,
                                                 reason="erasure", added_at=now))  # fmt: skip
                await session.flush()
                session.add(row)
                await enqueue_in(
                    session, d.clock, ERASURE_JOB, {"erasure_id": erasure_id},
                    idempotency_key=f"{ERASURE_JOB}:{erasure_id}", max_attempts=d.max_attempts,
                )  # fmt: skip
        except IntegrityError:
            again = await self._find(principal.tenant_id, ref)
            if again is None:
                raise
            return _read(again), False
        return _read(row), True

    async def status(self, principal: Principal, subject_id: str) -> ErasureRead:
        """The erasure record of ``subject_id`` in the principal's tenant.

        Raises:
            Forbidden: the principal may not erase subjects.
            NotFound: the subject was never erased (or is another tenant's).
        """
        self._d.authorizer.authorize(principal, ACTION, Resource(kind="subject"))
        found = await self._find(principal.tenant_id, subject_ref(self._d.lookup_key, subject_id))
        if found is None:
            raise NotFound(detail=f"no erasure of subject {subject_id!r}")
        return _read(found)

    async def _find(self, tenant_id: str, ref: str) -> SubjectErasureRow | None:
        stmt = select(SubjectErasureRow).where(
            SubjectErasureRow.tenant_id == tenant_id, SubjectErasureRow.subject_ref == ref
        )
        async with self._d.sessions() as session:
            return (await session.scalars(stmt)).first()

    async def _audit(
        self,
        actor: str,
        tenant_id: str,
        action: str,
        subject_id: str,
        request_id: str | None,
        detail: dict[str, Any],
    ) -> None:
        await self._d.records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._d.clock.now(), actor=actor,
                action=action, resource=f"subject:{subject_id}", outcome=Outcome.SUCCESS,
                tenant_id=tenant_id, request_id=request_id, subject=subject_id, detail=detail,
            )
        ])  # fmt: skip


class ErasureJobs(ErasureService):
    """The ``privacy.erasure`` cascade (payload ``{"erasure_id": ...}``)."""

    def register(self, registry: JobRegistry) -> None:
        registry.register(ERASURE_JOB, self.run)

    async def run(self, context: JobContext) -> None:
        """Remove every copy of the erasure's subject, then complete the record.

        Raises:
            ValueError: the payload names no erasure.
        """
        erasure_id = context.payload.get("erasure_id")
        if not isinstance(erasure_id, str):
            raise ValueError(f"erasure_id must be an erasure id, not {erasure_id!r}")
        # Read apart from the job's session: its first statement is the final write, so an
        # SQLite read snapshot taken here cannot go stale under the cascade's own commits.
        async with self._d.sessions() as session:
            row = await session.get(SubjectErasureRow, erasure_id)
        if row is None:
            raise ValueError(f"no erasure {erasure_id!r}")
        if row.status == COMPLETED or row.subject_id is None:
            return
        await self.cascade(row.id, row.subject_id, row.tenant_id)
        async with self._d.sessions() as session:
            report = (await session.scalars(
                select(SubjectErasureRow.report).where(SubjectErasureRow.id == erasure_id)
            )).one()  # fmt: skip
        removed = report.get("removed", {})
        await self._audit("system:erasure", row.tenant_id, "subject.erased", row.subject_id,
                          None, {"erasure_id": row.id, "removed": removed})  # fmt: skip
        await context.session.execute(
            update(SubjectErasureRow)
            .where(SubjectErasureRow.id == erasure_id)
            .values(status=COMPLETED, subject_id=None, completed_at=context.clock.now(),
                    report={**report, "removed": removed})
        )  # fmt: skip

    async def cascade(self, erasure_id: str, subject_id: str, tenant_id: str) -> None:
        """Delete ``subject_id``'s rows everywhere. What each step removed is added to the
        erasure's ``report.removed`` (per store and table) as soon as the step is done, so an
        attempt that fails half-way leaves its counts for the retry to add to."""
        d = self._d
        for store in d.regions.stores:
            online: OnlineStore = DatabaseOnlineStore(store.sessions)
            counts = {"online_features": await online.delete(tenant_id, [subject_id])}
            async with store.sessions.begin() as session:
                for table, column in _SUBJECT_TABLES:
                    result = await session.execute(delete(table).where(column == subject_id))
                    counts[table.__tablename__] = _count(result)
            await self._note(erasure_id, store.name, counts)
        async with d.sessions.begin() as session:
            # In the transaction of the deletes: the count cannot be lost, or counted twice.
            await _note(session, erasure_id, MAIN, await _main_rows(session, subject_id))
        redis = {"online_features": await self._redis_keys(subject_id, tenant_id)}
        await self._note(erasure_id, "redis", redis)
        await self._note(erasure_id, "llm_cache", {"entries": await self._cache(subject_id)})
        for store in d.regions.stores:
            await _compact(store.sessions)
        d.regions.forget(subject_id)

    async def _note(self, erasure_id: str, where: str, counts: dict[str, int]) -> None:
        if any(counts.values()):
            async with self._d.sessions.begin() as session:
                await _note(session, erasure_id, where, counts)

    async def _redis_keys(self, subject_id: str, tenant_id: str) -> int:
        # Whichever online store is configured now: hashes written under an earlier
        # configuration are the subject's data too.
        if self._d.redis is None:
            return 0
        return await RedisOnlineStore(self._d.redis).delete(tenant_id, [subject_id])

    async def _cache(self, subject_id: str) -> int:
        if self._d.llm_cache is None:
            return 0
        try:
            return await self._d.llm_cache.forget_subject(subject_id)
        except CacheUnavailable:
            log.warning("LLM cache erasure of a subject failed; the job will retry")
            raise


async def _main_rows(session: AsyncSession, subject_id: str) -> dict[str, int]:
    """The subject's reviews and predictions' explanations deleted; its predictions and LLM
    usage de-identified. One transaction: the subject column, cleared last, is what finds the
    rest, so a retry after a failure finds everything again."""
    predictions = select(PredictionRow.id).where(PredictionRow.subject == subject_id)
    reviews = select(ReviewRow.id).where(ReviewRow.subject == subject_id)
    outcomes = PredictionOutcomeRow.prediction_id.in_(predictions)
    steps: list[tuple[str, Any]] = [
        ("prediction_explanations",
         delete(PredictionExplanationRow).where(PredictionExplanationRow.prediction_id.in_(predictions))),
        # The corrections' justifications are free text: they may name the person.
        ("prediction_outcomes", update(PredictionOutcomeRow).where(outcomes).values(history=[])),
        ("review_events", delete(ReviewEventRow).where(ReviewEventRow.review_id.in_(reviews))),
        ("reviews", delete(ReviewRow).where(ReviewRow.subject == subject_id)),
        ("predictions",
         update(PredictionRow).where(PredictionRow.subject == subject_id).values(subject=None)),
        ("subject_external_refs",
         delete(SubjectExternalRefRow).where(SubjectExternalRefRow.subject_id == subject_id)),
        ("llm_usage",
         update(LlmUsageRow).where(LlmUsageRow.subject == subject_id).values(subject=None)),
    ]  # fmt: skip
    counts: dict[str, int] = {}
    for name, statement in steps:
        counts[name] = _count(await session.execute(statement))
    return {k: v for k, v in counts.items() if v}


async def _note(session: AsyncSession, erasure_id: str, where: str, counts: dict[str, int]) -> None:
    """Add ``counts`` (rows removed or cleared, by table) to the erasure's report."""
    found = {name: n for name, n in counts.items() if n}
    if not found:
        return
    row = await session.get(SubjectErasureRow, erasure_id, with_for_update=True)
    if row is None:
        raise ValueError(f"no erasure {erasure_id!r}")
    removed: dict[str, dict[str, int]] = dict(row.report.get("removed", {}))
    place = dict(removed.get(where, {}))
    for name, n in found.items():
        place[name] = place.get(name, 0) + n
    row.report = {**row.report, "removed": {**removed, where: place}}


async def _compact(sessions: async_sessionmaker[AsyncSession]) -> None:
    """SQLite: move the write-ahead log into the file and truncate it, so deleted rows (zeroed
    by ``secure_delete``) leave no copy in the log. PostgreSQL reclaims dead rows by vacuum."""
    async with sessions() as session:
        if session.get_bind().dialect.name == "sqlite":
            await session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _read(row: SubjectErasureRow) -> ErasureRead:
    return ErasureRead(
        erasure_id=row.id,
        status=COMPLETED if row.status == COMPLETED else PENDING,
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        completed_at=row.completed_at,
        report=row.report,
    )
