"""The OpenAI wire protocol (Chat Completions and Embeddings), client side.

Also serves any OpenAI-compatible server (vLLM, Ollama, LiteLLM …): the same paths under the
provider's base URL (``https://api.openai.com/v1``, ``http://host:8000/v1``).

Target options: ``max_tokens_param`` (default ``max_tokens``; newer OpenAI models want
``max_completion_tokens``) and ``stream_usage`` (default true; turn off for servers that reject
``stream_options``, the caller then estimates usage).
"""

from __future__ import annotations

import math
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

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


class OpenAIProvider:
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    async def chat(self, target: Target, request: ChatRequest) -> ChatResult:
        status, headers, payload = await self._client.post(
            f"{target.base_url}/chat/completions",
            _chat_body(target, request, stream=False),
            headers=_headers(target),
            timeout_s=target.timeout_s,
            connect_timeout_s=target.connect_timeout_s,
        )
        if not 200 <= status < 300:
            raise status_error(target, status, headers, payload, self._now())
        data = parse_json_object(target, payload, "the chat completion")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise protocol_error(target, "the chat completion has no choices")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise protocol_error(target, "the chat completion has no message")
        content = message.get("content")
        return ChatResult(
            text=content if isinstance(content, str) else "",
            finish_reason=_finish(choices[0].get("finish_reason")) or "stop",
            usage=_usage(data.get("usage")),
            model=_model(data, target),
        )

    async def stream(self, target: Target, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        async with self._client.post_stream(
            f"{target.base_url}/chat/completions",
            _chat_body(target, request, stream=True),
            headers=_headers(target),
            timeout_s=target.timeout_s,
            connect_timeout_s=target.connect_timeout_s,
        ) as answer:
            if not 200 <= answer.status < 300:
                body = await answer.read()
                raise status_error(target, answer.status, answer.headers, body, self._now())
            finish: FinishReason | None = None
            usage: Usage | None = None
            model = target.model
            done = False
            async with aclosing(answer.events()) as events:
                async for event in events:
                    if event.data.strip() == "[DONE]":
                        done = True
                        break
                    chunk = parse_json_object(target, event.data, "a stream chunk")
                    if "error" in chunk:
                        raise _stream_error(target, chunk)
                    model = _model(chunk, target)
                    usage = _usage(chunk.get("usage")) or usage
                    choices = chunk.get("choices")
                    if not isinstance(choices, list) or not choices:
                        continue
                    choice = choices[0]
                    if not isinstance(choice, dict):
                        raise protocol_error(target, "a stream chunk has a malformed choice")
                    delta = choice.get("delta")
                    if isinstance(delta, dict):
                        text = delta.get("content")
                        if isinstance(text, str) and text:
                            yield TextDelta(text)
                    finish = _finish(choice.get("finish_reason")) or finish
            if not done and finish is None:
                raise protocol_error(target, "the stream ended before its last chunk")
            yield StreamEnd(finish_reason=finish or "stop", usage=usage, model=model)
            if done:
                await answer.drain()

    async def embed(self, target: Target, request: EmbeddingRequest) -> EmbeddingResult:
        body: dict[str, Any] = {
            "model": target.model,
            "input": request.inputs,
            "encoding_format": "float",
        }
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        status, headers, payload = await self._client.post(
            f"{target.base_url}/embeddings",
            body,
            headers=_headers(target),
            timeout_s=target.timeout_s,
            connect_timeout_s=target.connect_timeout_s,
        )
        if not 200 <= status < 300:
            raise status_error(target, status, headers, payload, self._now())
        data = parse_json_object(target, payload, "the embeddings")
        items = data.get("data")
        if not isinstance(items, list) or len(items) != len(request.inputs):
            raise protocol_error(target, "the embeddings do not match the inputs")
        vectors: list[tuple[int, list[float]]] = []
        for position, item in enumerate(items):
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(vector, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                for x in vector
            ):
                raise protocol_error(target, "an embedding is not a list of finite numbers")
            index = int_field(item, "index") if isinstance(item, dict) else None
            vectors.append((position if index is None else index, [float(x) for x in vector]))
        vectors.sort(key=lambda pair: pair[0])
        usage_block = data.get("usage")
        usage = None
        if isinstance(usage_block, dict):
            prompt = int_field(usage_block, "prompt_tokens")
            if prompt is not None:
                usage = Usage(input_tokens=prompt, output_tokens=0)
        return EmbeddingResult(
            vectors=[vector for _, vector in vectors], usage=usage, model=_model(data, target)
        )

    def _now(self) -> datetime:
        return self._client.clock.now()


def _headers(target: Target) -> dict[str, str]:
    headers = dict(target.headers)
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    return headers


def _chat_body(target: Target, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    messages: list[dict[str, str]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend({"role": m.role, "content": m.content} for m in request.messages)
    body: dict[str, Any] = {"model": target.model, "messages": messages, "stream": stream}
    if stream and target.options.get("stream_usage", True):
        body["stream_options"] = {"include_usage": True}
    if request.max_tokens is not None:
        body[str(target.options.get("max_tokens_param", "max_tokens"))] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.user is not None:
        body["user"] = request.user
    return body


def _finish(value: object) -> FinishReason | None:
    if not isinstance(value, str):
        return None
    return _FINISH.get(value, "stop")


def _usage(block: object) -> Usage | None:
    if not isinstance(block, dict):
        return None
    prompt = int_field(block, "prompt_tokens")
    completion = int_field(block, "completion_tokens")
    if prompt is None and completion is None:
        return None
    return Usage(input_tokens=prompt or 0, output_tokens=completion or 0, estimated=False)


def _model(data: dict[str, Any], target: Target) -> str:
    model = data.get("model")
    return model if isinstance(model, str) and model else target.model


def _stream_error(target: Target, chunk: dict[str, Any]) -> UpstreamError:
    """An error the upstream reported inside an already-started stream."""
    error = chunk.get("error")
    message = ""
    status = 500
    if isinstance(error, dict):
        raw = error.get("message")
        message = raw if isinstance(raw, str) else ""
        code = int_field(error, "code")
        if code is not None and 400 <= code < 600:
            status = code
    elif isinstance(error, str):
        message = error
    text = f"{target.deployment}: upstream failed mid-stream"
    if message:
        text += f": {redact(message, target)[:500]}"
    return UpstreamError("status", text, status=status)
