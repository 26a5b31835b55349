"""The authenticated caller, as every later stage sees it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. The tenant always comes from here, never from a request header."""

    id: str
    name: str
    kind: PrincipalKind
    roles: frozenset[str]
    tenant_id: str
    tenant_slug: str
    tenant_tier: str
    credential_id: str

    def has_role(self, role: str) -> bool:
        return role in self.roles
