"""Authorization: the one entry point, ``authorize(principal, action, resource, context)``.

Every router, stage and CLI command that does something sensitive calls :func:`authorize`. The
decider behind it is role-based today; a policy engine replaces the decider, not the call sites.
"""

from ombud.authz.authorize import Authorizer, Decision, Resource, authorize
from ombud.authz.rbac import RoleBasedDecider

__all__ = ["Authorizer", "Decision", "Resource", "RoleBasedDecider", "authorize"]
