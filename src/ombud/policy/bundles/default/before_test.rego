# Unit tests of before.rego.
package ombud.before_test

import rego.v1

import data.ombud.before

call(tier, model, purpose) := {
	"principal": {"id": "p1", "roles": ["analyst"]},
	"tenant": {"id": "t1", "tier": tier},
	"route": "model.predict",
	"target": model.name,
	"model": model,
	"purpose": purpose,
}

standard_model := {"name": "churn", "version": 1, "tier": "standard", "threshold": 0.5}

premium_model := {"name": "churn-pro", "version": 1, "tier": "premium", "threshold": 0.5}

credit_model := {"name": "credit-risk", "version": 3, "tier": "standard", "threshold": 0.5}

test_standard_model_is_allowed if before.decide(call("standard", standard_model, null)).allow

test_premium_model_for_standard_tenant_is_denied if not before.decide(call("standard", premium_model, null)).allow

test_premium_model_for_premium_tenant_is_allowed if before.decide(call("premium", premium_model, null)).allow

test_credit_model_without_purpose_is_denied if {
	result := before.decide(call("standard", credit_model, null))
	not result.allow
	count(result.reasons) == 1
}

test_credit_model_with_another_purpose_is_denied if not before.decide(call("standard", credit_model, "marketing")).allow

test_credit_model_with_its_purpose_is_allowed if before.decide(call("standard", credit_model, "credit_scoring")).allow
