"""The OpenAI wire format of ``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/models``.

Requests are read into ombud's protocol-neutral types and results written back exactly as
OpenAI writes them, so that the official ``openai`` SDK (and the many clients that copy it) work
unchanged. The gateway is text-only for now: tool calling, multiple choices, audio and image
inputs are refused by name rather than silently dropped, since an answer that ignored them would
look right and be wrong.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ombud.llm.protocols import (
    load_object,
    optional_bool,
    optional_int,
    optional_number,
    optional_str,
    optional_str_list,
    refuse,
    required_model,
    sse,
    text_parts,
    type_name,
)
from ombud.llm.types import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    FinishReason,
    Message,
    Role,
    Usage,
)

EncodingFormat = Literal["float", "base64"]

_SYSTEM_ROLES = frozenset(("system", "developer"))
_CHAT_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant"}

# The wire has no "error" finish: an answer that ended abnormally but still came back is closed
# as a plain stop (failures the route knows of are sent as error events instead).
_FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "error": "stop",
}


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What a chat request asks of the wire format itself, beyond the neutral request."""

    include_usage: bool
    """``stream_options.include_usage``: end a stream with a usage chunk."""


def parse_chat(body: bytes) -> tuple[ChatRequest, ChatOptions]:
    """Read a ``/v1/chat/completions`` body; ProtocolError for anything refused.

    Leading system and developer messages become ``ChatRequest.system``; a system message after
    the conversation started stays in place with role ``system``. Unknown fields are ignored, as
    SDKs send extras (``extra_body``) the gateway has no use for.
    """
    data = load_object(body)
    model = required_model(data)
    _refuse_unsupported(data)

    raw = data.get("messages")
    if raw is None:
        refuse("'messages' is required.", "messages")
    if not isinstance(raw, list) or not raw:
        refuse(f"'messages' must be a non-empty array, not {_describe(raw)}.", "messages")
    system: list[str] = []
    messages: list[Message] = []
    for index, item in enumerate(raw):
        role, text = _message(item, index)
        if role == "system" and not messages:
            system.append(text)
        else:
            messages.append(Message(role, text))

    max_tokens = optional_int(data, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = optional_int(data, "max_tokens", minimum=1)

    stream_options = data.get("stream_options")
    include_usage = False
    if stream_options is not None:
        if not isinstance(stream_options, dict):
            refuse(
                f"'stream_options' must be an object, not {type_name(stream_options)}.",
                "stream_options",
            )
        value = stream_options.get("include_usage")
        if value is not None and not isinstance(value, bool):
            refuse(
                f"'stream_options.include_usage' must be a boolean, not {type_name(value)}.",
                "stream_options.include_usage",
            )
        include_usage = bool(value)

    request = ChatRequest(
        model=model,
        messages=messages,
        system="\n".join(system) if system else None,
        max_tokens=max_tokens,
        temperature=optional_number(data, "temperature", 0.0, 2.0),
        top_p=optional_number(data, "top_p", 0.0, 1.0),
        stop=optional_str_list(data, "stop", allow_str=True),
        stream=bool(optional_bool(data, "stream")),
        user=optional_str(data, "user"),
        seed=optional_int(data, "seed"),
    )
    return request, ChatOptions(include_usage=include_usage)


def _describe(value: object) -> str:
    return "an empty array" if value == [] else type_name(value)


def _refuse_unsupported(data: dict[str, Any]) -> None:
    """Refuse, by name, the features a text-only gateway cannot honour."""
    for name in ("tools", "functions"):
        if data.get(name):
            refuse(f"'{name}' is not supported: this gateway does not do tool calling.", name)
    n = optional_int(data, "n", minimum=1)
    if n is not None and n > 1:
        refuse("'n' greater than 1 is not supported: one choice per request.", "n")
    if data.get("audio") is not None:
        refuse("'audio' output is not supported: this gateway is text-only.", "audio")
    modalities = data.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        refuse("'modalities' may only hold 'text': this gateway is text-only.", "modalities")
    if data.get("logprobs") is True:
        refuse("'logprobs' is not supported.", "logprobs")
    response_format = data.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind != "text":
            refuse(
                f"'response_format' of type {kind!r} is not supported: only 'text'.",
                "response_format",
            )


def _message(item: object, index: int) -> tuple[Role, str]:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        refuse(f"'{where}' must be an object, not {type_name(item)}.", where)
    role = item.get("role")
    if role in _SYSTEM_ROLES:
        mapped: Role = "system"
    elif isinstance(role, str) and role in _CHAT_ROLES:
        mapped = _CHAT_ROLES[role]
    elif role in ("tool", "function"):
        refuse(
            f"'{where}.role' {role!r} is not supported: this gateway does not do tool calling.",
            f"{where}.role",
        )
    else:
        refuse(
            f"'{where}.role' must be one of 'system', 'developer', 'user', 'assistant', "
            f"got {role!r}.",
            f"{where}.role",
        )
    for name in ("tool_calls", "function_call"):
        if item.get(name):
            refuse(
                f"'{where}.{name}' is not supported: this gateway does not do tool calling.",
                f"{where}.{name}",
            )
    if item.get("audio") is not None:
        refuse(f"'{where}.audio' is not supported: this gateway is text-only.", f"{where}.audio")
    content = item.get("content")
    if isinstance(content, str):
        return mapped, content
    if isinstance(content, list):
        return mapped, text_parts(content, f"{where}.content", block="part")
    if content is None:
        refuse(f"'{where}.content' is required.", f"{where}.content")
    refuse(
        f"'{where}.content' must be a string or an array of text parts, not {type_name(content)}.",
        f"{where}.content",
    )


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def render_chat(result: ChatResult, *, id: str, created: int, model: str) -> dict[str, Any]:
    """A ``chat.completion`` object (``usage`` left out when no count is known)."""
    rendered: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "logprobs": None,
                "finish_reason": _FINISH[result.finish_reason],
            }
        ],
    }
    if result.usage is not None:
        rendered["usage"] = _usage(result.usage)
    return rendered


