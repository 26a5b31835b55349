# Authorization: who may do what (entrypoint data.ombud.authz.decision).
#
# Input: {"principal": {"id", "roles", "tenant", "tier", "kind", "attributes"},
#         "action": "model.predict", "resource": {"kind", "id", "tenant", "attributes"},
#         "context": {"purpose": ...}}
#
# Three checks, each a set of deny reasons; the call is allowed only when all three are empty:
#   1. roles: the action is known (even to admin) and the principal holds a role granted it
#      (admin holds all);
#   2. bulk exports: only the compliance officer role, and only with a declared purpose
#      (admin alone is not enough: an export moves data in bulk, so it needs that role);
#   3. premium models: `model.predict` on a premium-tier model needs a premium-tier tenant;
#   4. separation of duties: nobody, admin included, decides on a model version they submitted
#      themselves (the resource's `submitted_by` attribute is the principal's id).
# Permissions and the export rule live in data.json (data.ombud.config).
package ombud.authz

import rego.v1

cfg := data.ombud.config

decision := decide(input)

# The decision for an explicit input; the unit tests call it directly.
# Any part of the input that is missing leaves the checks undefined: the last branch denies.
decide(inp) := {"allow": true, "reasons": [grant_reason(inp)]} if {
	count(deny_reasons(inp)) == 0
} else := {"allow": false, "reasons": sort(deny_reasons(inp))} if {
	count(deny_reasons(inp)) > 0
} else := {"allow": false, "reasons": ["the authorization input is incomplete"]}

deny_reasons(inp) := ((role_reasons(inp) | export_reasons(inp)) | tier_reasons(inp)) | duty_reasons(inp)

is_admin(inp) if cfg.admin_role in inp.principal.roles

# 1. Roles.
role_reasons(inp) := {sprintf("unknown action '%s'", [inp.action])} if {
	not cfg.permissions[inp.action]
} else := set() if {
	is_admin(inp)
} else := set() if {
	count(held_roles(inp)) > 0
} else := {concat("", [inp.action, " needs one of the roles: ", needed_roles(inp.action)])}

held_roles(inp) := {role |
	some role in inp.principal.roles
	role in cfg.permissions[inp.action]
}

# Built with concat, not sprintf: rego-cpp 1.5.2 quotes a concat result passed to sprintf's %s.
needed_roles(action) := concat(", ", sort(cfg.permissions[action])) if {
	count(cfg.permissions[action]) > 0
} else := cfg.admin_role

grant_reason(inp) := "admin" if {
	is_admin(inp)
} else := sprintf("role %s", [min(held_roles(inp))])

# 2. Bulk exports.
export_reasons(inp) := missing_role | missing_purpose if {
	missing_role := {sprintf("%s is a bulk export: only the %s role may do it", [inp.action, cfg.bulk_export.role]) |
		inp.action in cfg.bulk_export.actions
		not cfg.bulk_export.role in inp.principal.roles
	}
	missing_purpose := {sprintf("%s needs a declared purpose", [inp.action]) |
		inp.action in cfg.bulk_export.actions
		not has_purpose(inp)
	}
}

has_purpose(inp) if {
	is_string(inp.context.purpose)
	inp.context.purpose != ""
}

# 3. Premium models.
tier_reasons(inp) := {"premium models are for premium-tier tenants" |
	inp.action == "model.predict"
	inp.resource.attributes.tier == cfg.premium_tier
	not inp.principal.tier == cfg.premium_tier
}

# 4. Separation of duties.
duty_reasons(inp) := {concat("", [inp.action, ": nobody may decide on their own submission"]) |
	inp.action in cfg.separation_of_duties.actions
	inp.resource.attributes.submitted_by == inp.principal.id
}
