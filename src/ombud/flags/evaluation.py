"""What a flag serves to one caller: the rules, with no I/O.

The order is fixed and small enough to read at a glance:

1. a per-tenant override for the caller's tenant wins (reason ``TARGETING_MATCH``);
2. a flag that is off serves ``False`` (boolean flags) or the caller's own default (others),
   reason ``DISABLED`` either way;
3. a percentage rollout puts each targeting key in a bucket from 0 to 100, the same bucket
   every time for the same flag and key (reason ``SPLIT``);
4. otherwise the flag's default: ``True`` for a boolean flag that is on, else the default
   variant (reason ``STATIC`` when the flag has no targeting at all, ``DEFAULT`` when it has
   some that did not apply to this caller).

The bucket is a hash of the flag key and the targeting key, so one caller's buckets for two
flags are independent, and raising a rollout from 10 % to 20 % keeps the first 10 % on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from openfeature.flag_evaluation import Reason

ON = "on"
OFF = "off"
BOOLEAN_VARIANTS: Mapping[str, bool] = {ON: True, OFF: False}
"""A boolean flag's implicit variants."""

VariantValue = str | int | float | dict[str, Any] | list[Any]


class FlagType(StrEnum):
    BOOLEAN = "boolean"
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    OBJECT = "object"


@dataclass(frozen=True, slots=True)
class FlagDefinition:
    """One flag as stored; the snapshot and the dry run evaluate these."""

    key: str
    type: FlagType
    enabled: bool
    variants: Mapping[str, VariantValue] = field(default_factory=dict)
    default_variant: str | None = None
    tenant_overrides: Mapping[str, bool | str] = field(default_factory=dict)
    """Tenant id → ``True``/``False`` for boolean flags, a variant name for the others."""
    rollout_percent: float | None = None
    rollout_variant: str | None = None
    """The variant the rollout's share gets (non-boolean flags; boolean ones get ``True``)."""

    @property
    def has_targeting(self) -> bool:
        return bool(self.tenant_overrides) or self.rollout_percent is not None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What one evaluation served. ``value`` is ``None`` when the caller's default applies."""

    value: bool | VariantValue | None
    variant: str | None
    reason: Reason


def bucket(flag_key: str, targeting_key: str) -> float:
    """A stable number in ``[0, 100)`` for this flag and targeting key."""
    digest = hashlib.sha256(f"{flag_key}\x00{targeting_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def evaluate(flag: FlagDefinition, tenant: str | None, targeting_key: str | None) -> Resolution:
    """Apply the rules in the module's order to one caller."""
    if tenant is not None and tenant in flag.tenant_overrides:
        return _serve(flag, flag.tenant_overrides[tenant], Reason.TARGETING_MATCH)
    untargeted = Reason.DEFAULT if flag.has_targeting else Reason.STATIC
    if not flag.enabled:
        if flag.type is FlagType.BOOLEAN:
            return Resolution(False, OFF, Reason.DISABLED)
        return Resolution(None, None, Reason.DISABLED)
    if flag.rollout_percent is not None and targeting_key:
        inside = bucket(flag.key, targeting_key) < flag.rollout_percent
        return _serve(flag, _rollout_choice(flag, inside), Reason.SPLIT)
    if flag.rollout_percent is not None:
        # Nothing to stick to: the caller stays outside the rollout rather than flip-flopping.
        return _serve(flag, _rollout_choice(flag, inside=False), Reason.DEFAULT)
    return _serve(flag, True if flag.type is FlagType.BOOLEAN else flag.default_variant, untargeted)


def _rollout_choice(flag: FlagDefinition, inside: bool) -> bool | str | None:
    if flag.type is FlagType.BOOLEAN:
        return inside
    return flag.rollout_variant if inside else flag.default_variant


def _serve(flag: FlagDefinition, choice: bool | str | None, reason: Reason) -> Resolution:
    if isinstance(choice, bool):
        return Resolution(choice, ON if choice else OFF, reason)
    if choice is None or choice not in flag.variants:
        # Validation keeps this from happening; a caller's default is the safe answer if it does.
        return Resolution(None, None, Reason.DEFAULT)
    return Resolution(flag.variants[choice], choice, reason)
