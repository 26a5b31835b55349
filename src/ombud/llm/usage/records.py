"""The usage record of one LLM call, and what a call costs.

Money is counted in integer micro-dollars (millionths of a US dollar) everywhere it is stored or
added up, so sums never drift the way floats do. Catalog prices are dollars per million tokens,
which is exactly micro-dollars per token: a call's cost is ``tokens × price``, computed in
:class:`~decimal.Decimal` from the price's decimal text and rounded up to the next micro-dollar,
so no fraction of a cent slips past a budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Literal

from ombud.llm.catalog import Price
from ombud.llm.types import Usage

UsageRoute = Literal["llm.chat", "llm.messages", "llm.embeddings"]
UsageStatus = Literal["ok", "error", "cancelled", "blocked", "refused"]

MICROS_PER_USD = 1_000_000
_MICRO = Decimal(MICROS_PER_USD)


def _per_token(price_per_mtok: float) -> Decimal:
    # Through str: Decimal(0.3) would carry the float's binary error into the charge.
    return Decimal(str(price_per_mtok))


def _micro(price: Price, input_tokens: int, output_tokens: int) -> int:
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts cannot be negative")
    exact = input_tokens * _per_token(price.input_per_mtok) + output_tokens * _per_token(
        price.output_per_mtok
    )
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def cost_micro_usd(price: Price, usage: Usage) -> int:
    """What one call's reported (or estimated) usage costs, in micro-dollars (rounded up)."""
    return _micro(price, usage.input_tokens, usage.output_tokens)


def cost_usd(price: Price, usage: Usage) -> Decimal:
    """What one call's usage costs in dollars (exactly the micro-dollars stored)."""
    return micro_to_usd(cost_micro_usd(price, usage))


def worst_case_micro_usd(price: Price, input_tokens: int, max_output_tokens: int) -> int:
    """Micro-dollars a call may cost at most: what a budget holds before the call is made."""
    return _micro(price, input_tokens, max_output_tokens)


def worst_case_cost(price: Price, input_tokens: int, max_output_tokens: int) -> Decimal:
    """The most a call may cost, in dollars."""
    return micro_to_usd(worst_case_micro_usd(price, input_tokens, max_output_tokens))


def micro_to_usd(micro_usd: int) -> Decimal:
    """Micro-dollars as dollars, with six decimals."""
    return (Decimal(micro_usd) / _MICRO).quantize(Decimal("0.000001"))


def usd_to_micro(usd: Decimal) -> int:
    """Dollars as micro-dollars, rounded up (a limit of $0.0000001 still allows nothing free)."""
    return int((usd * _MICRO).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one LLM call used and cost; written with the call's other records, never updated.

    ``principal_id`` and ``credential_id`` say who called and with which key (budgets per key
    sum over ``credential_id``). ``deployment`` is the one that answered (None when none did);
    ``alias`` is what the client asked for. ``estimated`` marks token counts made offline because
    the upstream reported none. A call answered from the cache has ``cached`` set and costs 0.
    """

    id: str
    request_id: str
    created_at: datetime
    tenant_id: str
    principal_id: str
    credential_id: str
    route: UsageRoute
    alias: str
    status: UsageStatus
    deployment: str | None = None
    provider: str | None = None
    region: str | None = None
    subject: str | None = None
    feature: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False
    cost_micro_usd: int = 0
    cached: bool = False
    attempts: int = 0
    latency_ms: float = 0.0
