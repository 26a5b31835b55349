# Before the model call (entrypoint data.ombud.before.decision; stage "policy.before").
#
# Input: {"principal": {...}, "tenant": {"id", "tier"}, "route", "target",
#         "model": {"name", "version", "tier", "threshold"} | null,
#         "purpose", "subject", "feature"}
#
#   1. premium models only for premium-tier tenants (the same rule as authz, for the stage);
#   2. models that need a declared purpose (data.ombud.config.purpose_required, e.g.
#      credit-risk → credit_scoring) are refused without exactly that purpose
#      (the X-Ombud-Purpose header).
package ombud.before

import rego.v1

cfg := data.ombud.config

decision := decide(input)

decide(inp) := {"allow": true, "reasons": ["allowed"]} if {
	count(deny_reasons(inp)) == 0
} else := {"allow": false, "reasons": sort(deny_reasons(inp))} if {
	count(deny_reasons(inp)) > 0
} else := {"allow": false, "reasons": ["the policy input is incomplete"]}

deny_reasons(inp) := tier_reasons(inp) | purpose_reasons(inp)

# 1. Premium models.
tier_reasons(inp) := {"premium models are for premium-tier tenants" |
	inp.model.tier == cfg.premium_tier
	not inp.tenant.tier == cfg.premium_tier
}

# 2. Declared purpose. The model is named by the request target and, once resolved, by the model.
model_names(inp) := {name | name := inp.target; is_string(name)} | {name |
	name := inp.model.name
	is_string(name)
}

purpose_reasons(inp) := {sprintf("model %s needs the declared purpose %s (X-Ombud-Purpose)", [name, wanted]) |
	some name in model_names(inp)
	wanted := cfg.purpose_required[name]
	not inp.purpose == wanted
}
