"""What a stage may answer besides "carry on" (``None``)."""

from __future__ import annotations

from dataclasses import dataclass

from ombud.core.errors import Problem


@dataclass(frozen=True, slots=True)
class Deny:
    """End the call with ``problem``; it is counted and audited with the stage's name."""

    problem: Problem


@dataclass(frozen=True, slots=True)
class SendToReview:
    """End the call as pending human review (HTTP 202 with the review id)."""

    review_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Flag:
    """Note a concern and continue; the answer carries ``X-Ombud-Guard: flagged``."""

    kind: str
    detail: str = ""


Outcome = Deny | SendToReview | Flag | None
