"""The inputs policies see, built from ombud's own types (JSON values only)."""

from __future__ import annotations

from collections.abc import Mapping

from ombud.authz.authorize import Resource
from ombud.gateway.call import Call
from ombud.guards.pii import PiiRedactor
from ombud.identity.principal import Principal
from ombud.policy._rego import JsonValue
from ombud.policy.decision import canonical_json
from ombud.privacy.stage import (
    AUTOMATED_DECISION_OPT_OUT,
    PERSONALIZATION_OPT_OUT,
    opted_out,
)


def json_value(value: object) -> JsonValue:
    """``value`` as plain JSON values; sets become sorted lists, other objects strings."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((json_value(v) for v in value), key=canonical_json)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def principal_input(principal: Principal) -> dict[str, JsonValue]:
    roles: list[JsonValue] = [*sorted(principal.roles)]
    return {
        "id": principal.id,
        "roles": roles,
        "tenant": principal.tenant_id,
        "tier": principal.tenant_tier,
        "kind": str(principal.kind),
        "attributes": json_value(principal.attributes),
    }


def authz_input(
    principal: Principal, action: str, resource: Resource, context: Mapping[str, object]
) -> dict[str, JsonValue]:
    """Input of ``data.ombud.authz.decision``."""
    return {
        "principal": principal_input(principal),
        "action": action,
        "resource": {
            "kind": resource.kind,
            "id": resource.id,
            "tenant": resource.tenant_id,
            "attributes": json_value(resource.attributes),
        },
        "context": json_value(context),
    }


def before_input(call: Call) -> dict[str, JsonValue]:
    """Input of ``data.ombud.before.decision``: who calls what, for which purpose."""
    principal = call.require_principal()
    model: JsonValue = None
    if call.model_version is not None:
        version = call.model_version
        model = {
            "name": version.model,
            "version": version.version,
            "tier": version.serving.tier,
            "threshold": version.serving.threshold,
            "positive_decision": version.serving.positive_decision,
        }
    return {
        "principal": principal_input(principal),
        "tenant": {"id": principal.tenant_id, "tier": principal.tenant_tier},
        "route": call.route,
        "target": call.target,
        "model": model,
        "purpose": call.purpose,
        "subject": call.subject,
        "subject_region": call.subject_region,
        "feature": call.feature,
        **preferences_input(call),
    }


def preferences_input(call: Call) -> dict[str, JsonValue]:
    """The subject's AI-usage opt-outs as the ``privacy.preferences`` stage found them (both
    ``false`` when the call names no registered subject), and whether the call may be
    personalized."""
    automated = opted_out(call, AUTOMATED_DECISION_OPT_OUT)
    personalization = opted_out(call, PERSONALIZATION_OPT_OUT)
    return {
        "preferences": {
            AUTOMATED_DECISION_OPT_OUT: automated,
            PERSONALIZATION_OPT_OUT: personalization,
        },
        "personalized": not personalization,
    }


def after_input(call: Call, redactor: PiiRedactor) -> dict[str, JsonValue]:
    """Input of ``data.ombud.after.decision``: the before input, the output, PII categories."""
    categories = {f.category for text in call.output_texts for f in redactor.detect(text)}
    value = before_input(call)
    value["output"] = json_value(call.output)
    value["pii"] = [*sorted(categories)]
    return value
