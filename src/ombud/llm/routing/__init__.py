"""Routing for the LLM gateway: plans of deployments per call, and attempts over them with
timeouts, retries, a retry budget, fallbacks, load balancing and circuit breakers."""

from __future__ import annotations

from ombud.llm.routing.attempts import AllAttemptsFailed, Attempted, AttemptRecord
from ombud.llm.routing.breaker import BreakerState, CircuitBreaker
from ombud.llm.routing.budget import RetryBudget
from ombud.llm.routing.router import NoRoute, Plan, Router, RouteRequest, worst_case_cost_usd

__all__ = [
    "AllAttemptsFailed",
    "AttemptRecord",
    "Attempted",
    "BreakerState",
    "CircuitBreaker",
    "NoRoute",
    "Plan",
    "RetryBudget",
    "RouteRequest",
    "Router",
    "worst_case_cost_usd",
]
