# After the model call (entrypoint data.ombud.after.decision; stage "policy.after").
#
# Input: the before input plus "output" (for own models: {"score", "decision", "threshold"}) and
# "pii": the personal-data categories found in free-text outputs (e.g. ["EMAIL", "CARD"]).
#
#   1. free text: a blocked category (data.ombud.config.blocked_pii_categories, e.g. CARD)
#      denies the answer; any other personal data adds the obligation `redact_pii`;
#   2. credit decisions (models in data.ombud.config.review.credit_models) go to human review
#      when the score is within `margin` of the threshold or the decision is adverse (decline);
#   3. any model's adverse decision goes to human review when the subject opted out of solely
#      automated decisions (privacy.rego).
package ombud.after

import rego.v1

cfg := data.ombud.config

decision := decide(input)

decide(inp) := {"allow": false, "reasons": sort(blocked(inp))} if {
	count(blocked(inp)) > 0
} else := {
	"allow": true,
	"reasons": sort(review_reasons(inp)),
	"review": {"reason": concat("; ", sort(review_reasons(inp)))},
	"obligations": obligations(inp),
} if {
	count(review_reasons(inp)) > 0
} else := {"allow": true, "reasons": ["allowed"], "obligations": obligations(inp)} if {
	count(review_reasons(inp)) == 0
} else := {"allow": false, "reasons": ["the policy input is incomplete"]}

# 1. Personal data in free text.
pii(inp) := {category | some category in inp.pii}

blocked(inp) := {sprintf("the output contains blocked personal data: %s", [category]) |
	some category in pii(inp)
	category in cfg.blocked_pii_categories
}

obligations(inp) := {"redact_pii": true} if {
	count(pii(inp)) > 0
} else := {}

# 2. Credit decisions.
credit_model(inp) if inp.model.name in cfg.review.credit_models

threshold(inp) := object.get(inp.output, "threshold", inp.model.threshold)

review_reasons(inp) := ((near | adverse) | malformed) | automated_decision_reasons(inp) if {
	near := {sprintf("score %v is within %v of the threshold %v", [inp.output.score, cfg.review.margin, threshold(inp)]) |
		credit_model(inp)
		abs(inp.output.score - threshold(inp)) <= cfg.review.margin
	}
	adverse := {sprintf("adverse decision: %s", [inp.output.decision]) |
		credit_model(inp)
		inp.output.decision in cfg.review.adverse_decisions
	}

	# A credit answer without a numeric score cannot be judged by the rules above: a human must.
	malformed := {"the model output has no numeric score" |
		credit_model(inp)
		not is_number(inp.output.score)
	}
}
