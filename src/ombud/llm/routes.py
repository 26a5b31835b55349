"""The OpenAI- and Anthropic-compatible routes.

Each runs its chain (``llm.chat``, ``llm.messages``, ``llm.embeddings``) and answers in its
protocol's own shapes, errors included, so stock SDKs work unchanged: an ombud refusal (401,
402, 403, 404, 429, 502, 504 …) reaches an SDK as the exception it raises for that status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from ombud.api.deps import ClientIpDep, ContainerDep, GatewayDep
from ombud.api.problems import ProblemRenderer, respond
from ombud.config import GuardSettings
from ombud.core.errors import GuardBlocked, Problem
from ombud.gateway.call import Call
from ombud.gateway.chain import PendingReview
from ombud.gateway.http import answer, call_from_request, credentials_of
from ombud.guards.streaming import StreamingOutputGuard
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.llm.cache import cache_directive
from ombud.llm.protocols import anthropic as anthropic_protocol
from ombud.llm.protocols import openai as openai_protocol
from ombud.llm.stages import RecordUsage, state
from ombud.llm.state import LlmState
from ombud.llm.types import ChatResult, EmbeddingResult, StreamEnd, TextDelta, UpstreamError, Usage
from ombud.registry.tables import RegisteredModelRow

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["llm"])

CHAT = "llm.chat"
MESSAGES = "llm.messages"
EMBEDDINGS = "llm.embeddings"

_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _openai_error(problem: Problem, request_id: str | None, path: str) -> dict[str, Any]:
    return openai_protocol.error_body(
        problem.status, problem.detail or problem.title, code=problem.kind
    )


def _anthropic_error(problem: Problem, request_id: str | None, path: str) -> dict[str, Any]:
    return anthropic_protocol.error_body(problem.status, problem.detail or problem.title)


@router.post(
    "/chat/completions",
    name=CHAT,
    summary="Chat completion (OpenAI-compatible; streaming with stream=true)",
    openapi_extra=_JSON_BODY,
)
async def chat_completions(
    request: Request,
    response: Response,
    gateway: GatewayDep,
    container: ContainerDep,
    client_ip: ClientIpDep,
) -> Response:
    """OpenAI's ``POST /v1/chat/completions``: governed, routed, recorded; errors in OpenAI's
    ``{"error": {...}}`` shape."""
    return await _run(request, response, gateway, container, client_ip, CHAT, "openai", "chat")


@router.post(
    "/messages",
    name=MESSAGES,
    summary="Messages (Anthropic-compatible; streaming with stream=true)",
    openapi_extra=_JSON_BODY,
)
async def messages(
    request: Request,
    response: Response,
    gateway: GatewayDep,
    container: ContainerDep,
    client_ip: ClientIpDep,
) -> Response:
    """Anthropic's ``POST /v1/messages``; errors in Anthropic's ``{"type": "error", ...}``."""
    return await _run(
        request, response, gateway, container, client_ip, MESSAGES, "anthropic", "chat"
    )


@router.post(
    "/embeddings", name=EMBEDDINGS, summary="Embeddings (OpenAI-compatible)",
    openapi_extra=_JSON_BODY,
)  # fmt: skip
async def embeddings(
    request: Request,
    response: Response,
    gateway: GatewayDep,
    container: ContainerDep,
    client_ip: ClientIpDep,
) -> Response:
    """OpenAI's ``POST /v1/embeddings`` (float or base64 encoding)."""
    return await _run(
        request, response, gateway, container, client_ip, EMBEDDINGS, "openai", "embedding"
    )


@router.get("/models", name="llm.models", summary="Models callable here (OpenAI list shape)")
async def list_models(request: Request, container: ContainerDep) -> Response:
    """LLM aliases and deployments, and the tenant-visible own models (``/v1/models/{name}``)."""
    try:
        async with container.sessions() as session:
            await IdentityService(
                IdentityRepository(session), container.api_key_pepper, container.clock,
                tokens=container.token_verifier,
            ).authenticate(credentials_of(request).token())  # fmt: skip
            own = (await session.scalars(select(RegisteredModelRow))).all()
    except Problem as problem:
        return await respond(request, problem, render=_openai_error)
    created = int(time.time())
    entries = [
        openai_protocol.ModelEntry(id=name, owned_by=owner, created=created)
        for name, owner in container.llm.router.models()
    ]
    entries += [
        openai_protocol.ModelEntry(
            id=row.name, owned_by="ombud", created=int(row.created_at.timestamp())
        )
        for row in own
    ]
    return JSONResponse(openai_protocol.render_models(entries))


