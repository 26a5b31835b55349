"""``llm.record``: charging, recording and caching a finished LLM call.

Kept apart from the other LLM stages because a streamed call is recorded by the route when its
stream ends, and an answer refused after the provider answered by ``llm.invoke``'s clean-up.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import AsyncExitStack
from typing import cast

import anyio
from pydantic import BaseModel

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.ids import new_id
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome as StageOutcome
from ombud.llm.cache import CachedAnswer
from ombud.llm.catalog import DeploymentConfig
from ombud.llm.services import LlmServices
from ombud.llm.state import LlmState
from ombud.llm.tokens import estimate_tokens
from ombud.llm.types import (
    ChatResult,
    EmbeddingResult,
    Usage,
)
from ombud.llm.usage.records import (
    UsageRecord,
    UsageRoute,
    UsageStatus,
    cost_micro_usd,
)
from ombud.observability.metrics import Metrics
from ombud.records.writer import RecordWriter


class LlmDone(BaseModel):
    """The chain's result for an LLM call; the route renders ``Call.llm`` in its protocol."""

    deployment: str | None
    cached: bool


def state(call: Call) -> LlmState:
    if call.llm is None:
        raise RuntimeError(f"{call.route}: no LLM state on the call")
    return call.llm


class RecordUsage:
    """``llm.record``: tokens, cost (settled against the budget hold), the usage record and its
    audit event — committed before the answer — and the answer into the cache.

    A streamed call is recorded by :meth:`finish` when its stream ends."""

    name = "llm.record"

    def __init__(
        self, services: LlmServices, records: RecordWriter, clock: Clock, metrics: Metrics
    ) -> None:
        self._services = services
        self._records = records
        self._clock = clock
        self._metrics = metrics

    async def __call__(self, call: Call) -> StageOutcome:
        llm = state(call)
        if llm.streaming and llm.cached is None:
            # The stream is still to be read: hand the call's clean-ups (concurrency slot, budget
            # hold, the upstream stream) to the route, which closes them when the stream ends.
            llm.deferred = hand_over(call)
            call.result = LlmDone(deployment=_deployment_id(llm), cached=False)
            return None
        answer = llm.answer
        if answer is None:
            raise RuntimeError("llm.record runs after llm.invoke")
        output_text = call.output_texts[0] if isinstance(answer, ChatResult) else None
        await self.finish(call, status="ok", output_text=output_text)
        call.result = LlmDone(deployment=_deployment_id(llm), cached=llm.cached is not None)
        return None

    async def finish(
        self,
        call: Call,
        *,
        status: str,
        output_text: str | None,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        raw_text: str | None = None,
    ) -> UsageRecord:
        """Charge, record and cache one finished call (shielded from cancellation)."""
        llm = state(call)
        llm.recorded = True
        with anyio.CancelScope(shield=True):
            record = await self._finish(
                call, llm, status, output_text, usage, finish_reason, raw_text
            )
        return record

    async def _finish(
        self,
        call: Call,
        llm: LlmState,
        status: str,
        output_text: str | None,
        usage: Usage | None,
        finish_reason: str | None,
        raw_text: str | None,
    ) -> UsageRecord:
        principal = call.require_principal()
        answer = llm.answer
        cached = llm.cached is not None
        if usage is None and answer is not None:
            usage = answer.usage
        if usage is None:
            produced = raw_text if raw_text is not None else (output_text or "")
            usage = Usage(llm.input_tokens, estimate_tokens(produced), estimated=True)
        deployment = None if cached else _deployment(llm)
        cost = 0 if cached or deployment is None else cost_micro_usd(deployment.price, usage)
        if llm.reservation is not None:
            await self._services.budgets.settle(llm.reservation, cost)
        deployment_id = _deployment_id(llm)
        if deployment is not None:
            source = "estimated" if usage.estimated else "reported"
            self._metrics.llm_tokens.labels(deployment.id, "input", source).inc(usage.input_tokens)
            self._metrics.llm_tokens.labels(deployment.id, "output", source).inc(
                usage.output_tokens
            )
            if cost:
                self._metrics.llm_cost.labels(deployment.id).inc(cost / 1_000_000)
        self._metrics.llm_requests.labels(
            call.route, llm.alias, deployment_id or "-", "cached" if cached else status
        ).inc()
        now = self._clock.now()
        attempts = len(llm.attempted.attempts) if llm.attempted is not None else 0
        record = UsageRecord(
            id=new_id("use"),
            request_id=call.request_id,
            created_at=now,
            tenant_id=principal.tenant_id,
            principal_id=principal.id,
            credential_id=principal.credential_id,
            subject=call.subject,
            feature=call.feature,
            route=cast(UsageRoute, call.route),
            alias=llm.alias,
            deployment=deployment_id,
            provider=self._services.provider_kind(deployment) if deployment else None,
            region=deployment.region if deployment else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            estimated=usage.estimated,
            cost_micro_usd=cost,
            cached=cached,
            status=cast(UsageStatus, status),
            attempts=attempts,
            latency_ms=round((time.perf_counter() - llm.started) * 1000, 3) if llm.started else 0.0,
        )
        event = AuditEvent(
            event_id=new_id("evt"),
            occurred_at=now,
            actor=principal.id,
            action=call.route,
            resource=f"llm:{llm.alias}",
            outcome=_OUTCOMES.get(status, Outcome.ERROR),
            tenant_id=principal.tenant_id,
            request_id=call.request_id,
            purpose=call.purpose,
            subject=call.subject,
            detail={
                "usage_id": record.id,
                "deployment": deployment_id,
                "cached": cached,
                "status": status,
                "tokens": [usage.input_tokens, usage.output_tokens],
                "cost_micro_usd": cost,
                "output_digest": _digest(output_text) if output_text is not None else None,
                "findings": [f"{f.stage}:{f.kind}" for f in call.findings],
            },
        )
        await self._records.write([record, event])
        await self._store(call, llm, usage, finish_reason, raw_text, status)
        return record

    async def _store(
        self,
        call: Call,
        llm: LlmState,
        usage: Usage,
        finish_reason: str | None,
        raw_text: str | None,
        status: str,
    ) -> None:
        cache = self._services.cache
        if cache is None or llm.cache_key is None or llm.cached is not None or status != "ok":
            return
        deployment = _deployment_id(llm) or ""
        answer = llm.answer
        if isinstance(answer, EmbeddingResult):
            entry = CachedAnswer(
                kind="embedding", text=None, finish_reason=None, vectors=answer.vectors,
                usage_input_tokens=usage.input_tokens, usage_output_tokens=0,
                deployment=deployment, model=answer.model, created_at=self._clock.monotonic(),
            )  # fmt: skip
        elif isinstance(answer, ChatResult):
            entry = CachedAnswer(
                kind="chat", text=answer.text, finish_reason=answer.finish_reason, vectors=None,
                usage_input_tokens=usage.input_tokens, usage_output_tokens=usage.output_tokens,
                deployment=deployment, model=answer.model, created_at=self._clock.monotonic(),
            )  # fmt: skip
        elif raw_text is not None and finish_reason in ("stop", "length"):
            entry = CachedAnswer(
                kind="chat", text=raw_text, finish_reason=finish_reason, vectors=None,
                usage_input_tokens=usage.input_tokens, usage_output_tokens=usage.output_tokens,
                deployment=deployment, model=llm.alias, created_at=self._clock.monotonic(),
            )  # fmt: skip
        else:
            return
        await cache.put(llm.cache_key, entry)


_OUTCOMES = {"ok": Outcome.SUCCESS, "refused": Outcome.DENIED, "blocked": Outcome.DENIED}


def _deployment(llm: LlmState) -> DeploymentConfig | None:
    return llm.attempted.deployment if llm.attempted is not None else None


def _deployment_id(llm: LlmState) -> str | None:
    if llm.cached is not None:
        return llm.cached.deployment
    deployment = _deployment(llm)
    return deployment.id if deployment is not None else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hand_over(call: Call) -> AsyncExitStack:
    """The call's clean-ups, moved out of the chain so they outlive it (streamed answers)."""
    return call.exit_stack.pop_all()
