"""What a request declares about itself, beyond who sent it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallContext:
    """Request id and the ``X-Ombud-*`` declarations: purpose, pseudonymous subject, feature."""

    request_id: str
    purpose: str | None = None
    subject: str | None = None
    feature: str | None = None
