"""Problem types (RFC 9457): every refusal ombud makes is one of these, with a stable ``type`` URI.

Services raise a :class:`Problem`; the HTTP edge renders it as ``application/problem+json`` and
the audit trail records its ``kind``. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

PROBLEM_BASE = "urn:ombud:problem:"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field of a request, in the shape FastAPI/Pydantic users know."""

    loc: tuple[str | int, ...]
    msg: str
    type: str

    def as_dict(self) -> dict[str, object]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


@dataclass(eq=False)
class Problem(Exception):
    """Base of all client-visible failures. Subclasses fix ``kind``, ``status`` and ``title``."""

    detail: str = ""
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    audited: bool = field(default=False, init=False)
    """Set once the refusal is in the audit trail, so the HTTP edge does not record it twice."""

    kind: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __post_init__(self) -> None:
        super().__init__(self.detail or self.title)

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.kind


class BadRequest(Problem):
    kind = "bad_request"
    status = 400
    title = "Malformed request"


class GuardBlocked(Problem):
    kind = "guard_blocked"
    status = 400
    title = "Blocked by a content guard"


class Unauthenticated(Problem):
    kind = "unauthenticated"
    status = 401
    title = "Missing or invalid credentials"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.headers = {"WWW-Authenticate": 'Bearer realm="ombud"', **self.headers}


class Forbidden(Problem):
    kind = "forbidden"
    status = 403
    title = "Not allowed"


class PolicyDenied(Forbidden):
    kind = "policy_denied"
    title = "Denied by policy"


class FeatureDisabled(Forbidden):
    """A feature flag (``ai.<route>`` or ``ai.<route>.<target>``) is off for this caller."""

    kind = "feature_disabled"
    title = "Feature turned off"


class PurposeRequired(Forbidden):
    """Subject data was asked for without a declared purpose (``X-Ombud-Purpose``)."""

    kind = "purpose_required"
    title = "A purpose must be declared"


class PurposeNotAllowed(Forbidden):
    """The declared purpose may not read one of the data categories asked for."""

    kind = "purpose_not_allowed"
    title = "Not allowed for this purpose"


class ConsentRequired(Forbidden):
    """The purpose rests on consent and the subject's current consent is not granted."""

    kind = "consent_required"
    title = "The subject has not consented to this purpose"


class RegionNotAllowed(Forbidden):
    """No version the call could be served by may serve the subject's region (residency)."""

    kind = "region_not_allowed"
    title = "Not served in the subject's region"


class NotFound(Problem):
    kind = "not_found"
    status = 404
    title = "Resource not found"


class ModelNotFound(NotFound):
    kind = "model_not_found"
    title = "Model not found"


class InvalidRequest(Problem):
    kind = "validation_error"
    status = 422
    title = "Request validation failed"


class UnknownPurpose(InvalidRequest):
    """The declared purpose is not in the purposes catalog."""

    kind = "unknown_purpose"
    title = "Unknown purpose"


class Conflict(Problem):
    kind = "conflict"
    status = 409
    title = "Conflicts with the current state"


class PromotionRefused(Conflict):
    """A version may not be approved: it failed the promotion gate, or there is no gate to pass
    (the model has no golden dataset)."""

    kind = "promotion_refused"
    title = "Refused by the promotion gate"


class RequestTimeout(Problem):
    kind = "request_timeout"
    status = 408
    title = "The request body came too slowly"


class OutboundRefused(Problem):
    kind = "outbound_refused"
    status = 422
    title = "Outbound destination not allowed"


class MethodNotAllowed(Problem):
    kind = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class SubjectErased(Problem):
    """The data belonged to a subject who was erased: its key is destroyed, for good."""

    kind = "subject_erased"
    status = 410
    title = "Erased with its subject"


class PayloadTooLarge(Problem):
    kind = "payload_too_large"
    status = 413
    title = "Request body too large"


class TooManyRequests(Problem):
    kind = "rate_limited"
    status = 429
    title = "Too many requests"


class UpstreamFailed(Problem):
    """Every attempt at the model's providers failed (after retries and fallbacks)."""

    kind = "upstream_error"
    status = 502
    title = "Upstream provider failed"


class ModelFailed(Problem):
    """The model raised on input that passed validation: a fault of the model, not the caller."""

    kind = "model_error"
    status = 500
    title = "The model failed"


class GatewayTimeout(Problem):
    kind = "timeout"
    status = 504
    title = "The call took too long"


class ServiceUnavailable(Problem):
    kind = "service_unavailable"
    status = 503
    title = "Service unavailable"


class StoreUnavailable(ServiceUnavailable):
    """A regional store could not be asked where a subject lives (residency)."""

    kind = "store_unavailable"
    title = "A data store is unavailable"


class ModelUnavailable(ServiceUnavailable):
    kind = "model_unavailable"
    title = "Model cannot be served"


class Overloaded(ServiceUnavailable):
    kind = "overloaded"
    title = "Too many calls in flight"


class RateLimitUnavailable(ServiceUnavailable):
    kind = "rate_limit_unavailable"
    title = "Rate limits cannot be checked"


class RecordsUnavailable(ServiceUnavailable):
    kind = "records_unavailable"
    title = "Records cannot be written"