async def _run(
    request: Request,
    response: Response,
    gateway: Any,
    container: Any,
    client_ip: str | None,
    route: str,
    protocol: Literal["openai", "anthropic"],
    kind: Literal["chat", "embedding"],
) -> Response:
    render: ProblemRenderer = _openai_error if protocol == "openai" else _anthropic_error
    try:
        call = await call_from_request(
            request,
            route=route,
            target=None,
            client_ip=client_ip,
            body_timeout_s=container.settings.server.body_timeout_s,
        )
        call.llm = LlmState(
            protocol=protocol,
            kind=kind,
            alias="",
            cache_directive=cache_directive(request.headers),
        )
        chain = gateway.chain(route)
        result = await chain.run(call)
    except Problem as problem:
        return await respond(request, problem, render=render)
    except Exception:
        # A bug, not a refusal: still answered in the client's protocol (500), and logged.
        log.exception("%s failed unexpectedly", route)
        return await respond(request, Problem(detail="unexpected error; see the server log"),
                             render=render)  # fmt: skip
    if isinstance(result, PendingReview):
        pending = answer(call, result, response)
        assert pending is not None
        return pending
    llm = state(call)
    if llm.streaming:
        try:
            relay = _StreamRelay(call, llm, container, _recorder(chain))
        except BaseException:
            if llm.deferred is not None:
                with anyio.CancelScope(shield=True):
                    await llm.deferred.aclose()
            raise
        return _RelayedStream(relay, call.response_headers)
    return JSONResponse(_render(call, llm), headers=call.response_headers)


def _recorder(chain: Any) -> RecordUsage:
    for stage in chain.stages:
        if isinstance(stage, RecordUsage):
            return stage
    raise RuntimeError("an LLM chain without llm.record")


def _render(call: Call, llm: LlmState) -> dict[str, Any]:
    result = llm.answer
    created = int(time.time())
    if isinstance(result, EmbeddingResult):
        return openai_protocol.render_embeddings(
            result, model=llm.alias, encoding_format=llm.encoding_format
        )
    if not isinstance(result, ChatResult):
        raise RuntimeError("no answer to render")
    # The guards and policy may have rewritten the text (redaction, size cap).
    text = call.output_texts[0] if call.output_texts else result.text
    shown = ChatResult(text=text, finish_reason=result.finish_reason, usage=_usage(call, llm),
                       model=result.model)  # fmt: skip
    if llm.protocol == "anthropic":
        return anthropic_protocol.render_message(
            shown, id=f"msg_{call.request_id}", model=llm.alias
        )
    return openai_protocol.render_chat(
        shown, id=f"chatcmpl-{call.request_id}", created=created, model=llm.alias
    )


def _usage(call: Call, llm: LlmState) -> Usage:
    answer = llm.answer
    if answer is not None and answer.usage is not None:
        return answer.usage
    from ombud.llm.tokens import estimate_tokens

    text = call.output_texts[0] if call.output_texts else ""
    return Usage(llm.input_tokens, estimate_tokens(text), estimated=True)


class _Encoder:
    """One protocol's stream encoder behind one interface."""

    def __init__(self, call: Call, llm: LlmState) -> None:
        self._impl: Any
        if llm.protocol == "anthropic":
            self._impl = anthropic_protocol.MessageStreamEncoder(
                id=f"msg_{call.request_id}", model=llm.alias, input_tokens=llm.input_tokens
            )
        else:
            self._impl = openai_protocol.ChatStreamEncoder(
                id=f"chatcmpl-{call.request_id}", created=int(time.time()), model=llm.alias,
                include_usage=llm.include_usage,
            )  # fmt: skip
        self.start: Callable[[], bytes] = self._impl.start
        self.delta: Callable[[str], bytes] = self._impl.delta
        self.end: Callable[[Any, Usage | None], bytes] = self._impl.end
        self.error: Callable[[int, str], bytes] = self._impl.error


class _RelayedStream(StreamingResponse):
    """A streamed answer whose relay is closed however the response ends — even when it never
    starts (the client left while the call waited for the first token, and the server cancels
    the body before its first step), so the call is always recorded and its slot and budget
    hold are always given back."""

    def __init__(self, relay: _StreamRelay, headers: dict[str, str]) -> None:
        extra = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(relay.body(), media_type="text/event-stream", headers={**headers, **extra})
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._relay.close()


