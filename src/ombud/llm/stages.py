"""The LLM stages of the request path.

``llm.parse`` → (rate limits, authorization) → ``rate_limit.tokens`` → (input guards, policy) →
``llm.route`` → ``llm.budget`` → ``llm.cache`` → ``llm.invoke`` → (output guards, policy) →
``llm.record``. Each does one thing on ``Call.llm``; the route handlers render the answer in the
client's protocol. A streamed call leaves ``llm.invoke`` with the upstream's first event in hand
(retries and fallbacks apply until then); the route streams the rest through the streaming output
guard and records the call when the stream ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import cast

import anyio

from ombud.config import LlmSettings
from ombud.core.clock import Clock
from ombud.core.errors import (
    BadRequest,
    Forbidden,
    GatewayTimeout,
    ModelNotFound,
    ServiceUnavailable,
    TooManyRequests,
    UpstreamFailed,
)
from ombud.crypto.errors import CryptoError
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome as StageOutcome
from ombud.llm.cache import CachedAnswer, cache_key
from ombud.llm.catalog import DeploymentConfig
from ombud.llm.credentials import CredentialNotFound
from ombud.llm.protocols import ProtocolError
from ombud.llm.protocols import anthropic as anthropic_protocol
from ombud.llm.protocols import openai as openai_protocol
from ombud.llm.recording import LlmDone, RecordUsage, hand_over, state
from ombud.llm.routing import AllAttemptsFailed, NoRoute, Plan, RouteRequest
from ombud.llm.services import LlmServices
from ombud.llm.state import LlmState
from ombud.llm.tokens import estimate_embedding_tokens, estimate_request_tokens
from ombud.llm.types import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    Message,
    StreamEvent,
    UpstreamError,
    Usage,
)
from ombud.llm.usage.budgets import BudgetExceededProblem
from ombud.llm.usage.records import (
    UsageRoute,
    worst_case_micro_usd,
)
from ombud.observability.metrics import Metrics
from ombud.ratelimit import DenialReason, Quota, RateLimiter, rate_limit_headers

log = logging.getLogger(__name__)

CACHE_HEADER = "X-Ombud-Cache"
BUDGET_HEADER = "X-Ombud-Budget"
DEPLOYMENT_HEADER = "X-Ombud-Deployment"


# --- llm.parse ---------------------------------------------------------------------------


class ParseRequest:
    """``llm.parse``: the body in the route's protocol → the call's request, texts and size."""

    name = "llm.parse"

    def __init__(self, settings: LlmSettings) -> None:
        self._default_max_output = settings.default_max_output_tokens

    async def __call__(self, call: Call) -> StageOutcome:
        llm = state(call)
        try:
            if llm.kind == "embedding":
                request, llm.encoding_format = openai_protocol.parse_embeddings(call.body)
                llm.embedding = request
                llm.alias = request.model
                call.input_texts = list(request.inputs)
                llm.input_tokens = estimate_embedding_tokens(request.inputs)
            else:
                if llm.protocol == "anthropic":
                    chat = anthropic_protocol.parse_messages(call.body)
                else:
                    chat, options = openai_protocol.parse_chat(call.body)
                    llm.include_usage = options.include_usage
                llm.chat = chat
                llm.alias = chat.model
                call.input_texts = chat.texts()
                llm.input_tokens = estimate_request_tokens(chat)
                if chat.max_tokens is None:
                    # The output the budget and token limits reserve is the output allowed.
                    chat.max_tokens = self._default_max_output
                llm.max_output_tokens = chat.max_tokens
        except ProtocolError as exc:
            detail = f"{exc.param}: {exc.message}" if exc.param else exc.message
            raise BadRequest(detail=detail) from None
        call.target = llm.alias
        return None


# --- rate_limit.tokens -------------------------------------------------------------------


class TokenRateLimit:
    """``rate_limit.tokens``: tokens per minute per key and per tenant, through the one rate
    limiter. A call is charged its estimated prompt plus the output it may produce, before any
    upstream call; one that could never fit (more than a minute's tokens) is refused too."""

    name = "rate_limit.tokens"

    def __init__(self, limiter: RateLimiter, settings: LlmSettings) -> None:
        self._limiter = limiter
        self._per_key = (
            Quota("tpm-per-key", settings.tpm_per_key / 60.0, settings.tpm_per_key)
            if settings.tpm_per_key
            else None
        )
        self._per_tenant = (
            Quota("tpm-per-tenant", settings.tpm_per_tenant / 60.0, settings.tpm_per_tenant)
            if settings.tpm_per_tenant
            else None
        )

    async def __call__(self, call: Call) -> StageOutcome:
        if self._per_key is None and self._per_tenant is None:
            return None
        principal = call.require_principal()
        llm = state(call)
        checks: list[tuple[str, Quota]] = []
        if self._per_key is not None:
            checks.append((f"tpm:key:{principal.credential_id}", self._per_key))
        if self._per_tenant is not None:
            checks.append((f"tpm:tenant:{principal.tenant_id}", self._per_tenant))
        tokens = max(1, llm.input_tokens + llm.max_output_tokens)
        decision = await self._limiter.check(checks, cost=tokens)
        if decision.allowed:
            return None
        headers = rate_limit_headers(decision)
        if decision.reason is DenialReason.COST_EXCEEDS_BURST:
            raise TooManyRequests(
                detail=f"the call may use {tokens} tokens, more than the {decision.limit} limit "
                "allows in a minute; lower max_tokens",
                headers=headers,
            )
        raise TooManyRequests(detail=f"{decision.limit} token limit reached", headers=headers)


# --- llm.route ---------------------------------------------------------------------------


class RouteCall:
    """``llm.route``: the deployments that may answer, in order (tier, size, region, cost).

    Policy may narrow them: obligations ``allowed_regions`` (list) and ``max_cost_usd``, and a
    route hint (a deployment or region) tried first. A call about a registered data subject
    (``Call.subject_region``) is kept to deployments in the subject's region (residency).
    """

    name = "llm.route"

    def __init__(self, services: LlmServices) -> None:
        self._router = services.router

    async def __call__(self, call: Call) -> StageOutcome:
        llm = state(call)
        principal = call.require_principal()
        regions = call.obligations.get("allowed_regions")
        allowed = frozenset(str(r) for r in regions) if isinstance(regions, list) else None
        ceiling = call.obligations.get("max_cost_usd")
        request = RouteRequest(
            model=llm.alias,
            kind=llm.kind,
            tenant_tier=principal.tenant_tier,
            input_tokens=llm.input_tokens,
            max_output_tokens=llm.max_output_tokens,
            regions=allowed,
            subject_region=call.subject_region,
            cost_ceiling_usd=float(ceiling) if isinstance(ceiling, int | float) else None,
            preferred=call.route_hint,
        )
        try:
            llm.plan = self._router.plan(request)
        except NoRoute as exc:
            if exc.status == 404:
                raise ModelNotFound(detail=exc.message) from None
            if exc.status == 403:
                raise Forbidden(detail=exc.message) from None
            raise BadRequest(detail=exc.message) from None
        return None


# --- llm.budget --------------------------------------------------------------------------


class HoldBudget:
    """``llm.budget``: reserve the call's worst-case cost against the tenant's and key's
    budgets (402 past a hard limit, before any upstream call); released when the call ends
    without being charged, settled to the actual cost once it is known."""

    name = "llm.budget"

    def __init__(self, services: LlmServices, metrics: Metrics) -> None:
        self._budgets = services.budgets
        self._metrics = metrics

    async def __call__(self, call: Call) -> StageOutcome:
        llm = state(call)
        principal = call.require_principal()
        plan = llm.plan
        if plan is None:
            raise RuntimeError("llm.budget runs after llm.route")
        worst = max(
            worst_case_micro_usd(d.price, llm.input_tokens, llm.max_output_tokens)
            for d in plan.attempts_order()
        )
        try:
            reservation = await self._budgets.reserve(
                principal.tenant_id, principal.credential_id, worst
            )
        except BudgetExceededProblem:
            raise
        llm.reservation = reservation
        if reservation.soft_exceeded:
            llm.soft_limits = list(reservation.soft_exceeded)
            call.response_headers[BUDGET_HEADER] = "soft-limit-exceeded; " + ",".join(
                reservation.soft_exceeded
            )
        budgets = self._budgets

        async def release() -> None:
            with anyio.CancelScope(shield=True):
                await budgets.release(reservation)

        call.exit_stack.push_async_callback(release)
        return None


# --- llm.cache ---------------------------------------------------------------------------


class LookUpCache:
    """``llm.cache``: an exact-match answer for this tenant (and subject) and these deployment
    versions, unless the client opted out (``Cache-Control: no-cache|no-store``,
    ``X-Ombud-Cache: off``)."""

    name = "llm.cache"

    def __init__(self, services: LlmServices) -> None:
        self._cache = services.cache

    async def __call__(self, call: Call) -> StageOutcome:
        llm = state(call)
        if self._cache is None:
            return None
        if llm.cache_directive == "off":
            self._cache.bypass()
            call.response_headers[CACHE_HEADER] = "bypass"
            return None
        plan = llm.plan
        request: ChatRequest | EmbeddingRequest | None = llm.chat or llm.embedding
        if plan is None or request is None:
            raise RuntimeError("llm.cache runs after llm.parse and llm.route")
        _apply_texts(llm, call.input_texts)
        llm.cache_key = cache_key(
            tenant_id=call.require_principal().tenant_id,
            subject=call.subject,
            route=cast(UsageRoute, call.route),
            alias=llm.alias,
            deployment_versions=[(d.id, d.version) for d in plan.attempts_order()],
            request=request,
        )
        if llm.cache_directive == "refresh":
            call.response_headers[CACHE_HEADER] = "refresh"
            return None
        found = await self._cache.get(llm.cache_key)
        if found is None:
            call.response_headers[CACHE_HEADER] = "miss"
            return None
        answer, tier = found
        llm.cached, llm.cache_tier = answer, tier
        llm.answer = _from_cache(answer)
        if isinstance(llm.answer, ChatResult):
            call.output_texts = [llm.answer.text]
        call.response_headers[CACHE_HEADER] = f"hit; tier={tier}"
        return None


def _from_cache(answer: CachedAnswer) -> ChatResult | EmbeddingResult:
    usage = Usage(answer.usage_input_tokens, answer.usage_output_tokens)
    if answer.kind == "embedding":
        return EmbeddingResult(vectors=answer.vectors or [], usage=usage, model=answer.model)
    finish = answer.finish_reason if answer.finish_reason in ("stop", "length") else "stop"
    return ChatResult(
        text=answer.text or "",
        finish_reason=finish,  # type: ignore[arg-type]
        usage=usage,
        model=answer.model,
    )


def _apply_texts(llm: LlmState, texts: list[str]) -> None:
    """Put what the input guards left of the texts (redactions) back into the request."""
    if llm.embedding is not None:
        if texts != llm.embedding.inputs:
            llm.embedding.inputs = list(texts)
        return
    chat = llm.require_chat()
    current = chat.texts()
    if texts == current:
        return
    offset = 0
    if chat.system:
        chat.system = texts[0]
        offset = 1
    chat.messages = [Message(m.role, texts[offset + i]) for i, m in enumerate(chat.messages)]


# --- llm.invoke --------------------------------------------------------------------------


class InvokeUpstream:
    """``llm.invoke``: the call's plan, attempt by attempt (retries, fallbacks, breakers)."""

    name = "llm.invoke"

    def __init__(self, services: LlmServices, clock: Clock, recorder: RecordUsage) -> None:
        self._services = services
        self._clock = clock
        self._recorder = recorder

    async def __call__(self, call: Call) -> StageOutcome:
        llm = state(call)
        if llm.answer is not None:
            return None  # answered from the cache
        plan = llm.plan
        if plan is None:
            raise RuntimeError("llm.invoke runs after llm.route")
        _apply_texts(llm, call.input_texts)
        llm.started = time.perf_counter()
        try:
            if llm.embedding is not None:
                deployment = await self._embed(llm, plan, llm.embedding)
            elif llm.streaming:
                deployment = await self._open_stream(call, llm, plan, llm.require_chat())
            else:
                deployment = await self._complete(call, llm, plan, llm.require_chat())
        except AllAttemptsFailed as failed:
            raise _problem(failed.last, len(failed.attempts)) from None
        except UpstreamError as refused:
            raise _problem(refused, 1) from None
        except (CredentialNotFound, CryptoError) as missing:
            log.error("llm.invoke: provider credential unavailable: %s", type(missing).__name__)
            raise ServiceUnavailable(detail="the provider's credential is unavailable") from None
        call.response_headers[DEPLOYMENT_HEADER] = deployment
        # The provider has answered, so the call costs money: if a later stage refuses it (an
        # output guard, policy.after, the time limit), it is still charged and recorded.
        recorder = self._recorder

        async def charge_if_refused() -> None:
            if not llm.recorded:
                text = call.output_texts[0] if call.output_texts else None
                await recorder.finish(call, status="refused", output_text=text)

        call.exit_stack.push_async_callback(charge_if_refused)
        return None

    async def _embed(self, llm: LlmState, plan: Plan, request: EmbeddingRequest) -> str:
        services = self._services

        async def embed(deployment: DeploymentConfig) -> EmbeddingResult:
            target = await services.target(deployment)
            return await services.provider(deployment).embed(target, request)

        done = await services.router.run(plan, embed)
        llm.answer = done.value
        llm.attempted = done
        return done.deployment.id

    async def _complete(self, call: Call, llm: LlmState, plan: Plan, chat: ChatRequest) -> str:
        services = self._services

        async def complete(deployment: DeploymentConfig) -> ChatResult:
            target = await services.target(deployment)
            return await services.provider(deployment).chat(target, chat)

        done = await services.router.run(plan, complete)
        llm.answer = done.value
        llm.attempted = done
        call.output_texts = [done.value.text]
        return done.deployment.id

    async def _open_stream(self, call: Call, llm: LlmState, plan: Plan, chat: ChatRequest) -> str:
        services = self._services

        async def open_stream(
            deployment: DeploymentConfig,
        ) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
            target = await services.target(deployment)
            events = services.provider(deployment).stream(target, chat)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                raise UpstreamError("protocol", "the stream ended at once") from None
            except BaseException:
                await _close(events)
                raise
            return first, events

        opened = await services.router.run(plan, open_stream)
        first, events = opened.value
        llm.first = [first]
        llm.stream = events
        llm.attempted = opened
        call.exit_stack.push_async_callback(_close, events)
        return opened.deployment.id


async def _close(events: AsyncIterator[StreamEvent]) -> None:
    closer = getattr(events, "aclose", None)
    if closer is not None:
        with anyio.CancelScope(shield=True):
            await closer()


def _problem(error: UpstreamError, attempts: int) -> Exception:
    if error.kind == "status" and error.status in (400, 404, 413, 422):
        return BadRequest(detail=f"the provider refused the request: {error.message}")
    detail = f"{error.kind} after {attempts} attempt(s): {error.message}"
    if error.kind == "timeout":
        return GatewayTimeout(detail=f"the provider did not answer in time ({detail})")
    return UpstreamFailed(detail=f"the provider failed ({detail})")


__all__ = [
    "BUDGET_HEADER",
    "CACHE_HEADER",
    "HoldBudget",
    "InvokeUpstream",
    "LlmDone",
    "LookUpCache",
    "ParseRequest",
    "RecordUsage",
    "RouteCall",
    "TokenRateLimit",
    "hand_over",
    "state",
]
