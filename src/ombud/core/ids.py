"""Identifiers: a short type prefix and a random, URL-safe body (e.g. ``pred_3kq...``)."""

from __future__ import annotations

import re
import secrets

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_id(prefix: str) -> str:
    """Return a new identifier such as ``pred_9f3c...`` (128 random bits, hex)."""
    return f"{prefix}_{secrets.token_hex(16)}"


def is_valid_request_id(value: str) -> bool:
    """Whether a client-supplied request id is safe to echo into logs and headers."""
    return bool(_REQUEST_ID.match(value))
