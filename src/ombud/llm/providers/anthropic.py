"""The Anthropic Messages wire protocol, client side.

``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``. Anthropic requires
``max_tokens``; without one in the request the target's ``default_max_tokens`` option (else
1024) is sent. Anthropic keeps the system prompt apart from the messages and has no ``system``
or ``tool`` message roles, so ``system`` messages join the system prompt and ``tool`` messages
are sent as the user's. ``seed`` has no Anthropic counterpart and is not sent.

Target options: ``anthropic_version`` (default ``2023-06-01``), ``default_max_tokens``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any

from ombud.llm.providers.base import (
    int_field,
    parse_json_object,
    protocol_error,
    redact,
    status_error,
)
from ombud.llm.providers.http import UpstreamClient
from ombud.llm.types import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    FinishReason,
    StreamEnd,
    StreamEvent,
    Target,
    TextDelta,
    UpstreamError,
    Usage,
)

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicProvider:
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    async def chat(self, target: Target, request: ChatRequest) -> ChatResult:
        status, headers, payload = await self._client.post(
            f"{target.base_url}/v1/messages",
            _body(target, request, stream=False),
            headers=_headers(target),
            timeout_s=target.timeout_s,
            connect_timeout_s=target.connect_timeout_s,
        )
        if not 200 <= status < 300:
            raise status_error(target, status, headers, payload, self._now())
        data = parse_json_object(target, payload, "the message")
        if data.get("type") == "error":
            raise _error_event(target, data)
        content = data.get("content")
        if not isinstance(content, list):
            raise protocol_error(target, "the message has no content")
        text = "".join(
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
        usage_block = data.get("usage")
        usage = None
        if isinstance(usage_block, dict):
            usage = _usage(_input_tokens(usage_block), int_field(usage_block, "output_tokens"))
        return ChatResult(
            text=text,
            finish_reason=_finish(data.get("stop_reason")),
            usage=usage,
            model=_model(data, target),
        )

    async def stream(self, target: Target, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        async with self._client.post_stream(
            f"{target.base_url}/v1/messages",
            _body(target, request, stream=True),
            headers=_headers(target),
            timeout_s=target.timeout_s,
            connect_timeout_s=target.connect_timeout_s,
        ) as answer:
            if not 200 <= answer.status < 300:
                body = await answer.read()
                raise status_error(target, answer.status, answer.headers, body, self._now())
            state = _StreamState(target)
            async with aclosing(answer.events()) as events:
                async for event in events:
                    data = parse_json_object(target, event.data, f"a {event.event} event")
                    if event.event == "error" or data.get("type") == "error":
                        raise _error_event(target, data)
                    produced = state.apply(data)
                    if produced is not None:
                        yield produced
                        if isinstance(produced, StreamEnd):
                            await answer.drain()
                            return
            raise protocol_error(target, "the stream ended before message_stop")

    async def embed(self, target: Target, request: EmbeddingRequest) -> EmbeddingResult:
        message = f"{target.deployment}: the Anthropic API does not offer embeddings"
        raise UpstreamError("status", message, status=400)

    def _now(self) -> datetime:
        return self._client.clock.now()


class _StreamState:
    """What a Messages event stream has told so far (model, usage, stop reason)."""

    def __init__(self, target: Target) -> None:
        self.model = target.model
        self._target = target
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.stop_reason: object = None

    def apply(self, data: dict[str, Any]) -> StreamEvent | None:
        """Take one event in; return the text delta or the end it produces, if any."""
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self.model = _model(message, self._target)
                usage = message.get("usage")
                if isinstance(usage, dict):
                    self.input_tokens = _input_tokens(usage)
                    self.output_tokens = int_field(usage, "output_tokens")
        elif kind == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if isinstance(text, str) and text:
                    return TextDelta(text)
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                self.stop_reason = delta.get("stop_reason") or self.stop_reason
            usage = data.get("usage")
            if isinstance(usage, dict):
                self.output_tokens = int_field(usage, "output_tokens") or self.output_tokens
                self.input_tokens = _input_tokens(usage) or self.input_tokens
        elif kind == "message_stop":
            return StreamEnd(
                finish_reason=_finish(self.stop_reason),
                usage=_usage(self.input_tokens, self.output_tokens),
                model=self.model,
            )
        return None


def _headers(target: Target) -> dict[str, str]:
    headers = dict(target.headers)
    headers["anthropic-version"] = str(target.options.get("anthropic_version", DEFAULT_VERSION))
    if target.api_key:
        headers["x-api-key"] = target.api_key
    return headers


def _body(target: Target, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    system = [request.system] if request.system else []
    messages: list[dict[str, str]] = []
    for message in request.messages:
        if message.role == "system":
            system.append(message.content)
        else:
            role = "assistant" if message.role == "assistant" else "user"
            messages.append({"role": role, "content": message.content})
    max_tokens = request.max_tokens or target.options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
    body: dict[str, Any] = {
        "model": target.model,
        "max_tokens": int(max_tokens),
        "messages": messages,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if stream:
        body["stream"] = True
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    return body


def _input_tokens(usage: dict[str, Any]) -> int | None:
    """Input tokens, cache reads and writes included (all are billed as input)."""
    parts = [
        int_field(usage, key)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    known = [part for part in parts if part is not None]
    return sum(known) if known else None


def _usage(input_tokens: int | None, output_tokens: int | None) -> Usage | None:
    if input_tokens is None and output_tokens is None:
        return None
    return Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0)


def _finish(value: object) -> FinishReason:
    return _FINISH.get(value, "stop") if isinstance(value, str) else "stop"


def _model(data: dict[str, Any], target: Target) -> str:
    model = data.get("model")
    return model if isinstance(model, str) and model else target.model


def _error_event(target: Target, data: dict[str, Any]) -> UpstreamError:
    """An ``error`` event (or error body on a 200): 529 when overloaded, else 500."""
    error = data.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    status = 529 if kind == "overloaded_error" else 500
    text = f"{target.deployment}: upstream reported an error"
    if isinstance(message, str) and message:
        text += f": {redact(message, target)[:500]}"
    elif isinstance(kind, str):
        text += f": {kind}"
    return UpstreamError("status", text, status=status)
