"""``authorize``: may this principal perform this route's action on its target?"""

from __future__ import annotations

from ombud.authz import Authorizer, Resource
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome


class AuthorizeCall:
    name = "authorize"

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    async def __call__(self, call: Call) -> Outcome:
        context: dict[str, object] = {"purpose": call.purpose, "subject": call.subject}
        resource = Resource(kind="model", id=call.target)
        self._authorizer.authorize(call.require_principal(), call.route, resource, context)
        return None
