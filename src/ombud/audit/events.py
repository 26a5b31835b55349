"""The audit event: one decision or access, as the trail keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

ANONYMOUS = "anonymous"


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    """Refused for who the caller is or what they may do (401/403/429)."""
    REJECTED = "rejected"
    """Refused for what was asked (404/413/422)."""
    ERROR = "error"
    PENDING_REVIEW = "pending_review"
    """Held for a human decision (HTTP 202)."""

    @classmethod
    def for_status(cls, status: int) -> Outcome:
        """The outcome an HTTP status stands for."""
        if status in (401, 403, 429):
            return cls.DENIED
        if status >= 500:
            return cls.ERROR
        return cls.REJECTED if status >= 400 else cls.SUCCESS


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who (``actor``) did what (``action``) to which ``resource``, why, and how it ended.

    ``subject`` is a pseudonymous data-subject id, never personal data.
    """

    event_id: str
    occurred_at: datetime
    actor: str
    action: str
    resource: str
    outcome: Outcome
    tenant_id: str | None = None
    request_id: str | None = None
    purpose: str | None = None
    subject: str | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