class ChatStreamEncoder:
    """Writes one streamed completion as ``chat.completion.chunk`` server-sent events.

    Text deltas are the bulk of a stream, so their frame is built once around the JSON of the
    text rather than serialising a whole chunk per token.
    """

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool) -> None:
        self._head: dict[str, Any] = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage
        # OpenAI marks every chunk "usage": null when a usage chunk will close the stream.
        tail = ',"usage":null}' if include_usage else "}"
        head = sse.dumps(self._head)[:-1]
        self._delta_prefix = f'data: {head},"choices":[{{"index":0,"delta":{{"content":'
        self._delta_suffix = f'}},"logprobs":null,"finish_reason":null}}]{tail}\n\n'

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {**self._head, "choices": choices}
        if self._include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return sse.data(chunk)

    def start(self) -> bytes:
        """The first chunk: the assistant role with empty content, as OpenAI opens a stream."""
        return self._chunk(
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        )

    def delta(self, text: str) -> bytes:
        """One chunk carrying a piece of the answer."""
        return sse.encode(self._delta_prefix + sse.dumps(text) + self._delta_suffix)

    def end(self, finish_reason: FinishReason, usage: Usage | None) -> bytes:
        """The finishing chunk, the usage chunk when asked for, and ``[DONE]``.

        The usage chunk has no choices, as OpenAI sends it; its ``usage`` is null when no count
        is known.
        """
        frames = self._chunk(
            [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": _FINISH[finish_reason]}]
        )
        if self._include_usage:
            frames += self._chunk([], usage=None if usage is None else _usage(usage))
        return frames + sse.DONE

    def error(self, status: int, message: str) -> bytes:
        """An error event mid-stream; the ``openai`` SDK raises ``APIError`` on reading it."""
        return sse.data(error_body(status, message))


def parse_embeddings(body: bytes) -> tuple[EmbeddingRequest, EncodingFormat]:
    """Read a ``/v1/embeddings`` body: ``input`` a string or an array of strings.

    Token-id arrays are refused: deployments may use different tokenizers, so ids mean nothing
    once the router picks one.
    """
    data = load_object(body)
    model = required_model(data)
    raw = data.get("input")
    if raw is None:
        refuse("'input' is required.", "input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list):
        if not raw:
            refuse("'input' must not be an empty array.", "input")
        for index, item in enumerate(raw):
            if isinstance(item, str):
                continue
            if isinstance(item, int | list) and not isinstance(item, bool):
                refuse("Token-id arrays are not supported as 'input': send text.", "input")
            refuse(f"'input[{index}]' must be a string, not {type_name(item)}.", f"input[{index}]")
        inputs = raw
    else:
        refuse(f"'input' must be a string or an array of strings, not {type_name(raw)}.", "input")
    for index, text in enumerate(inputs):
        if not text:
            refuse("'input' must not contain empty strings.", f"input[{index}]")

    raw_format = data.get("encoding_format")
    encoding: EncodingFormat
    if raw_format is None or raw_format == "float":
        encoding = "float"
    elif raw_format == "base64":
        encoding = "base64"
    else:
        refuse(
            f"'encoding_format' must be 'float' or 'base64', got {raw_format!r}.",
            "encoding_format",
        )
    request = EmbeddingRequest(
        model=model,
        inputs=inputs,
        dimensions=optional_int(data, "dimensions", minimum=1),
        user=optional_str(data, "user"),
    )
    return request, encoding


def _base64(vector: list[float]) -> str:
    """Little-endian float32, base64-encoded: what OpenAI returns for ``base64``."""
    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def render_embeddings(
    result: EmbeddingResult, *, model: str, encoding_format: EncodingFormat
) -> dict[str, Any]:
    """A ``list`` of ``embedding`` objects in input order, with the usage OpenAI reports."""
    encode = _base64 if encoding_format == "base64" else None
    prompt = result.usage.input_tokens if result.usage is not None else 0
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode(vector) if encode is not None else vector,
            }
            for index, vector in enumerate(result.vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model a caller may name, as ``/v1/models`` lists it."""

    id: str
    owned_by: str
    created: int


def render_models(entries: Sequence[ModelEntry]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": e.id, "object": "model", "created": e.created, "owned_by": e.owned_by}
            for e in entries
        ],
    }


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    409: "conflict",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    504: "timeout",
}
_DEFAULT_CODES = {402: "insufficient_quota", 429: "rate_limit_exceeded"}


def error_type(status: int) -> str:
    """The OpenAI ``error.type`` for an HTTP status."""
    known = _ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """``{"error": {...}}`` as OpenAI answers errors; the SDK picks its exception by status."""
    return {
        "error": {
            "message": message,
            "type": error_type(status),
            "param": param,
            "code": code if code is not None else _DEFAULT_CODES.get(status),
        }
    }
