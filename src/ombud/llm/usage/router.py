"""``/v1/usage``: what a tenant's LLM calls used and cost, and the budgets that cap them.

Every route reads or changes the caller's own tenant only; the tenant comes from the
credential, never from the request. Reads and changes are audited like other control-plane
accesses.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.core.errors import NotFound
from ombud.llm.usage.budgets import Budget, BudgetService, Period, Scope
from ombud.llm.usage.records import micro_to_usd, usd_to_micro
from ombud.llm.usage.repository import GroupBy, UsageFilter, UsageRepository, UsageTotals

router = APIRouter(prefix="/v1/usage", tags=["usage"])

READ = "usage.read"
MANAGE = "budget.manage"
MAX_GROUPS = 10_000
RESPONSES = {**PROBLEM_RESPONSES, 402: {"description": "A budget's hard limit is spent"}}


class UsageAmounts(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: str = Field(description="US dollars, six decimals, as a string (no float drift).")
    cached_calls: int


class UsageGroupRead(UsageAmounts):
    key: str | None = Field(description="The group's value; null: calls without one.")


class UsageReport(BaseModel):
    group_by: GroupBy | None
    totals: UsageAmounts
    groups: list[UsageGroupRead]


def _amounts(totals: UsageTotals) -> dict[str, int | str]:
    return {
        "calls": totals.calls,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cost_usd": str(micro_to_usd(totals.cost_micro_usd)),
        "cached_calls": totals.cached_calls,
    }


def _budgets(container: ContainerDep) -> BudgetService:
    return container.llm.budgets


Text = Annotated[str | None, Query(max_length=128)]


@router.get("", name=READ, summary="LLM usage and cost", responses=PROBLEM_RESPONSES)
async def read_usage(
    request: Request,
    principal: PrincipalDep,
    container: ContainerDep,
    since: Annotated[datetime | None, Query(alias="from", description="Calls at or after.")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Calls before.")] = None,
    key: Annotated[str | None, Query(max_length=64, description="API key id.")] = None,
    subject: Text = None,
    feature: Text = None,
    deployment: Text = None,
    alias: Text = None,
    route: Annotated[str | None, Query(max_length=32)] = None,
    group_by: GroupBy | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_GROUPS)] = 1000,
) -> UsageReport:
    """Totals of the caller's tenant's calls matching every filter, and per ``group_by`` value
    (groups ordered by that value; at most ``limit``)."""
    container.authorizer.authorize(principal, READ, Resource(kind="usage"))
    selection = UsageFilter(
        tenant_id=principal.tenant_id, since=since, until=until, credential_id=key,
        subject=subject, feature=feature, deployment=deployment, alias=alias, route=route,
    )  # fmt: skip
    await record_access(container, request, principal, READ, "usage",
                        detail={"query": str(request.url.query)})  # fmt: skip
    async with container.sessions() as session:
        repo = UsageRepository(session)
        totals = await repo.totals(selection)
        groups = await repo.grouped(selection, group_by, limit=limit) if group_by else []
    return UsageReport(
        group_by=group_by,
        totals=UsageAmounts.model_validate(_amounts(totals)),
        groups=[
            UsageGroupRead.model_validate({"key": g.key, **_amounts(g.totals)}) for g in groups
        ],
    )


class BudgetWrite(BaseModel):
    scope: Scope
    scope_id: str | None = Field(
        None, max_length=64, description="The API key id for ``key``; the caller's tenant for "
        "``tenant`` (may be left out)."
    )  # fmt: skip
    period: Period
    hard_limit_usd: Decimal = Field(ge=0, max_digits=18, decimal_places=6)
    soft_limit_usd: Decimal | None = Field(None, ge=0, max_digits=18, decimal_places=6)


class BudgetRead(BaseModel):
    id: str
    scope: Scope
    scope_id: str
    period: Period
    hard_limit_usd: str
    soft_limit_usd: str | None
    spent_usd: str = Field(description="Charged in the current window, from usage records.")
    created_at: datetime
    updated_at: datetime


class BudgetList(BaseModel):
    budgets: list[BudgetRead]


async def _read(service: BudgetService, budget: Budget) -> BudgetRead:
    soft = budget.soft_limit_micro_usd
    return BudgetRead(
        id=budget.id, scope=budget.scope, scope_id=budget.scope_id, period=budget.period,
        hard_limit_usd=str(micro_to_usd(budget.hard_limit_micro_usd)),
        soft_limit_usd=None if soft is None else str(micro_to_usd(soft)),
        spent_usd=str(micro_to_usd(await service.current_spend(budget))),
        created_at=budget.created_at, updated_at=budget.updated_at,
    )  # fmt: skip


@router.get("/budgets", name=MANAGE, summary="List budgets", responses=PROBLEM_RESPONSES)
async def list_budgets(
    request: Request, principal: PrincipalDep, container: ContainerDep
) -> BudgetList:
    """The tenant's budgets and each one's spend in its current window."""
    container.authorizer.authorize(principal, MANAGE, Resource(kind="budget"))
    service = _budgets(container)
    await record_access(container, request, principal, MANAGE, "budget")
    budgets = await service.list_budgets(principal.tenant_id)
    return BudgetList(budgets=[await _read(service, b) for b in budgets])


@router.put("/budgets", name=MANAGE, summary="Set a budget", responses=RESPONSES)
async def put_budget(
    body: BudgetWrite, request: Request, principal: PrincipalDep, container: ContainerDep
) -> BudgetRead:
    """Create or replace the budget of the tenant or one of its keys for a period."""
    container.authorizer.authorize(principal, MANAGE, Resource(kind="budget"))
    service = _budgets(container)
    scope_id = body.scope_id or principal.tenant_id
    soft = None if body.soft_limit_usd is None else usd_to_micro(body.soft_limit_usd)
    # Audited before the write, like every change made over HTTP.
    await record_access(container, request, principal, MANAGE,
                        f"budget:{body.scope}:{scope_id}:{body.period}")  # fmt: skip
    budget = await service.set_budget(
        principal.tenant_id, body.scope, scope_id, body.period,
        usd_to_micro(body.hard_limit_usd), soft,
    )  # fmt: skip
    return await _read(service, budget)


@router.delete(
    "/budgets", name=MANAGE, status_code=204, summary="Remove a budget",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def delete_budget(
    request: Request,
    principal: PrincipalDep,
    container: ContainerDep,
    scope: Scope,
    period: Period,
    scope_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Remove a budget; calls stop being checked against it at once on this replica and within
    seconds on the others."""
    container.authorizer.authorize(principal, MANAGE, Resource(kind="budget"))
    service = _budgets(container)
    target = scope_id or principal.tenant_id
    await record_access(container, request, principal, MANAGE,
                        f"budget:{scope}:{target}:{period}")  # fmt: skip
    if not await service.delete_budget(principal.tenant_id, scope, target, period):
        raise NotFound(detail=f"no {period} budget for {scope} {target!r}")
    return Response(status_code=204)
