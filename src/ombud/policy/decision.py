"""What a policy answers, and the record every evaluation leaves.

Every entrypoint (``data.ombud.<stage>.decision``) must produce one object::

    {
      "allow": true | false,                     # required
      "reasons": ["..."],                        # optional, strings
      "review": false | true | {"reason": "..."},# optional: send the call to human review
      "route": null | "deployment-or-region",    # optional: a routing hint
      "obligations": {"redact_pii": true, "max_output_chars": 2000}  # optional, known keys only
    }

Anything else — no value, another type, an unknown key or obligation — is a deny with a reason
saying what was wrong (fail closed): an obligation ombud does not know is one it cannot keep.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from ombud.policy._rego import JsonValue

_RESULT_KEYS = frozenset({"allow", "reasons", "review", "route", "obligations"})
KNOWN_OBLIGATIONS = frozenset({"redact_pii", "max_output_chars"})
_NONE: Mapping[str, JsonValue] = MappingProxyType({})


class InvalidResult(ValueError):
    """A policy's value does not follow the result schema."""


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """A parsed policy answer.

    Attributes:
        allow: Whether the call may go on.
        reasons: Why (shown to the caller on a deny, recorded always).
        review: Whether a person must decide before the call completes.
        review_reason: What the reviewer is asked to look at.
        route: A deployment or region the call should go to, if the policy picks one.
        obligations: Conditions the caller must apply (``redact_pii``, ``max_output_chars``).
    """

    allow: bool
    reasons: tuple[str, ...] = ()
    review: bool = False
    review_reason: str = ""
    route: str | None = None
    obligations: Mapping[str, JsonValue] = field(default_factory=lambda: _NONE)

    @property
    def reason(self) -> str:
        """The reasons joined for a message; a fixed text when the policy gave none."""
        return "; ".join(self.reasons) or ("allowed" if self.allow else "denied by policy")

    def as_json(self) -> dict[str, JsonValue]:
        return {
            "allow": self.allow,
            "reasons": list(self.reasons),
            "review": {"reason": self.review_reason} if self.review else False,
            "route": self.route,
            "obligations": dict(self.obligations),
        }


def deny(reason: str) -> PolicyResult:
    """A deny carrying ``reason``: what a missing or invalid result becomes."""
    return PolicyResult(allow=False, reasons=(reason,))


def parse_result(value: JsonValue) -> PolicyResult:
    """Parse a policy value strictly.

    Raises:
        InvalidResult: the value breaks the schema (the caller turns this into a deny).
    """
    if value is None:
        raise InvalidResult("the policy gave no decision (undefined)")
    if not isinstance(value, dict):
        raise InvalidResult(f"the decision must be an object, not {type(value).__name__}")
    unknown = set(value) - _RESULT_KEYS
    if unknown:
        raise InvalidResult(f"unknown decision keys: {', '.join(sorted(unknown))}")
    allow = value.get("allow")
    if not isinstance(allow, bool):
        raise InvalidResult("`allow` must be true or false")
    review, review_reason = _review(value.get("review", False))
    return PolicyResult(
        allow=allow,
        reasons=_reasons(value.get("reasons", [])),
        review=review,
        review_reason=review_reason,
        route=_route(value.get("route")),
        obligations=_obligations(value.get("obligations", {})),
    )


def _reasons(value: JsonValue) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise InvalidResult("`reasons` must be a list of strings")
    # Rego sets come back as sorted arrays; keep them sorted and unique for stable records.
    return tuple(sorted({str(r) for r in value}))


def _review(value: JsonValue) -> tuple[bool, str]:
    if isinstance(value, bool):
        return value, "policy requires review" if value else ""
    if isinstance(value, dict) and set(value) == {"reason"} and isinstance(value["reason"], str):
        return True, value["reason"]
    raise InvalidResult('`review` must be a boolean or {"reason": string}')


def _route(value: JsonValue) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise InvalidResult("`route` must be a non-empty string or null")


def _obligations(value: JsonValue) -> Mapping[str, JsonValue]:
    if not isinstance(value, dict):
        raise InvalidResult("`obligations` must be an object")
    unknown = set(value) - KNOWN_OBLIGATIONS
    if unknown:
        raise InvalidResult(f"unknown obligations: {', '.join(sorted(unknown))}")
    if "redact_pii" in value and not isinstance(value["redact_pii"], bool):
        raise InvalidResult("`redact_pii` must be true or false")
    limit = value.get("max_output_chars")
    if "max_output_chars" in value and (
        isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
    ):
        raise InvalidResult("`max_output_chars` must be a non-negative integer")
    return MappingProxyType(dict(value))


def canonical_json(value: JsonValue) -> str:
    """Sorted keys, no spaces, UTF-8 as is: the same input always gives the same text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def input_digest(value: JsonValue) -> str:
    """SHA-256 (hex) of the canonical JSON of a policy input."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """One evaluation, as it is logged.

    Attributes:
        id: Unique decision id (``pdc_…``).
        bundle_version: The bundle that decided (empty when none was loaded).
        entrypoint: The query evaluated, e.g. ``data.ombud.authz.decision``.
        input_digest: SHA-256 of the canonical input JSON (the input itself is not kept).
        result: The parsed (or fail-closed) result.
        latency_us: Evaluation time in microseconds, parsing included.
        decided_at: When it was decided.
        error: Why the result failed closed, if it did.
    """

    id: str
    bundle_version: str
    entrypoint: str
    input_digest: str
    result: PolicyResult
    latency_us: float
    decided_at: datetime
    error: str | None = None

    @property
    def allowed(self) -> bool:
        return self.result.allow
