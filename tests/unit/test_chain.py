"""The stage chain: order, outcomes, denials audited and counted, the time limit."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
from pydantic import BaseModel

from ombud.audit.events import Outcome as AuditOutcome
from ombud.core.clock import FrozenClock
from ombud.core.errors import Forbidden, GatewayTimeout, InvalidRequest, ServiceUnavailable
from ombud.gateway.call import Call
from ombud.gateway.chain import FLAG_HEADER, Chain, Completed, PendingReview
from ombud.gateway.outcome_records import OutcomeRecorder
from ombud.gateway.outcomes import Deny, Flag, Outcome, SendToReview
from ombud.observability.metrics import Metrics
from ombud.records.writer import Record

pytestmark = pytest.mark.anyio


class Answer(BaseModel):
    value: str


class MemoryWriter:
    def __init__(self) -> None:
        self.records: list[Record] = []

    async def write(self, records: Sequence[Record]) -> None:
        self.records.extend(records)


class Step:
    def __init__(self, name: str, outcome: Outcome = None, *, log: list[str]) -> None:
        self.name = name
        self._outcome = outcome
        self._log = log

    async def __call__(self, call: Call) -> Outcome:
        self._log.append(self.name)
        if self.name == "answer":
            call.result = Answer(value="done")
        return self._outcome


class Raises:
    name = "validate"

    async def __call__(self, call: Call) -> Outcome:
        raise InvalidRequest(detail="bad")


class Hangs:
    name = "slow"

    async def __call__(self, call: Call) -> Outcome:
        await anyio.Event().wait()
        return None


def _chain(stages: list[object], timeout_s: float = 5.0) -> tuple[Chain, MemoryWriter, Metrics]:
    writer, metrics = MemoryWriter(), Metrics()
    denials = OutcomeRecorder(writer, metrics, FrozenClock())
    return Chain("test.route", stages, outcomes=denials, timeout_s=timeout_s), writer, metrics  # type: ignore[arg-type]


def _denials(metrics: Metrics, stage: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "ombud_denials_total", {"stage": stage, "reason": reason}
    )
    return value or 0.0


async def test_stages_run_in_order_and_the_result_is_returned() -> None:
    log: list[str] = []
    chain, writer, _ = _chain([Step("a", log=log), Step("b", log=log), Step("answer", log=log)])
    result = await chain.run(Call(route="test.route", request_id="r1"))
    assert log == ["a", "b", "answer"]
    assert result == Completed(Answer(value="done"))
    assert writer.records == []


async def test_a_denial_stops_the_chain_and_is_audited_and_counted() -> None:
    log: list[str] = []
    problem = Forbidden(detail="not yours")
    chain, writer, metrics = _chain(
        [Step("a", log=log), Step("policy", Deny(problem), log=log), Step("answer", log=log)]
    )
    with pytest.raises(Forbidden) as caught:
        await chain.run(Call(route="test.route", request_id="r2", target="m"))
    assert caught.value is problem
    assert problem.audited
    assert log == ["a", "policy"]
    [event] = writer.records
    assert event.outcome is AuditOutcome.DENIED  # type: ignore[union-attr]
    assert event.reason == "forbidden"  # type: ignore[union-attr]
    assert event.detail["stage"] == "policy"  # type: ignore[union-attr]
    assert event.resource == "model:m"  # type: ignore[union-attr]
    assert _denials(metrics, "policy", "forbidden") == 1


async def test_a_raised_problem_is_a_denial_by_that_stage() -> None:
    chain, writer, metrics = _chain([Raises()])
    with pytest.raises(InvalidRequest):
        await chain.run(Call(route="test.route", request_id="r3"))
    assert _denials(metrics, "validate", "validation_error") == 1
    assert len(writer.records) == 1


async def test_a_flag_is_kept_and_the_chain_goes_on() -> None:
    log: list[str] = []
    call = Call(route="test.route", request_id="r4")
    chain, _, _ = _chain([Step("guard", Flag("pii", "email"), log=log), Step("answer", log=log)])
    result = await chain.run(call)
    assert isinstance(result, Completed)
    assert call.response_headers[FLAG_HEADER] == "flagged"
    assert [(f.stage, f.kind) for f in call.findings] == [("guard", "pii")]


async def test_send_to_review_ends_the_call_as_pending() -> None:
    log: list[str] = []
    outcome = SendToReview(review_id="rev_1", reason="near threshold")
    chain, _, _ = _chain([Step("policy", outcome, log=log), Step("answer", log=log)])
    assert await chain.run(Call(route="test.route", request_id="r5")) == PendingReview(
        "rev_1", "near threshold"
    )
    assert log == ["policy"]


async def test_the_time_limit_ends_a_slow_call_with_an_audited_504() -> None:
    chain, writer, metrics = _chain([Hangs()], timeout_s=0.05)
    with pytest.raises(GatewayTimeout):
        await chain.run(Call(route="test.route", request_id="r6"))
    assert _denials(metrics, "timeout", "timeout") == 1
    assert writer.records[0].reason == "timeout"  # type: ignore[union-attr]


async def test_a_chain_without_a_result_is_a_bug_not_an_answer() -> None:
    chain, _, _ = _chain([Step("a", log=[])])
    with pytest.raises(RuntimeError, match="without a result"):
        await chain.run(Call(route="test.route", request_id="r7"))


class Broken:
    name = "model.resolve"

    async def __call__(self, call: Call) -> Outcome:
        raise ConnectionRefusedError("database down")


class OwnTimeout:
    name = "provider"

    async def __call__(self, call: Call) -> Outcome:
        raise TimeoutError("upstream connect")


async def test_a_backing_service_failure_is_an_audited_503_not_a_500() -> None:
    chain, writer, metrics = _chain([Broken()])
    with pytest.raises(ServiceUnavailable):
        await chain.run(Call(route="test.route", request_id="r8"))
    assert _denials(metrics, "model.resolve", "service_unavailable") == 1
    assert writer.records[0].outcome is AuditOutcome.ERROR  # type: ignore[union-attr]


async def test_a_stages_own_timeout_is_not_the_chains_time_limit() -> None:
    chain, _, metrics = _chain([OwnTimeout()], timeout_s=5)
    with pytest.raises(ServiceUnavailable):
        await chain.run(Call(route="test.route", request_id="r9"))
    assert _denials(metrics, "timeout", "timeout") == 0


async def test_a_review_outcome_is_audited() -> None:
    log: list[str] = []
    chain, writer, _ = _chain([Step("policy", SendToReview("rev_9", "adverse"), log=log)])
    await chain.run(Call(route="test.route", request_id="r10"))
    [event] = writer.records
    assert event.outcome is AuditOutcome.PENDING_REVIEW  # type: ignore[union-attr]
    assert event.detail == {"stage": "policy", "review_id": "rev_9", "detail": "adverse"}  # type: ignore[union-attr]


async def test_each_stage_is_timed() -> None:
    log: list[str] = []
    writer, metrics = MemoryWriter(), Metrics()
    outcomes = OutcomeRecorder(writer, metrics, FrozenClock())
    chain = Chain(
        "test.route", [Step("a", log=log), Step("answer", log=log)],
        outcomes=outcomes, timeout_s=5, metrics=metrics,
    )  # fmt: skip
    await chain.run(Call(route="test.route", request_id="r11"))
    count = metrics.registry.get_sample_value(
        "ombud_stage_duration_seconds_count", {"route": "test.route", "stage": "answer"}
    )
    assert count == 1
