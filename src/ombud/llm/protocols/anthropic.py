"""The Anthropic wire format of ``/v1/messages``.

Requests are read into ombud's protocol-neutral types and results written back exactly as the
Messages API writes them (including its named server-sent events), so that the official
``anthropic`` SDK works unchanged. Text only for now: image, document and tool blocks, and
``tools``, are refused by name rather than silently dropped.
"""

from __future__ import annotations

from typing import Any

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
from ombud.llm.types import ChatRequest, ChatResult, FinishReason, Message, Role, Usage

_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant"}

# The wire has no "error" stop reason: an answer that ended abnormally but still came back is
# closed as an ordinary end of turn (failures the route knows of are sent as error events).
_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
    "error": "end_turn",
}


def stop_reason(finish_reason: FinishReason) -> str:
    return _STOP_REASONS[finish_reason]


def parse_messages(body: bytes) -> ChatRequest:
    """Read a ``/v1/messages`` body; ProtocolError for anything refused.

    ``max_tokens`` is required, as the Messages API requires it. ``system`` may be a string or a
    list of text blocks; block texts are joined with newlines. Unknown fields are ignored.
    """
    data = load_object(body)
    model = required_model(data)
    if data.get("max_tokens") is None:
        refuse("'max_tokens' is required.", "max_tokens")
    max_tokens = optional_int(data, "max_tokens", minimum=1)
    if data.get("tools"):
        refuse("'tools' is not supported: this gateway does not do tool use.", "tools")
    output_config = data.get("output_config")
    if isinstance(output_config, dict) and output_config.get("format") is not None:
        # Structured output would come back as free text: refused rather than ignored.
        refuse("'output_config.format' is not supported.", "output_config.format")

    raw = data.get("messages")
    if raw is None:
        refuse("'messages' is required.", "messages")
    if not isinstance(raw, list) or not raw:
        kind = "an empty array" if raw == [] else type_name(raw)
        refuse(f"'messages' must be a non-empty array, not {kind}.", "messages")
    messages = [_message(item, index) for index, item in enumerate(raw)]

    metadata = data.get("metadata")
    user = None
    if metadata is not None:
        if not isinstance(metadata, dict):
            refuse(f"'metadata' must be an object, not {type_name(metadata)}.", "metadata")
        user = optional_str(metadata, "user_id", "metadata.user_id")

    return ChatRequest(
        model=model,
        messages=messages,
        system=_system(data.get("system")),
        max_tokens=max_tokens,
        temperature=optional_number(data, "temperature", 0.0, 1.0),
        top_p=optional_number(data, "top_p", 0.0, 1.0),
        stop=optional_str_list(data, "stop_sequences", allow_str=False),
        stream=bool(optional_bool(data, "stream")),
        user=user,
    )


def _system(value: object) -> str | None:
    if value is None or value == []:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        return text_parts(value, "system", block="block")
    refuse(
        f"'system' must be a string or an array of text blocks, not {type_name(value)}.",
        "system",
    )


def _message(item: object, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        refuse(f"'{where}' must be an object, not {type_name(item)}.", where)
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        hint = " (use the top-level 'system' parameter)" if role == "system" else ""
        refuse(
            f"'{where}.role' must be 'user' or 'assistant', got {role!r}{hint}.",
            f"{where}.role",
        )
    content = item.get("content")
    if isinstance(content, str):
        return Message(_ROLES[role], content)
    if isinstance(content, list):
        return Message(_ROLES[role], text_parts(content, f"{where}.content", block="block"))
    if content is None:
        refuse(f"'{where}.content' is required.", f"{where}.content")
    refuse(
        f"'{where}.content' must be a string or an array of text blocks, not {type_name(content)}.",
        f"{where}.content",
    )


def render_message(result: ChatResult, *, id: str, model: str) -> dict[str, Any]:
    """A ``message`` object; usage is zero when no count is known (the field is required)."""
    usage = result.usage
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": result.text}],
        "model": model,
        "stop_reason": _STOP_REASONS[result.finish_reason],
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens if usage is not None else 0,
            "output_tokens": usage.output_tokens if usage is not None else 0,
        },
    }


class MessageStreamEncoder:
    """Writes one streamed message as the Messages API's named server-sent events.

    One text content block (index 0) carries the answer; text deltas, the bulk of a stream, are
    framed around the JSON of the text rather than serialising a whole event per token.
    """

    _DELTA_PREFIX = (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":'
    )
    _DELTA_SUFFIX = "}}\n\n"

    def __init__(self, *, id: str, model: str, input_tokens: int) -> None:
        self._id = id
        self._model = model
        self._input_tokens = input_tokens

    def start(self) -> bytes:
        """``message_start`` (empty content, the input count), ``content_block_start``, ``ping``."""
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }
        return (
            sse.event("message_start", {"type": "message_start", "message": message})
            + sse.event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            + sse.event("ping", {"type": "ping"})
        )

    def delta(self, text: str) -> bytes:
        """A ``content_block_delta`` carrying a piece of the answer."""
        return sse.encode(self._DELTA_PREFIX + sse.dumps(text) + self._DELTA_SUFFIX)

    def end(self, finish_reason: FinishReason, usage: Usage | None) -> bytes:
        """``content_block_stop``, ``message_delta`` (stop reason, usage), ``message_stop``.

        Usage counts on ``message_delta`` are cumulative, so a known input count is repeated
        there: it overrides the estimate ``message_start`` may have carried.
        """
        delta_usage: dict[str, int] = {
            "output_tokens": usage.output_tokens if usage is not None else 0
        }
        if usage is not None:
            delta_usage["input_tokens"] = usage.input_tokens
        return (
            sse.event("content_block_stop", {"type": "content_block_stop", "index": 0})
            + sse.event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": _STOP_REASONS[finish_reason],
                        "stop_sequence": None,
                    },
                    "usage": delta_usage,
                },
            )
            + sse.event("message_stop", {"type": "message_stop"})
        )

    def error(self, status: int, message: str) -> bytes:
        """An ``error`` event mid-stream; the ``anthropic`` SDK raises on reading it."""
        return sse.event("error", error_body(status, message))


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """The Anthropic ``error.type`` for an HTTP status."""
    known = _ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str) -> dict[str, Any]:
    """``{"type": "error", "error": {...}}`` as the Messages API answers errors."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}
