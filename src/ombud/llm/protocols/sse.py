"""Server-sent event framing shared by the streaming encoders.

Both SDKs read ``text/event-stream`` line by line: an optional ``event:`` line, one ``data:``
line holding compact JSON, and a blank line. JSON escapes every newline inside strings, so one
``data:`` line always suffices.
"""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"
"""The OpenAI end-of-stream sentinel."""

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (smaller frames; the stream is UTF-8)."""
    return _encoder.encode(value)


def encode(text: str) -> bytes:
    # A lone surrogate (from a broken upstream) must not abort the stream mid-way.
    return text.encode("utf-8", "replace")


def data(payload: Any) -> bytes:
    """One unnamed event: ``data: <json>``."""
    return encode(f"data: {dumps(payload)}\n\n")


def event(name: str, payload: Any) -> bytes:
    """One named event: ``event: <name>`` then ``data: <json>``."""
    return encode(f"event: {name}\ndata: {dumps(payload)}\n\n")
