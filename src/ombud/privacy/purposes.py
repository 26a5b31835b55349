"""The purposes catalog: what subject data may be processed for, on which lawful basis, and
which data categories each purpose may read.

The catalog is a YAML (or JSON) file validated at load: unknown keys, unknown lawful bases and
purposes naming categories the catalog does not define are refused, so a typo cannot silently
widen or narrow what a purpose may read. ombud ships a default
(``ombud/privacy/purposes.yaml``); ``OMBUD_PRIVACY__PURPOSES_FILE`` replaces it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class LawfulBasis(StrEnum):
    """The six lawful bases of GDPR Art. 6(1)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTEREST = "vital_interest"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTEREST = "legitimate_interest"


class DataCategory(BaseModel):
    """A kind of subject data a purpose may be allowed to read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    retention_days: int = Field(ge=1)


class Purpose(BaseModel):
    """Why subject data is processed, and what that reason allows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    lawful_basis: LawfulBasis
    categories: tuple[Name, ...] = Field(min_length=1)
    """The data categories this purpose may read; nothing else."""
    retention_days: int = Field(ge=1)
    recipients: tuple[str, ...] = ()

    @property
    def needs_consent(self) -> bool:
        """Whether processing needs the subject's current consent for this purpose."""
        return self.lawful_basis is LawfulBasis.CONSENT


class PurposeCatalog(BaseModel):
    """Every purpose and data category ombud knows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: dict[Name, DataCategory] = Field(min_length=1)
    purposes: dict[Name, Purpose] = Field(min_length=1)

    @model_validator(mode="after")
    def _categories_defined(self) -> Self:
        for name, purpose in self.purposes.items():
            unknown = sorted(set(purpose.categories) - set(self.categories))
            if unknown:
                raise ValueError(f"purpose {name!r} names undefined categories {unknown}")
        return self

    def purpose(self, name: str) -> Purpose | None:
        """The purpose called ``name``, or ``None`` when the catalog has none."""
        return self.purposes.get(name)


def default_purposes_file() -> Path:
    """The catalog shipped with ombud."""
    return Path(__file__).with_name("purposes.yaml")


def load_catalog(path: Path | None = None) -> PurposeCatalog:
    """Read and validate the catalog at ``path`` (default: the shipped one).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not valid YAML/JSON or not a valid catalog (pydantic's
            ``ValidationError`` is a ``ValueError``).
    """
    source = path or default_purposes_file()
    text = source.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from exc
    return PurposeCatalog.model_validate(raw)
