"""Opening a review for a call in the request path (the policy stages' ``ReviewOpener``)."""

from __future__ import annotations

from ombud.gateway.call import Call
from ombud.review.opener import ReviewOpener
from ombud.serving.schemas import PredictionRead


class CallReviewOpener:
    """Turns a call that policy sent to review into a review item: the model's recommendation,
    the validated (pseudonymous) inputs and the reason, linked to the prediction and request."""

    def __init__(self, opener: ReviewOpener) -> None:
        self._opener = opener

    async def open(self, call: Call, reason: str) -> str:
        principal = call.require_principal()
        result = call.result
        if isinstance(result, PredictionRead):
            resource = f"prediction:{result.prediction_id}"
        elif call.model_version is not None:
            resource = f"{call.model_version.model}@{call.model_version.version}"
        else:
            resource = call.route
        recommendation = {k: v for k, v in call.output.items() if k != "latency_ms"}
        return await self._opener.open_for_call(
            tenant_id=principal.tenant_id,
            requested_by=principal.id,
            subject=call.subject,
            resource=resource,
            recommendation=recommendation,
            inputs=call.payload,
            reason=reason,
            request_id=call.request_id,
        )
