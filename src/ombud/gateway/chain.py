"""Running a call through its route's stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from pydantic import BaseModel

from ombud.core.errors import GatewayTimeout, Problem
from ombud.gateway.call import Call, Finding
from ombud.gateway.denials import DenialRecorder
from ombud.gateway.outcomes import Deny, Flag, SendToReview
from ombud.gateway.stage import Stage

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
        self, route: str, stages: Sequence[Stage], *, denials: DenialRecorder, timeout_s: float
    ) -> None:
        self.route = route
        self.stages = tuple(stages)
        self._denials = denials
        self._timeout_s = timeout_s

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    async def run(self, call: Call) -> ChainResult:
        """Run every stage in order; raise the :class:`Problem` of a denial after auditing it."""
        try:
            async with call.exit_stack:
                with anyio.fail_after(self._timeout_s):
                    return await self._run_stages(call)
        except TimeoutError:
            problem = GatewayTimeout(detail=f"no answer within {self._timeout_s:g} s")
            await self._denials.record(call, "timeout", problem)
            raise problem from None

    async def _run_stages(self, call: Call) -> ChainResult:
        for stage in self.stages:
            try:
                outcome = await stage(call)
            except Problem as raised:
                outcome = Deny(raised)
            match outcome:
                case None:
                    continue
                case Flag(kind=kind, detail=detail):
                    call.findings.append(Finding(stage.name, kind, detail))
                    call.response_headers[FLAG_HEADER] = "flagged"
                case Deny(problem=problem):
                    await self._denials.record(call, stage.name, problem)
                    raise problem
                case SendToReview(review_id=review_id, reason=reason):
                    return PendingReview(review_id=review_id, reason=reason)
        if call.result is None:
            raise RuntimeError(f"chain {self.route} ended without a result: {self.stage_names}")
        return Completed(call.result)
