"""LLM usage accounting: one record per call, what calls cost, and the budgets that cap it.

``records`` holds the record and the pricing arithmetic, ``budgets`` the reserve/settle pair
every call goes through, ``router`` the ``/v1/usage`` routes.
"""

from ombud.llm.usage.budgets import (
    Budget,
    BudgetExceeded,
    BudgetExceededProblem,
    BudgetService,
    Reservation,
)
from ombud.llm.usage.records import (
    UsageRecord,
    cost_micro_usd,
    cost_usd,
    worst_case_cost,
    worst_case_micro_usd,
)

__all__ = [
    "Budget",
    "BudgetExceeded",
    "BudgetExceededProblem",
    "BudgetService",
    "Reservation",
    "UsageRecord",
    "cost_micro_usd",
    "cost_usd",
    "worst_case_cost",
    "worst_case_micro_usd",
]
