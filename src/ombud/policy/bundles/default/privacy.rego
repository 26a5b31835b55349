# The data subject's AI-usage controls, after the model call (part of data.ombud.after).
#
# Input (from the stage "privacy.preferences", through the before input):
#   "preferences": {"automated_decision_opt_out": bool, "personalization_opt_out": bool}
#   "personalized": false when the subject opted out of personalization
#   "model": {..., "positive_decision"}: the model's adverse decision (e.g. "decline")
#
# A subject who objected to decisions based solely on automated processing (GDPR Art. 22) never
# receives a model's adverse decision as a final automated answer: it goes to human review, for
# every model, not only those in data.ombud.config.review.credit_models.
package ombud.after

import rego.v1

opt_out_reason := "the subject opted out of solely automated decisions"

subject_opted_out(inp) if inp.preferences.automated_decision_opt_out == true

adverse_for_model(inp) if {
	is_string(inp.model.positive_decision)
	inp.output.decision == inp.model.positive_decision
}

automated_decision_reasons(inp) := {opt_out_reason |
	subject_opted_out(inp)
	adverse_for_model(inp)
}
