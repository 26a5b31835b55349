# Unit tests of privacy.rego: the subject's objection to solely automated decisions.
package ombud.privacy_test

import rego.v1

import data.ombud.after

churn := {"name": "churn", "version": 2, "tier": "standard", "threshold": 0.5, "positive_decision": "churn"}

credit := {"name": "credit-risk", "version": 3, "tier": "standard", "threshold": 0.5, "positive_decision": "decline"}

prefs(automated) := {"automated_decision_opt_out": automated, "personalization_opt_out": false}

answered(model, score, decision, automated) := {
	"model": model,
	"output": {"score": score, "decision": decision, "threshold": 0.5},
	"pii": [],
	"preferences": prefs(automated),
	"personalized": true,
}

test_an_opted_out_subjects_adverse_decision_goes_to_review if {
	result := after.decide(answered(churn, 0.9, "churn", true))
	result.allow
	result.review.reason == "the subject opted out of solely automated decisions"
}

test_the_same_decision_without_the_opt_out_is_final if {
	result := after.decide(answered(churn, 0.9, "churn", false))
	result.allow
	not result.review
}

test_a_favourable_decision_stays_automated_after_an_opt_out if {
	result := after.decide(answered(churn, 0.1, "stay", true))
	result.allow
	not result.review
}

test_a_credit_decline_names_both_reasons if {
	result := after.decide(answered(credit, 0.95, "decline", true))
	result.review
	"the subject opted out of solely automated decisions" in result.reasons
	count(result.reasons) == 2
}

test_no_preferences_in_the_input_change_nothing if {
	inp := object.remove(answered(churn, 0.9, "churn", true), ["preferences"])
	not after.decide(inp).review
}

test_a_model_without_a_positive_decision_is_not_judged if {
	model := object.remove(churn, ["positive_decision"])
	not after.decide(answered(model, 0.9, "churn", true)).review
}

test_llm_answers_have_no_model_decision if {
	inp := {"model": null, "target": "local", "output": {}, "pii": [], "preferences": prefs(true), "personalized": false}
	result := after.decide(inp)
	result.allow
	not result.review
}
