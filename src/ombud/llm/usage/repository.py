"""All SQL of LLM usage accounting: writing usage rows, summing them, and storing budgets."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ombud.identity.tables import ApiKeyRow
from ombud.llm.usage.records import UsageRecord
from ombud.llm.usage.tables import LlmBudgetRow, LlmUsageRow

GroupBy = Literal["day", "deployment", "feature", "subject", "key"]


class _utc_day(FunctionElement[str]):  # noqa: N801 - named like the SQL function it renders
    """``YYYY-MM-DD`` of a UTC timestamp column, on every supported backend."""

    type = String()
    name = "utc_day"
    inherit_cache = True


@compiles(_utc_day, "postgresql")
def _utc_day_postgresql(element: _utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(_utc_day)
def _utc_day_default(element: _utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps these columns as ISO text, already in UTC (UTCDateTime converts on write).
    column = compiler.process(element.clauses, **kw)
    return f"substr({column}, 1, 10)"


_GROUP_COLUMNS: dict[str, ColumnElement[Any] | InstrumentedAttribute[Any]] = {
    "day": _utc_day(LlmUsageRow.created_at),
    "deployment": LlmUsageRow.deployment,
    "feature": LlmUsageRow.feature,
    "subject": LlmUsageRow.subject,
    "key": LlmUsageRow.credential_id,
}


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which of a tenant's calls to add up; every field left None selects all."""

    tenant_id: str
    since: datetime | None = None
    until: datetime | None = None
    credential_id: str | None = None
    subject: str | None = None
    feature: str | None = None
    deployment: str | None = None
    alias: str | None = None
    route: str | None = None


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int
    input_tokens: int
    output_tokens: int
    cost_micro_usd: int
    cached_calls: int


@dataclass(frozen=True, slots=True)
class UsageGroup:
    key: str | None
    totals: UsageTotals


def _conditions(selection: UsageFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [LlmUsageRow.tenant_id == selection.tenant_id]
    if selection.since is not None:
        conditions.append(LlmUsageRow.created_at >= selection.since)
    if selection.until is not None:
        conditions.append(LlmUsageRow.created_at < selection.until)
    equal = {
        LlmUsageRow.credential_id: selection.credential_id,
        LlmUsageRow.subject: selection.subject,
        LlmUsageRow.feature: selection.feature,
        LlmUsageRow.deployment: selection.deployment,
        LlmUsageRow.alias: selection.alias,
        LlmUsageRow.route: selection.route,
    }
    conditions.extend(column == value for column, value in equal.items() if value is not None)
    return conditions


_AGGREGATES = (
    func.count(),
    func.coalesce(func.sum(LlmUsageRow.input_tokens), 0),
    func.coalesce(func.sum(LlmUsageRow.output_tokens), 0),
    func.coalesce(func.sum(LlmUsageRow.cost_micro_usd), 0),
    func.coalesce(func.sum(case((LlmUsageRow.cached, 1), else_=0).cast(Integer)), 0),
)


def _totals(values: Sequence[Any]) -> UsageTotals:
    calls, input_tokens, output_tokens, cost, cached = (int(v or 0) for v in values)
    return UsageTotals(calls, input_tokens, output_tokens, cost, cached)


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, records: Sequence[UsageRecord]) -> None:
        if records:
            await self._session.execute(_INSERT, [_row(r) for r in records])

    async def spent(
        self,
        *,
        tenant_id: str | None = None,
        credential_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Micro-dollars charged to a tenant or a key in ``[since, until)``."""
        if (tenant_id is None) == (credential_id is None):
            raise ValueError("give exactly one of tenant_id and credential_id")
        column = LlmUsageRow.tenant_id if tenant_id is not None else LlmUsageRow.credential_id
        conditions: list[ColumnElement[bool]] = [column == (tenant_id or credential_id)]
        if since is not None:
            conditions.append(LlmUsageRow.created_at >= since)
        if until is not None:
            conditions.append(LlmUsageRow.created_at < until)
        stmt = select(func.coalesce(func.sum(LlmUsageRow.cost_micro_usd), 0)).where(*conditions)
        return int(await self._session.scalar(stmt) or 0)

    async def totals(self, selection: UsageFilter) -> UsageTotals:
        row = (
            await self._session.execute(select(*_AGGREGATES).where(*_conditions(selection)))
        ).one()
        return _totals(tuple(row))

    async def grouped(
        self, selection: UsageFilter, group_by: GroupBy, *, limit: int
    ) -> list[UsageGroup]:
        """Totals per value of ``group_by`` (None: calls without one), ordered by that value."""
        key = _GROUP_COLUMNS[group_by].label("key")
        stmt = (
            select(key, *_AGGREGATES)
            .where(*_conditions(selection))
            .group_by(key)
            .order_by(key)
            .limit(limit)
        )
        rows = (await self._session.execute(stmt)).all()
        return [UsageGroup(row[0], _totals(tuple(row)[1:])) for row in rows]

    async def by_request(self, request_id: str) -> list[UsageRecord]:
        stmt = select(LlmUsageRow).where(LlmUsageRow.request_id == request_id)
        return [_record(row) for row in await self._session.scalars(stmt)]


def _record(row: LlmUsageRow) -> UsageRecord:
    fields = {f.name: getattr(row, f.name) for f in dataclasses.fields(UsageRecord)}
    return UsageRecord(**fields)


class BudgetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def for_tenant(self, tenant_id: str) -> list[LlmBudgetRow]:
        stmt = (
            select(LlmBudgetRow)
            .where(LlmBudgetRow.tenant_id == tenant_id)
            .order_by(LlmBudgetRow.scope, LlmBudgetRow.scope_id, LlmBudgetRow.period)
        )
        return list(await self._session.scalars(stmt))

    async def find(self, scope: str, scope_id: str, period: str) -> LlmBudgetRow | None:
        stmt = select(LlmBudgetRow).where(
            and_(
                LlmBudgetRow.scope == scope,
                LlmBudgetRow.scope_id == scope_id,
                LlmBudgetRow.period == period,
            )
        )
        return (await self._session.scalars(stmt)).one_or_none()

    def add(self, row: LlmBudgetRow) -> None:
        self._session.add(row)

    async def remove(self, tenant_id: str, scope: str, scope_id: str, period: str) -> bool:
        result = await self._session.execute(
            delete(LlmBudgetRow).where(
                LlmBudgetRow.tenant_id == tenant_id,
                LlmBudgetRow.scope == scope,
                LlmBudgetRow.scope_id == scope_id,
                LlmBudgetRow.period == period,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def key_tenant(self, key_id: str) -> str | None:
        """The tenant an API key belongs to (None: no such key)."""
        stmt = select(ApiKeyRow.tenant_id).where(ApiKeyRow.id == key_id)
        return (await self._session.scalars(stmt)).one_or_none()


_INSERT = insert(cast(Table, LlmUsageRow.__table__))
_FIELDS = tuple(f.name for f in dataclasses.fields(UsageRecord))


def _row(record: UsageRecord) -> dict[str, object]:
    """The record as column values (a flat dataclass: no ``asdict`` deep copy)."""
    return {name: getattr(record, name) for name in _FIELDS}
