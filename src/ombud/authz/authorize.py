"""The authorization entry point and the port its decider implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ombud.core.errors import Forbidden, NotFound
from ombud.identity.principal import Principal


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is about. ``tenant_id`` is set for objects owned by a tenant."""

    kind: str
    id: str | None = None
    tenant_id: str | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    decider: str


class Decider(Protocol):
    """Decides whether ``principal`` may do ``action`` on ``resource`` (tenancy already checked)."""

    name: str

    def decide(
        self, principal: Principal, action: str, resource: Resource, context: Mapping[str, object]
    ) -> Decision: ...


class Authorizer:
    """Holds the decider; :meth:`authorize` is what callers use."""

    def __init__(self, decider: Decider) -> None:
        self._decider = decider

    def authorize(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, object] | None = None,
    ) -> Decision:
        """Allow or raise.

        A tenant-owned object of another tenant raises :class:`NotFound`, exactly as a missing
        one would, so a caller cannot learn that it exists. A refused action raises
        :class:`Forbidden` with the decider's reason.
        """
        if resource.tenant_id is not None and resource.tenant_id != principal.tenant_id:
            raise NotFound(detail=f"no {resource.kind} {resource.id!r}")
        decision = self._decider.decide(principal, action, resource, context or {})
        if not decision.allowed:
            raise Forbidden(detail=decision.reason)
        return decision


def authorize(
    authorizer: Authorizer,
    principal: Principal,
    action: str,
    resource: Resource,
    context: Mapping[str, object] | None = None,
) -> Decision:
    """Functional form of :meth:`Authorizer.authorize`."""
    return authorizer.authorize(principal, action, resource, context)
