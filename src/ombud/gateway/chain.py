"""Running a call through its route's stages."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from ombud.core.errors import GatewayTimeout, Problem, ServiceUnavailable
from ombud.gateway.call import Call, Finding
from ombud.gateway.outcome_records import OutcomeRecorder
from ombud.gateway.outcomes import Deny, Flag, Outcome, SendToReview
from ombud.gateway.stage import Stage
from ombud.observability.metrics import Metrics

log = logging.getLogger(__name__)

FLAG_HEADER = "X-Ombud-Guard"


@dataclass(frozen=True, slots=True)
class Completed:
    result: BaseModel


@dataclass(frozen=True, slots=True)
class PendingReview:
    review_id: str
    reason: str


ChainResult = Completed | PendingReview


class Chain:
    """The ordered stages of one route, run under the request time limit."""

    def __init__(
        self,
        route: str,
        stages: Sequence[Stage],
        *,
        outcomes: OutcomeRecorder,
        timeout_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.route = route
        self.stages = tuple(stages)
        self._outcomes = outcomes
        self._timeout_s = timeout_s
        self._timers = (
            {s.name: metrics.stage_duration.labels(route, s.name) for s in self.stages}
            if metrics is not None
            else {}
        )

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    async def run(self, call: Call) -> ChainResult:
        """Run every stage in order; raise the :class:`Problem` of a denial after auditing it."""
        async with call.exit_stack:
            with anyio.move_on_after(self._timeout_s):
                return await self._run_stages(call)
        # Only the time limit gets here (a stage's own TimeoutError is that stage's failure).
        problem = GatewayTimeout(detail=f"no answer within {self._timeout_s:g} s")
        await self._outcomes.deny(call, "timeout", problem)
        raise problem

    async def _run_stages(self, call: Call) -> ChainResult:
        for stage in self.stages:
            started = time.perf_counter()
            outcome = await self._run_stage(stage, call)
            timer = self._timers.get(stage.name)
            if timer is not None:
                timer.observe(time.perf_counter() - started)
            match outcome:
                case None:
                    continue
                case Flag(kind=kind, detail=detail):
                    call.findings.append(Finding(stage.name, kind, detail))
                    call.response_headers[FLAG_HEADER] = "flagged"
                case Deny(problem=problem):
                    await self._outcomes.deny(call, stage.name, problem)
                    raise problem
                case SendToReview(review_id=review_id, reason=reason):
                    await self._outcomes.review(call, stage.name, review_id, reason)
                    return PendingReview(review_id=review_id, reason=reason)
        if call.result is None:
            raise RuntimeError(f"chain {self.route} ended without a result: {self.stage_names}")
        return Completed(call.result)

    @staticmethod
    async def _run_stage(stage: Stage, call: Call) -> Outcome:
        try:
            return await stage(call)
        except Problem as raised:
            return Deny(raised)
        except (SQLAlchemyError, RedisError, OSError, TimeoutError) as exc:
            # A backing service failed: the call is refused as unavailable (503), and audited.
            log.error("stage %s: backing service failed: %s", stage.name, type(exc).__name__)
            return Deny(
                ServiceUnavailable(detail=f"{stage.name}: a backing service is unavailable")
            )
