"""The decision log: every policy decision is kept, in memory for tests or in the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.policy.decision import PolicyDecision
from ombud.policy.tables import PolicyDecisionRow


class DecisionLog(Protocol):
    """Where policy decisions go."""

    async def record(self, decisions: Sequence[PolicyDecision]) -> None:
        """Keep ``decisions`` durably (or raise)."""
        ...


class InMemoryDecisionLog:
    """Keeps decisions in a list; for tests and tools."""

    def __init__(self) -> None:
        self.decisions: list[PolicyDecision] = []

    async def record(self, decisions: Sequence[PolicyDecision]) -> None:
        self.decisions.extend(decisions)


_INSERT = insert(cast(Table, PolicyDecisionRow.__table__))


def _row(decision: PolicyDecision) -> dict[str, object]:
    return {
        "id": decision.id,
        "decided_at": decision.decided_at,
        "bundle_version": decision.bundle_version,
        "entrypoint": decision.entrypoint,
        "input_digest": decision.input_digest,
        "allow": decision.result.allow,
        "review": decision.result.review,
        "result": decision.result.as_json(),
        "latency_us": decision.latency_us,
        "error": decision.error,
    }


class PolicyDecisionRepository:
    """All SQL of the decision log."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_many(self, decisions: Sequence[PolicyDecision]) -> None:
        # A prepared Core insert: decisions are many (several per call) and never read back here.
        if decisions:
            await self._session.execute(_INSERT, [_row(d) for d in decisions])

    async def recent(self, limit: int = 100) -> list[PolicyDecisionRow]:
        """The latest decisions, newest first."""
        stmt = (
            select(PolicyDecisionRow)
            .order_by(PolicyDecisionRow.decided_at.desc(), PolicyDecisionRow.id)
            .limit(limit)
        )
        return list(await self._session.scalars(stmt))


class DatabaseDecisionLog:
    """Writes each batch through its own short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(self, decisions: Sequence[PolicyDecision]) -> None:
        if not decisions:
            return
        async with self._sessions.begin() as session:
            await PolicyDecisionRepository(session).add_many(decisions)


class RecordsDecisionLog:
    """Hands decisions to the record writer, which group-commits them with the call's records."""

    def __init__(self, records: DecisionWriter) -> None:
        self._records = records

    async def record(self, decisions: Sequence[PolicyDecision]) -> None:
        if decisions:
            await self._records.write(list(decisions))


class DecisionWriter(Protocol):
    async def write(self, records: Sequence[PolicyDecision]) -> None: ...
