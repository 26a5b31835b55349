"""``feature.flag``: is this AI feature switched on for this caller?

The stage evaluates the boolean flag ``ai.<route>`` (``ai.model.predict``, ``ai.llm.chat``) and,
when the call names a target, ``ai.<route>.<target>`` (``ai.model.predict.credit-risk``,
``ai.llm.chat.gpt-4o``), through the OpenFeature client. A flag that does not exist leaves the
feature on; one that serves ``false`` refuses the call with 403 ``feature_disabled``, which the
chain counts and audits like every other denial. Evaluation reads the provider's in-memory
snapshot: no database query per call.
"""

from __future__ import annotations

import re

from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext, EvaluationContextAttribute

from ombud.core.errors import FeatureDisabled
from ombud.flags.provider import PRINCIPAL, TENANT
from ombud.flags.schemas import GATE_PREFIX
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome

_UNSAFE = re.compile(r"[^a-z0-9_.\-]")


def gate_keys(call: Call) -> list[str]:
    """The flags that gate ``call``, broadest first."""
    keys = [f"{GATE_PREFIX}{call.route}"]
    if call.target:
        keys.append(f"{GATE_PREFIX}{call.route}.{flag_safe(call.target)}")
    return keys


def flag_safe(target: str) -> str:
    """A target as it appears in a flag key: lower case, and every character a flag key may
    not hold (``/``, ``:``, spaces...) replaced by ``-``, so ``meta-llama/Llama-3:8b`` is gated
    by ``ai.llm.chat.meta-llama-llama-3-8b``."""
    return _UNSAFE.sub("-", target.lower())


def evaluation_context(call: Call) -> EvaluationContext:
    """Tenant, subject, principal and target; sticky on the subject, else the principal."""
    principal = call.require_principal()
    attributes: dict[str, EvaluationContextAttribute] = {
        TENANT: principal.tenant_slug,
        "tenant_id": principal.tenant_id,
        PRINCIPAL: principal.id,
        "route": call.route,
    }
    if call.subject:
        attributes["subject"] = call.subject
    if call.target:
        attributes["target"] = call.target
    return EvaluationContext(targeting_key=call.subject or principal.id, attributes=attributes)


class FeatureGate:
    name = "feature.flag"

    def __init__(self, flags: OpenFeatureClient) -> None:
        self._flags = flags

    async def __call__(self, call: Call) -> Outcome:
        context = evaluation_context(call)
        for key in gate_keys(call):
            if not await self._flags.get_boolean_value_async(key, True, context):
                raise FeatureDisabled(detail=f"{key} is turned off for this caller")
        return None
