# Unit tests of after.rego.
package ombud.after_test

import rego.v1

import data.ombud.after

credit := {"name": "credit-risk", "version": 3, "tier": "standard", "threshold": 0.5}

scored(score, decision) := {
	"model": credit,
	"output": {"score": score, "decision": decision, "threshold": 0.5},
	"pii": [],
}

text(categories) := {"model": null, "target": "local", "output": {}, "pii": categories}

test_clear_approval_passes if {
	result := after.decide(scored(0.1, "approve"))
	result.allow
	not result.review
}

test_score_near_threshold_goes_to_review if {
	result := after.decide(scored(0.45, "approve"))
	result.allow
	result.review.reason != ""
}

test_decline_goes_to_review if after.decide(scored(0.95, "decline")).review

test_other_models_are_not_reviewed if {
	inp := object.union(scored(0.5, "decline"), {"model": {"name": "churn", "threshold": 0.5}})
	not after.decide(inp).review
}

test_clean_text_has_no_obligation if {
	result := after.decide(text([]))
	result.allow
	result.obligations == {}
}

test_text_with_pii_must_be_redacted if after.decide(text(["EMAIL"])).obligations.redact_pii

test_text_with_card_number_is_denied if not after.decide(text(["CARD", "EMAIL"])).allow

test_a_score_that_is_not_a_number_goes_to_review if after.decide(scored("0.55", "approve")).review

test_a_missing_score_goes_to_review if after.decide(scored(null, "approve")).review
