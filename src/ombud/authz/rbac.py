"""Role-based decisions: which roles may perform which actions."""

from __future__ import annotations

from collections.abc import Mapping

from ombud.authz.authorize import Decision, Resource
from ombud.identity.principal import Principal

ADMIN = "admin"

# Action → roles allowed to perform it. ``admin`` may do everything.
DEFAULT_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "model.predict": frozenset({"analyst", "service", "reviewer"}),
    "llm.chat": frozenset({"analyst", "service", "reviewer"}),
    "llm.messages": frozenset({"analyst", "service", "reviewer"}),
    "llm.embeddings": frozenset({"analyst", "service", "reviewer"}),
    "prediction.read": frozenset({"analyst", "service", "reviewer", "compliance_officer"}),
    "prediction.export": frozenset({"compliance_officer"}),
    "apikey.manage": frozenset(),
    "crypto.rotate": frozenset(),
    "audit.read": frozenset({"auditor", "compliance_officer", "platform_auditor"}),
    "audit.export": frozenset({"compliance_officer"}),
    "review.read": frozenset({"reviewer", "compliance_officer", "analyst", "service"}),
    "review.decide": frozenset({"reviewer"}),
    "review.appeal": frozenset({"analyst", "service"}),
    "review.webhook": frozenset(),
    "usage.read": frozenset({"analyst", "compliance_officer", "service"}),
    "budget.manage": frozenset(),
    "registry.read": frozenset(
        {"analyst", "compliance_officer", "data_scientist", "model_approver", "reviewer", "service"}
    ),
    "registry.write": frozenset({"data_scientist"}),
    # The bundle adds what roles cannot say: nobody decides on their own submission.
    "registry.approve": frozenset({"model_approver"}),
    "artifact.write": frozenset({"data_scientist"}),
    # Platform roles only: a deployment's numbers count every tenant's traffic.
    "deployment.read": frozenset(
        {"compliance_officer", "data_scientist", "ml_engineer", "model_approver"}
    ),
    "deployment.manage": frozenset({"ml_engineer", "model_approver"}),
    "prediction.outcome": frozenset({"analyst", "service"}),
    "prediction.explain": frozenset({"analyst", "compliance_officer", "reviewer", "service"}),
    "prediction.replay": frozenset({"compliance_officer"}),
    "flag.read": frozenset({"ml_engineer", "model_approver", "service"}),
    "flag.manage": frozenset({"ml_engineer"}),
    "subject.manage": frozenset({"service"}),
    "subject.read": frozenset({"compliance_officer", "service"}),
    "consent.read": frozenset({"analyst", "compliance_officer", "service"}),
    "consent.manage": frozenset({"service"}),
    "subject.data.read": frozenset({"analyst", "compliance_officer", "service"}),
    "event.ingest": frozenset({"service"}),
    "feature.read": frozenset({"analyst", "data_scientist", "service"}),
    "feature.historical": frozenset({"data_scientist"}),
    "compliance.read": frozenset({"compliance_officer"}),
    "subject.export": frozenset({"compliance_officer", "service"}),
    "subject.erase": frozenset({"compliance_officer", "service"}),
    "retention.run": frozenset({"compliance_officer"}),
}


class RoleBasedDecider:
    """Allows an action when the principal holds one of the roles granted it."""

    name = "rbac"

    def __init__(self, permissions: Mapping[str, frozenset[str]] = DEFAULT_PERMISSIONS) -> None:
        self._permissions = permissions

    def decide(
        self, principal: Principal, action: str, resource: Resource, context: Mapping[str, object]
    ) -> Decision:
        granted = self._permissions.get(action)
        if granted is None:
            # Unknown even to admin: a misspelt action must never pass.
            return Decision(False, f"unknown action {action!r}", self.name)
        if ADMIN in principal.roles:
            return Decision(True, "admin", self.name)
        held = granted & principal.roles
        if held:
            return Decision(True, f"role {sorted(held)[0]}", self.name)
        return Decision(
            False,
            f"{action} needs one of the roles: {', '.join(sorted(granted)) or ADMIN}",
            self.name,
        )
