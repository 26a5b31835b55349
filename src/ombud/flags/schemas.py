"""The shapes of the flags API, and the rules a flag must satisfy before it is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from ombud.flags.evaluation import FlagType

FLAG_KEY_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,199}$"
GATE_PREFIX = "ai."
"""Flags under this prefix switch AI calls on and off, so they must be boolean."""

VariantName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
TenantSlug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9\-]{0,62}$")]
VariantValueIn = StrictStr | StrictInt | StrictFloat | dict[str, JsonValue] | list[JsonValue]

_VALUE_TYPES: dict[FlagType, tuple[type, ...]] = {
    FlagType.STRING: (str,),
    FlagType.INTEGER: (int,),
    FlagType.FLOAT: (int, float),
    FlagType.OBJECT: (dict, list),
}


class FlagWrite(BaseModel):
    """A flag as ``PUT /v1/flags/{key}`` replaces it."""

    model_config = ConfigDict(extra="forbid")

    type: FlagType = FlagType.BOOLEAN
    enabled: StrictBool
    """For boolean flags, the value everyone gets unless targeted; for the others, off means
    every caller gets its own default."""
    description: str = Field(default="", max_length=2000)
    variants: dict[VariantName, VariantValueIn] = Field(default_factory=dict, max_length=50)
    """Non-boolean flags: variant name → value, all of the flag's type."""
    default_variant: VariantName | None = None
    tenant_overrides: dict[TenantSlug, StrictBool | VariantName] = Field(
        default_factory=dict, max_length=1000
    )
    """Tenant slug → ``true``/``false`` (boolean flags) or a variant name (the others)."""
    rollout_percent: float | None = Field(default=None, ge=0, le=100)
    """Share of targeting keys (subjects, else principals) that get the rollout's value."""
    rollout_variant: VariantName | None = None
    """Non-boolean flags: the variant the rollout's share gets (the rest get the default)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type is FlagType.BOOLEAN:
            _check_boolean(self)
        else:
            _check_variants(self)
        return self


def _check_boolean(flag: FlagWrite) -> None:
    if flag.variants or flag.default_variant or flag.rollout_variant:
        raise ValueError("boolean flags take no variants, default_variant or rollout_variant")
    if any(not isinstance(v, bool) for v in flag.tenant_overrides.values()):
        raise ValueError("a boolean flag's tenant overrides are true or false")


def _check_variants(flag: FlagWrite) -> None:
    if not flag.variants:
        raise ValueError(f"a {flag.type} flag needs variants")
    allowed = _VALUE_TYPES[flag.type]
    wrong = [name for name, value in flag.variants.items() if not isinstance(value, allowed)]
    if wrong:
        raise ValueError(f"variants {sorted(wrong)} are not of type {flag.type}")
    if flag.default_variant not in flag.variants:
        raise ValueError("default_variant must name one of the variants")
    unknown = {v for v in flag.tenant_overrides.values() if v not in flag.variants}
    if unknown or any(isinstance(v, bool) for v in flag.tenant_overrides.values()):
        raise ValueError("tenant overrides must name variants of the flag")
    if (flag.rollout_percent is None) != (flag.rollout_variant is None):
        raise ValueError("rollout_percent and rollout_variant go together")
    if flag.rollout_variant is not None and flag.rollout_variant not in flag.variants:
        raise ValueError("rollout_variant must name one of the variants")


class FlagRead(FlagWrite):
    """A stored flag."""

    key: str
    updated_by: str
    updated_at: datetime


class EvaluationRequest(BaseModel):
    """Who to evaluate a flag for in a dry run (nothing is changed or cached)."""

    model_config = ConfigDict(extra="forbid")

    tenant: TenantSlug | None = None
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    principal: str | None = Field(default=None, min_length=1, max_length=200)
    """The targeting key when no subject is given, as in the request path."""


class EvaluationRead(BaseModel):
    """What the flag would serve that caller."""

    key: str
    value: JsonValue
    """``null`` when the flag is off and the caller's own default would apply."""
    variant: str | None
    reason: str
    targeting_key: str | None
