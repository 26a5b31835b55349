"""The authenticated caller, as every later stage sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

_NO_ATTRIBUTES: Mapping[str, object] = MappingProxyType({})


def _no_attributes() -> Mapping[str, object]:
    return _NO_ATTRIBUTES


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. The tenant always comes from here, never from a request header.

    ``attributes`` carries what the credential said beyond identity, tenant and roles (for a
    JWT, its other claims), for attribute-based decisions; API keys carry none.
    """

    id: str
    name: str
    kind: PrincipalKind
    roles: frozenset[str]
    tenant_id: str
    tenant_slug: str
    tenant_tier: str
    credential_id: str
    # Left out of the hash: claim values may be lists or objects, which do not hash.
    attributes: Mapping[str, object] = field(default_factory=_no_attributes, hash=False)

    def has_role(self, role: str) -> bool:
        return role in self.roles
