"""What every provider adapter offers, and the error mapping they share.

An adapter turns the gateway's protocol-neutral request into one upstream's wire format and
back. It holds no credentials: each call's :class:`~ombud.llm.types.Target` brings the key.
Every failure leaves an adapter as :class:`~ombud.llm.types.UpstreamError`, whose message is
shown to clients and so must never carry the key or any request header.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from ombud.llm.types import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    StreamEvent,
    Target,
    UpstreamError,
)

MAX_MESSAGE_CHARS = 500
"""Longest upstream error message passed on to clients."""


class Provider(Protocol):
    async def chat(self, target: Target, request: ChatRequest) -> ChatResult:
        """One complete answer."""
        ...

    def stream(self, target: Target, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """The answer as it is produced: ``TextDelta`` pieces, then exactly one ``StreamEnd``."""
        ...

    async def embed(self, target: Target, request: EmbeddingRequest) -> EmbeddingResult:
        """One vector per input, in input order."""
        ...


def redact(message: str, target: Target) -> str:
    """``message`` with the target's key and header values masked (upstreams sometimes echo a
    rejected key back in their error message)."""
    secrets = [target.api_key or ""] + list(target.headers.values())
    for secret in secrets:
        if len(secret) >= 4:
            message = message.replace(secret, "***")
    return message


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_message(body: bytes) -> str | None:
    """The human message of an upstream's JSON error body, if it has one.

    Covers OpenAI (``{"error": {"message": ...}}``), Anthropic (``{"type": "error", "error":
    {"type": ..., "message": ...}}``) and common OpenAI-compatible servers (``{"error": "..."}``,
    ``{"message": ...}``, ``{"detail": ...}``).
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return message
        kind = error.get("type")
        if isinstance(kind, str):
            return kind
    if isinstance(error, str) and error:
        return error
    for key in ("message", "detail"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def status_error(
    target: Target, status: int, headers: Mapping[str, str], body: bytes, now: datetime
) -> UpstreamError:
    """The :class:`UpstreamError` for a non-2xx answer, with the upstream's own message when it
    sent a JSON error body (an HTML error page from a proxy is not quoted)."""
    detail = error_message(body)
    message = f"{target.deployment}: upstream answered HTTP {status}"
    if detail:
        message += f": {_truncate(redact(detail, target))}"
    return UpstreamError(
        "status",
        message,
        status=status,
        retry_after_s=parse_retry_after(headers.get("retry-after"), now),
    )


def protocol_error(target: Target, what: str) -> UpstreamError:
    return UpstreamError("protocol", f"{target.deployment}: {what}")


def parse_json_object(target: Target, payload: bytes | str, what: str) -> dict[str, Any]:
    """``payload`` as a JSON object, or a ``protocol`` error naming ``what`` was malformed."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise protocol_error(target, f"the upstream sent malformed JSON in {what}") from None
    if not isinstance(data, dict):
        raise protocol_error(target, f"the upstream sent a non-object {what}")
    return data


def int_field(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
