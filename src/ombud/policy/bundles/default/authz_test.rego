# Unit tests of authz.rego (run with `ombud policy test`). Inputs are passed to `decide`.
package ombud.authz_test

import rego.v1

import data.ombud.authz

req(roles, action) := {
	"principal": {"id": "p1", "roles": roles, "tenant": "t1", "tier": "standard", "kind": "user", "attributes": {}},
	"action": action,
	"resource": {"kind": "thing", "id": null, "tenant": null, "attributes": {}},
	"context": {},
}

test_analyst_may_predict if authz.decide(req(["analyst"], "model.predict")).allow

test_auditor_may_not_predict if not authz.decide(req(["auditor"], "model.predict")).allow

test_admin_may_rotate_keys if authz.decide(req(["admin"], "crypto.rotate")).allow

test_nobody_else_may_manage_keys if not authz.decide(req(["analyst", "service"], "apikey.manage")).allow

test_unknown_action_is_denied if not authz.decide(req(["analyst"], "model.delete")).allow

test_auditor_may_read_audit if authz.decide(req(["auditor"], "audit.read")).allow

test_compliance_officer_may_read_predictions if authz.decide(req(["compliance_officer"], "prediction.read")).allow

test_export_with_role_and_purpose if {
	inp := object.union(req(["compliance_officer"], "prediction.export"), {"context": {"purpose": "regulator_request"}})
	authz.decide(inp).allow
}

test_export_without_purpose_is_denied if {
	result := authz.decide(req(["compliance_officer"], "audit.export"))
	not result.allow
	count(result.reasons) == 1
}

test_admin_alone_may_not_export if {
	inp := object.union(req(["admin"], "prediction.export"), {"context": {"purpose": "x"}})
	not authz.decide(inp).allow
}

test_premium_model_needs_premium_tenant if {
	inp := object.union(req(["analyst"], "model.predict"), {"resource": {"kind": "model", "attributes": {"tier": "premium"}}})
	not authz.decide(inp).allow
	premium := object.union(inp, {"principal": {"id": "p1", "roles": ["analyst"], "tier": "premium"}})
	authz.decide(premium).allow
}

test_incomplete_input_is_denied if not authz.decide({}).allow

test_admin_is_refused_an_unknown_action if {
	not authz.decide({
		"principal": {"id": "p", "roles": ["admin"], "tenant": "t", "tier": "standard", "kind": "user", "attributes": {}},
		"action": "model.predcit",
		"resource": {"kind": "model", "id": "m", "tenant": null, "attributes": {}},
		"context": {},
	}).allow
}

submitted(roles, submitter) := object.union(req(roles, "registry.approve"), {"resource": {"kind": "model_version", "id": "credit-risk:v2", "tenant": null, "attributes": {"submitted_by": submitter}}})

test_model_approver_may_approve_another_submission if authz.decide(submitted(["model_approver"], "p2")).allow

test_nobody_approves_their_own_submission if {
	result := authz.decide(submitted(["model_approver"], "p1"))
	not result.allow
	count(result.reasons) == 1
	some reason in result.reasons
	contains(reason, "nobody may decide on their own submission")
}

test_admin_does_not_approve_their_own_submission if not authz.decide(submitted(["admin"], "p1")).allow

test_data_scientist_may_write_but_not_approve if {
	authz.decide(req(["data_scientist"], "registry.write")).allow
	not authz.decide(submitted(["data_scientist"], "p2")).allow
}

test_analyst_may_read_the_registry if authz.decide(req(["analyst"], "registry.read")).allow