class _StreamRelay:
    """Relays a streamed answer to the client: each chunk through the streaming output guard
    (redaction with hold-back, blocking, size cap), then the call is charged and recorded."""

    def __init__(self, call: Call, llm: LlmState, container: Any, recorder: RecordUsage) -> None:
        self._call = call
        self._llm = llm
        self._guard = StreamingOutputGuard(_guard_settings(container, call), canary=call.canary)
        self._encoder = _Encoder(call, llm)
        self._router = container.llm.router
        self._recorder = recorder
        self._raw: list[str] = []
        self._sent: list[str] = []
        self._closed = False
        self._usage: Usage | None = None
        self._finish: Any = None
        self._status = "cancelled"

    async def body(self) -> AsyncIterator[bytes]:
        encoder = self._encoder
        try:
            yield encoder.start()
            async for piece in self._relay():
                yield piece
            self._status = "ok"
            usage = self._usage or _estimate(self._llm, self._raw)
            yield encoder.end(self._finish, usage)
        except GuardBlocked as blocked:
            self._status = "blocked"
            yield encoder.error(400, blocked.detail)
        except UpstreamError as failed:
            self._status = "error"
            if self._llm.attempted is not None:
                self._router.report_stream_failure(self._llm.attempted.deployment.id)
            yield encoder.error(502, f"the provider's stream failed: {failed.message}")
        finally:
            with anyio.CancelScope(shield=True):
                await self.close()

    async def _relay(self) -> AsyncIterator[bytes]:
        async for event in _events(self._call, self._llm):
            if isinstance(event, TextDelta):
                self._raw.append(event.text)
                safe = self._guard.feed(event.text)
                if safe:
                    self._sent.append(safe)
                    yield self._encoder.delta(safe)
            else:
                self._usage, self._finish = event.usage, event.finish_reason
        tail = self._guard.finish()
        if tail:
            self._sent.append(tail)
            yield self._encoder.delta(tail)
        if self._finish is None:
            raise UpstreamError("protocol", "the stream ended without its end event")
        if self._guard.capped:
            self._finish = "length"

    async def close(self) -> None:
        """Record the call and give back what it holds; once, whichever way the stream ended."""
        if self._closed:
            return
        self._closed = True
        llm = self._llm
        try:
            if self._status == "ok" and llm.attempted is not None:
                self._router.report_stream_success(llm.attempted.deployment.id)
            # A cached answer was recorded by the chain; it is only replayed here.
            if llm.cached is None and not llm.recorded:
                await self._recorder.finish(
                    self._call, status=self._status, output_text="".join(self._sent),
                    usage=self._usage, finish_reason=self._finish, raw_text="".join(self._raw),
                )  # fmt: skip
        finally:
            if llm.deferred is not None:
                await llm.deferred.aclose()


def _guard_settings(container: Any, call: Call) -> GuardSettings:
    """The output guard's settings, tightened by what policy obliged (``redact_pii``,
    ``max_output_chars``): a streamed answer keeps the same obligations as a whole one."""
    settings: GuardSettings = container.settings.guards
    updates: dict[str, object] = {}
    if call.obligations.get("redact_pii") is True and settings.output_pii in ("off", "flag"):
        updates["output_pii"] = "redact"
    limit = call.obligations.get("max_output_chars")
    if isinstance(limit, int) and not isinstance(limit, bool):
        updates["max_output_chars"] = max(1, min(settings.max_output_chars, limit))
    return settings.model_copy(update=updates) if updates else settings


async def _events(call: Call, llm: LlmState) -> AsyncIterator[Any]:
    if llm.cached is not None and isinstance(llm.answer, ChatResult):
        # A cached answer replays as a stream: the text the guards and policy left of it.
        text = call.output_texts[0] if call.output_texts else llm.answer.text
        for piece in _chunks(text):
            yield TextDelta(piece)
        yield StreamEnd(llm.answer.finish_reason, llm.answer.usage, llm.answer.model)
        return
    for event in llm.first:
        yield event
    if llm.stream is not None:
        async for event in llm.stream:
            yield event


def _chunks(text: str, size: int = 64) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _estimate(llm: LlmState, raw: list[str]) -> Usage:
    from ombud.llm.tokens import estimate_tokens

    return Usage(llm.input_tokens, estimate_tokens("".join(raw)), estimated=True)
