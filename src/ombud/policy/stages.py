"""The policy stages of the request path: ``policy.before`` and ``policy.after``.

Both evaluate their entrypoint on what the call knows so far and map the result the same way:
a deny raises :class:`~ombud.core.errors.PolicyDenied` (403); a review opens one through the
injected :class:`ReviewOpener` and ends the call as pending (202); a route sets
``call.route_hint``; obligations are kept on ``call.obligations`` — and the after stage keeps
them at once on the model's free-text output (``redact_pii``, ``max_output_chars``).
"""

from __future__ import annotations

from typing import Protocol

from ombud.core.errors import PolicyDenied
from ombud.gateway.call import Call, Finding
from ombud.gateway.outcomes import Outcome, SendToReview
from ombud.guards.pii import PiiRedactor, cap_text, default_redactor
from ombud.policy.decision import PolicyResult
from ombud.policy.engine import PolicyEngine
from ombud.policy.inputs import after_input, before_input

BEFORE_ENTRYPOINT = "data.ombud.before.decision"
AFTER_ENTRYPOINT = "data.ombud.after.decision"


class ReviewOpener(Protocol):
    """Opens a human review for a call; returns the review id."""

    async def open(self, call: Call, reason: str) -> str: ...


async def _apply(stage: str, call: Call, result: PolicyResult, reviews: ReviewOpener) -> Outcome:
    """Map a policy result onto the call: raise, send to review, or carry on."""
    if not result.allow:
        call.findings.append(Finding(stage, "policy_denied", result.reason))
        raise PolicyDenied(detail=result.reason)
    if result.route is not None:
        call.route_hint = result.route
    call.obligations.update(result.obligations)
    if result.review:
        review_id = await reviews.open(call, result.review_reason)
        call.findings.append(Finding(stage, "policy_review", result.review_reason))
        return SendToReview(review_id=review_id, reason=result.review_reason)
    return None


class PolicyBefore:
    """``policy.before``: decides before the model is called."""

    name = "policy.before"

    def __init__(
        self, engine: PolicyEngine, reviews: ReviewOpener, entrypoint: str = BEFORE_ENTRYPOINT
    ) -> None:
        self._engine = engine
        self._reviews = reviews
        self._entrypoint = entrypoint

    async def __call__(self, call: Call) -> Outcome:
        # The decision waits in the engine's buffer; the server flushes it to the decision log
        # within a second, so a call never waits for a commit of its policy decisions.
        decision = self._engine.evaluate(self._entrypoint, before_input(call))
        return await _apply(self.name, call, decision.result, self._reviews)


class PolicyAfter:
    """``policy.after``: decides on the model's output, then keeps the output obligations."""

    name = "policy.after"

    def __init__(
        self,
        engine: PolicyEngine,
        reviews: ReviewOpener,
        redactor: PiiRedactor | None = None,
        entrypoint: str = AFTER_ENTRYPOINT,
    ) -> None:
        self._engine = engine
        self._reviews = reviews
        self._redactor = redactor or default_redactor()
        self._entrypoint = entrypoint

    async def __call__(self, call: Call) -> Outcome:
        value = after_input(call, self._redactor)
        decision = self._engine.evaluate(self._entrypoint, value)
        outcome = await _apply(self.name, call, decision.result, self._reviews)
        self._keep_obligations(call)
        return outcome

    def _keep_obligations(self, call: Call) -> None:
        if call.obligations.get("redact_pii") is True:
            call.output_texts = [self._redactor.redact(text) for text in call.output_texts]
        limit = call.obligations.get("max_output_chars")
        if isinstance(limit, int) and not isinstance(limit, bool):
            call.output_texts = [cap_text(text, limit)[0] for text in call.output_texts]
