"""``RegoDecider``: the authorization ``Decider`` answered by the policy bundle."""

from __future__ import annotations

from collections.abc import Mapping

from ombud.authz.authorize import Decision, Resource
from ombud.identity.principal import Principal
from ombud.policy.engine import PolicyEngine
from ombud.policy.inputs import authz_input

AUTHZ_ENTRYPOINT = "data.ombud.authz.decision"


class RegoDecider:
    """Decides through ``data.ombud.authz.decision``; a drop-in for ``RoleBasedDecider``.

    Put it behind :class:`~ombud.authz.Authorizer`, which still checks tenancy first.
    """

    name = "rego"

    def __init__(self, engine: PolicyEngine, entrypoint: str = AUTHZ_ENTRYPOINT) -> None:
        self._engine = engine
        self._entrypoint = entrypoint

    def decide(
        self, principal: Principal, action: str, resource: Resource, context: Mapping[str, object]
    ) -> Decision:
        value = authz_input(principal, action, resource, context)
        result = self._engine.evaluate(self._entrypoint, value).result
        # Review and obligations have no meaning for a yes/no authorization: only allow counts.
        return Decision(result.allow and not result.review, result.reason, self.name)
