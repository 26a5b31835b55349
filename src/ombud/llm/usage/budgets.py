"""Spending budgets for LLM calls, per tenant and per API key, checked before every call.

A budget limits what a tenant, or one of its keys, may spend over a period (``day`` and
``month`` are UTC calendar windows; ``total`` never rolls over). Its *hard* limit refuses calls
(HTTP 402); its optional *soft* limit only reports that it was passed.

The hot path is a pair of calls around each upstream call:

* :meth:`BudgetService.reserve` holds the call's worst-case cost against every budget that
  applies and refuses it when any budget's spend, plus what calls in flight hold, plus this call
  would pass the hard limit. Check and hold happen in one atomic step, so concurrent calls can
  never together overspend.
* :meth:`BudgetService.settle` replaces the hold by the actual cost, exactly once (settling again
  is a no-op, so a retried settle never charges twice); :meth:`BudgetService.release` drops the
  hold of a call that cost nothing upstream.

Spend lives in a :class:`BudgetLedger`. The in-process ledger is right for a single process;
with Redis configured the Redis ledger shares spend between every replica. Either one starts a
budget's window from the sum of the window's usage records and keeps it current on each settle,
so after the first call no call queries the database. Budget definitions are cached per tenant
for a few seconds; a tenant with no budgets costs one dict lookup per call.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.core.clock import Clock
from ombud.core.errors import Conflict, InvalidRequest, NotFound, Problem, ServiceUnavailable
from ombud.core.ids import new_id
from ombud.llm.usage.records import micro_to_usd
from ombud.llm.usage.repository import BudgetRepository, UsageRepository
from ombud.llm.usage.tables import LlmBudgetRow
from ombud.observability.metrics import Metrics

log = logging.getLogger(__name__)

Scope = Literal["tenant", "key"]
Period = Literal["day", "month", "total"]
SCOPES: tuple[Scope, ...] = ("tenant", "key")
PERIODS: tuple[Period, ...] = ("day", "month", "total")

DEFAULT_PREFIX = "ombud:budget:"
DEFINITIONS_TTL_S = 5.0
"""How long budget definitions are cached: how late another replica sees a changed budget."""
RESERVED_TTL_S = 900
"""A hold left by a replica that died mid-call lapses once its budget sees no new call for this
long (Redis ledger)."""
TOTAL_WINDOW_TTL_S = 7 * 86400
"""How long the ``total`` counter lives in Redis before it is reloaded from usage records."""


class BudgetExceededProblem(Problem):
    kind = "budget_exceeded"
    status = 402
    title = "Budget exceeded"


class BudgetExceeded(BudgetExceededProblem):
    """A call would pass a hard limit. ``spent`` counts what calls in flight hold too."""

    def __init__(self, scope: Scope, period: Period, limit: int, spent: int) -> None:
        super().__init__(
            detail=(
                f"the {scope} {period} budget of ${micro_to_usd(limit)} is spent "
                f"(${micro_to_usd(spent)} used or held)"
            )
        )
        self.scope: Scope = scope
        self.period: Period = period
        self.limit = limit
        self.spent = spent


class BudgetsUnavailable(ServiceUnavailable):
    kind = "budgets_unavailable"
    title = "Budgets cannot be checked"


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    tenant_id: str
    scope: Scope
    scope_id: str
    period: Period
    hard_limit_micro_usd: int
    soft_limit_micro_usd: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    """One budget's current period: ``window`` names it (``day-2026-03-01``, ``month-2026-03``,
    ``total``) and grows in sort order; ``start``/``end`` bound its usage records."""

    scope: Scope
    scope_id: str
    period: Period
    window: str
    start: datetime | None
    end: datetime | None

    @property
    def budget(self) -> tuple[str, str, str]:
        return (self.scope, self.scope_id, self.period)


def window_of(scope: Scope, scope_id: str, period: Period, now: datetime) -> BudgetWindow:
    """The window of a budget that holds ``now`` (UTC calendar days and months)."""
    now = now.astimezone(UTC)
    if period == "total":
        return BudgetWindow(scope, scope_id, period, "total", None, None)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return BudgetWindow(
            scope, scope_id, period, f"day-{day:%Y-%m-%d}", day, day + timedelta(days=1)
        )
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return BudgetWindow(scope, scope_id, period, f"month-{start:%Y-%m}", start, end)


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    window: BudgetWindow
    hard_limit: int


@dataclass(frozen=True, slots=True)
class LedgerResult:
    """``used[i]``: spend plus holds of check ``i`` (with this call's hold when admitted);
    ``refused``: the index of the first check that refused, or None."""

    refused: int | None
    used: tuple[int, ...]


SpentLoader = Callable[[BudgetWindow], Awaitable[int]]
"""Micro-dollars the usage records charge to a window: where a ledger starts it."""


class BudgetLedger(Protocol):
    """Where spend and holds are counted."""

    async def reserve(self, checks: Sequence[LedgerCheck], amount: int) -> LedgerResult:
        """Hold ``amount`` on every check's window if none would pass its hard limit, else on
        none (atomically)."""
        ...

    async def settle(self, windows: Sequence[BudgetWindow], held: int, actual: int) -> None:
        """Drop a hold of ``held`` and charge ``actual`` to each window (if still current)."""
        ...


class MemoryBudgetLedger:
    """Spend counted in this process: correct when one process serves the budgets.

    Only each budget's current window is kept, so the dict stays as small as the set of budgets.
    """

    def __init__(self, load: SpentLoader) -> None:
        self._load = load
        self._spent: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._held: dict[tuple[str, str, str], int] = {}

    async def reserve(self, checks: Sequence[LedgerCheck], amount: int) -> LedgerResult:
        for check in checks:
            window = check.window
            current = self._spent.get(window.budget)
            if current is None or current[0] < window.window:
                loaded = await self._load(window)
                # Another call may have loaded it (and settled into it) meanwhile: keep that.
                current = self._spent.get(window.budget)
                if current is None or current[0] < window.window:
                    self._spent[window.budget] = (window.window, loaded)
        # No await from here on: the check and the hold are one step for the event loop.
        used: list[int] = []
        for index, check in enumerate(checks):
            key = check.window.budget
            total = self._spent[key][1] + self._held.get(key, 0)
            if total + amount > check.hard_limit:
                return LedgerResult(index, (*used, total))
            used.append(total + amount)
        for check in checks:
            key = check.window.budget
            self._held[key] = self._held.get(key, 0) + amount
        return LedgerResult(None, tuple(used))

    async def settle(self, windows: Sequence[BudgetWindow], held: int, actual: int) -> None:
        for window in windows:
            key = window.budget
            current = self._spent.get(key)
            if current is not None and current[0] == window.window:
                self._spent[key] = (current[0], current[1] + actual)
            left = self._held.get(key, 0) - held
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)


# KEYS: per check, its spend counter then its hold counter. ARGV[1]: amount; ARGV[2]: the hold
# counters' TTL (ms); then per check: hard limit.
# Returns {-1, i} when check i's spend counter is not loaded yet (the caller loads it and tries
# again), {0, i, used...} when check i refuses, {1, used...} when every check holds the amount.
RESERVE_SCRIPT = """
local amount = tonumber(ARGV[1])
local n = #KEYS / 2
local used = {}
for i = 1, n do
  local spent = redis.call("GET", KEYS[2 * i - 1])
  if not spent then return {-1, i} end
  local held = tonumber(redis.call("GET", KEYS[2 * i]) or "0")
  local total = tonumber(spent) + held
  if total + amount > tonumber(ARGV[2 + i]) then
    local reply = {0, i}
    for j = 1, i - 1 do reply[#reply + 1] = used[j] end
    reply[#reply + 1] = total
    return reply
  end
  used[i] = total + amount
end
local reply = {1}
for i = 1, n do
  redis.call("INCRBY", KEYS[2 * i], amount)
  redis.call("PEXPIRE", KEYS[2 * i], ARGV[2])
  reply[#reply + 1] = used[i]
end
return reply
"""

# KEYS: per window, its spend counter then its hold counter. ARGV[1]: held; ARGV[2]: actual.
# A spend counter that expired is not recreated: the next reserve reloads it from the records.
SETTLE_SCRIPT = """
local held, actual = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  if actual > 0 and redis.call("EXISTS", KEYS[2 * i - 1]) == 1 then
    redis.call("INCRBY", KEYS[2 * i - 1], actual)
  end
  if redis.call("DECRBY", KEYS[2 * i], held) <= 0 then redis.call("DEL", KEYS[2 * i]) end
end
return 1
"""

_SHAS = {
    script: hashlib.sha1(script.encode()).hexdigest() for script in (RESERVE_SCRIPT, SETTLE_SCRIPT)
}


class RedisBudgetLedger:
    """Spend counted in Redis (``{prefix}{scope}:{id}:{window}``), shared by every replica.

    A window's counter starts from the usage records' sum, set only if absent (``SET NX``), so
    replicas that load it at once agree; it expires a day after its window ends. Holds are a
    separate counter per budget (``…:{period}:held``) that survives window roll-over, since a
    call in flight at midnight still holds its cost.
    """

    def __init__(
        self, redis: Redis, load: SpentLoader, clock: Clock, *, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._redis = redis
        self._load = load
        self._clock = clock
        self._prefix = prefix

    def _keys(self, window: BudgetWindow) -> list[str]:
        base = f"{self._prefix}{window.scope}:{window.scope_id}:"
        return [base + window.window, f"{base}{window.period}:held"]

    def _ttl_ms(self, window: BudgetWindow) -> int:
        if window.end is None:
            return TOTAL_WINDOW_TTL_S * 1000
        left = window.end + timedelta(days=1) - self._clock.now()
        return max(1000, int(left.total_seconds() * 1000))

    async def reserve(self, checks: Sequence[LedgerCheck], amount: int) -> LedgerResult:
        keys = [key for check in checks for key in self._keys(check.window)]
        args = [amount, RESERVED_TTL_S * 1000, *(check.hard_limit for check in checks)]
        # Each pass loads at most one missing counter; one more pass decides.
        for _ in range(len(checks) + 1):
            reply = await self._run(RESERVE_SCRIPT, keys, args)
            if reply[0] == -1:
                window = checks[reply[1] - 1].window
                spent = await self._load(window)
                await self._redis.set(
                    self._keys(window)[0], spent, nx=True, px=self._ttl_ms(window)
                )
                continue
            refused = None if reply[0] == 1 else reply[1] - 1
            return LedgerResult(refused, tuple(reply[1:] if refused is None else reply[2:]))
        raise RedisError("budget counters keep disappearing")

    async def settle(self, windows: Sequence[BudgetWindow], held: int, actual: int) -> None:
        keys = [key for window in windows for key in self._keys(window)]
        await self._run(SETTLE_SCRIPT, keys, [held, actual])

    async def _run(self, script: str, keys: list[str], args: Sequence[int]) -> list[int]:
        sha = _SHAS[script]
        try:
            reply = await self._redis.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._redis.script_load(script)
            reply = await self._redis.evalsha(sha, len(keys), *keys, *args)
        if isinstance(reply, list):
            return [int(value) for value in reply]
        return [int(reply)]


@dataclass(slots=True, eq=False)
class Reservation:
    """The hold one call placed; settle or release it exactly once (later calls do nothing)."""

    tenant_id: str
    credential_id: str
    amount_micro_usd: int
    windows: tuple[BudgetWindow, ...]
    soft_exceeded: list[str] = field(default_factory=list)
    """Scopes (``tenant``, ``key``) whose soft limit this call passed."""
    done: bool = False


def _budget(row: LlmBudgetRow) -> Budget:
    scope: Scope = "key" if row.scope == "key" else "tenant"
    period: Period = "day" if row.period == "day" else "month" if row.period == "month" else "total"
    return Budget(
        id=row.id, tenant_id=row.tenant_id, scope=scope, scope_id=row.scope_id, period=period,
        hard_limit_micro_usd=row.hard_limit_micro_usd,
        soft_limit_micro_usd=row.soft_limit_micro_usd,
        created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


class BudgetService:
    """Budget definitions, and the reserve/settle pair every LLM call goes through."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        metrics: Metrics,
        *,
        redis: Redis | None = None,
        prefix: str = DEFAULT_PREFIX,
        definitions_ttl_s: float = DEFINITIONS_TTL_S,
    ) -> None:
        """Build the service; with ``redis`` spend is shared through it, else kept in-process."""
        self._sessions = sessions
        self._clock = clock
        self._metrics = metrics
        self._ttl = definitions_ttl_s
        self._definitions: dict[str, tuple[float, tuple[Budget, ...]]] = {}
        self.ledger: BudgetLedger = (
            RedisBudgetLedger(redis, self.spent_in, clock, prefix=prefix)
            if redis is not None
            else MemoryBudgetLedger(self.spent_in)
        )

    # Definitions.

    async def set_budget(
        self,
        tenant_id: str,
        scope: Scope,
        scope_id: str,
        period: Period,
        hard_limit_micro_usd: int,
        soft_limit_micro_usd: int | None = None,
    ) -> Budget:
        """Create or replace the budget of ``scope_id`` for ``period``.

        Raises:
            InvalidRequest: A negative limit, or a soft limit above the hard one.
            NotFound: ``scope_id`` is not this tenant (``tenant``) or none of its keys (``key``).
        """
        if hard_limit_micro_usd < 0 or (soft_limit_micro_usd or 0) < 0:
            raise InvalidRequest(detail="budget limits cannot be negative")
        if soft_limit_micro_usd is not None and soft_limit_micro_usd > hard_limit_micro_usd:
            raise InvalidRequest(detail="the soft limit must not exceed the hard limit")
        now = self._clock.now()
        try:
            async with self._sessions.begin() as session:
                repo = BudgetRepository(session)
                await self._check_owner(repo, tenant_id, scope, scope_id)
                row = await repo.find(scope, scope_id, period)
                if row is None:
                    row = LlmBudgetRow(
                        id=new_id("bud"), tenant_id=tenant_id, scope=scope, scope_id=scope_id,
                        period=period, hard_limit_micro_usd=hard_limit_micro_usd,
                        soft_limit_micro_usd=soft_limit_micro_usd, created_at=now, updated_at=now,
                    )  # fmt: skip
                    repo.add(row)
                else:
                    row.hard_limit_micro_usd = hard_limit_micro_usd
                    row.soft_limit_micro_usd = soft_limit_micro_usd
                    row.updated_at = now
                budget = _budget(row)
        except IntegrityError:
            raise Conflict(detail="the budget was changed at the same time; try again") from None
        self._definitions.pop(tenant_id, None)
        return budget

    @staticmethod
    async def _check_owner(
        repo: BudgetRepository, tenant_id: str, scope: Scope, scope_id: str
    ) -> None:
        if scope == "tenant" and scope_id != tenant_id:
            raise NotFound(detail="a tenant budget may only name the caller's tenant")
        if scope == "key" and await repo.key_tenant(scope_id) != tenant_id:
            raise NotFound(detail=f"no API key {scope_id!r} in this tenant")

    async def list_budgets(self, tenant_id: str) -> list[Budget]:
        async with self._sessions() as session:
            rows = await BudgetRepository(session).for_tenant(tenant_id)
        return [_budget(row) for row in rows]

    async def delete_budget(
        self, tenant_id: str, scope: Scope, scope_id: str, period: Period
    ) -> bool:
        async with self._sessions.begin() as session:
            removed = await BudgetRepository(session).remove(tenant_id, scope, scope_id, period)
        self._definitions.pop(tenant_id, None)
        return removed

    async def spent_in(self, window: BudgetWindow) -> int:
        """Micro-dollars the usage records charge to ``window`` (a database query)."""
        async with self._sessions() as session:
            repo = UsageRepository(session)
            if window.scope == "tenant":
                return await repo.spent(
                    tenant_id=window.scope_id, since=window.start, until=window.end
                )
            return await repo.spent(
                credential_id=window.scope_id, since=window.start, until=window.end
            )

    async def current_spend(self, budget: Budget) -> int:
        """What the usage records charge to ``budget``'s current window."""
        now = self._clock.now()
        return await self.spent_in(window_of(budget.scope, budget.scope_id, budget.period, now))

    async def _budgets(self, tenant_id: str) -> tuple[Budget, ...]:
        cached = self._definitions.get(tenant_id)
        if cached is not None and cached[0] > self._clock.monotonic():
            return cached[1]
        budgets = tuple(await self.list_budgets(tenant_id))
        self._definitions[tenant_id] = (self._clock.monotonic() + self._ttl, budgets)
        return budgets

    # The hot path.

    async def reserve(
        self, tenant_id: str, credential_id: str, amount_micro_usd: int
    ) -> Reservation:
        """Hold ``amount_micro_usd`` against every budget of the tenant and of the key.

        Raises:
            BudgetExceeded: A budget's hard limit would be passed (nothing is held then).
            BudgetsUnavailable: The shared ledger could not be reached.
        """
        if amount_micro_usd < 0:
            raise ValueError("a reservation cannot be negative")
        budgets = await self._budgets(tenant_id)
        applicable = [b for b in budgets if b.scope == "tenant" or b.scope_id == credential_id]
        if not applicable:
            return Reservation(tenant_id, credential_id, amount_micro_usd, ())
        now = self._clock.now()
        checks = [
            LedgerCheck(window_of(b.scope, b.scope_id, b.period, now), b.hard_limit_micro_usd)
            for b in applicable
        ]
        try:
            result = await self.ledger.reserve(checks, amount_micro_usd)
        except (RedisError, OSError) as exc:
            raise BudgetsUnavailable(detail="the budget ledger cannot be reached") from exc
        if result.refused is not None:
            refused = applicable[result.refused]
            self._metrics.llm_budget_events.labels(refused.scope, "hard").inc()
            raise BudgetExceeded(
                refused.scope, refused.period, refused.hard_limit_micro_usd,
                result.used[result.refused],
            )  # fmt: skip
        soft: list[str] = []
        for budget, used in zip(applicable, result.used, strict=True):
            limit = budget.soft_limit_micro_usd
            if limit is not None and used > limit and budget.scope not in soft:
                soft.append(budget.scope)
                self._metrics.llm_budget_events.labels(budget.scope, "soft").inc()
        windows = tuple(check.window for check in checks)
        return Reservation(tenant_id, credential_id, amount_micro_usd, windows, soft)

    async def settle(self, reservation: Reservation, actual_micro_usd: int) -> None:
        """Charge the call's actual cost in place of its hold; later calls do nothing.

        A ledger failure is logged, not raised (the call was answered): the Redis counters
        recover the charge when their window is next loaded from the usage records.
        """
        if reservation.done:
            return
        reservation.done = True
        if not reservation.windows:
            return
        try:
            await self.ledger.settle(
                reservation.windows, reservation.amount_micro_usd, max(0, actual_micro_usd)
            )
        except (RedisError, OSError) as exc:
            log.warning("could not settle a budget reservation: %s", type(exc).__name__)

    async def release(self, reservation: Reservation) -> None:
        """Drop the hold of a call that cost nothing upstream."""
        await self.settle(reservation, 0)
