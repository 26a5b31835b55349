"""The shapes of the privacy API: subjects and their profile, consents, AI-usage preferences."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

SUBJECT_ID_PATTERN = r"^sub_[0-9a-f]{32}$"

Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,16}$")]
PurposeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Source = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()\-./]{3,32}$")]
ConsentStatus = Literal["granted", "withdrawn"]


class SubjectProfile(BaseModel):
    """A subject's identifying data: kept only in the vault, sealed under the subject's key."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = None
    email: Email | None = None
    phone: Phone | None = None
    address: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    date_of_birth: date | None = None
    external_id: Text | None = None
    """The subject's id in the caller's own systems; looked up by its HMAC, never stored plain
    outside the vault."""


class SubjectCreate(SubjectProfile):
    """``POST /v1/subjects``."""

    region: Region


class SubjectRead(BaseModel):
    """A subject as every other API names it: by its pseudonymous id."""

    subject_id: str
    region: str
    created_at: datetime


class SubjectDetail(SubjectRead):
    """A subject with its profile decrypted (read through the data access layer)."""

    profile: SubjectProfile
    purpose: str
    """The purpose the profile was read for."""


class ConsentWrite(BaseModel):
    """``POST /v1/subjects/{id}/consents``: one consent given or withdrawn."""

    model_config = ConfigDict(extra="forbid")

    purpose: PurposeName
    status: ConsentStatus
    source: Source
    """Where the subject expressed it: ``web_form``, ``call_center``, ``mobile_app``, ..."""
    recorded_at: AwareDatetime | None = None
    """When the subject expressed it; default: now. Never in the future."""


class ConsentRead(BaseModel):
    purpose: str
    status: ConsentStatus
    source: str
    recorded_at: datetime
    recorded_by: str


class Consents(BaseModel):
    """A subject's consents: the current state per purpose (its newest record) and the whole
    history, oldest first."""

    subject_id: str
    current: dict[str, ConsentRead]
    history: list[ConsentRead]


class PreferencesWrite(BaseModel):
    """``PUT /v1/subjects/{id}/preferences``: both choices, always together."""

    model_config = ConfigDict(extra="forbid")

    personalization_opt_out: StrictBool
    automated_decision_opt_out: StrictBool
    """GDPR Art. 22: no decision based solely on automated processing."""


class Preferences(BaseModel):
    """A subject's AI-usage choices now; both ``false`` (and no ``recorded_at``) until set."""

    subject_id: str
    personalization_opt_out: bool = False
    automated_decision_opt_out: bool = False
    recorded_at: datetime | None = None
    recorded_by: str | None = None


class PreferencesHistory(BaseModel):
    current: Preferences
    history: list[Preferences]
    """Every change, oldest first."""


class AccessRead(BaseModel):
    """One granted read of a subject's data."""

    access_id: str
    actor: str
    purpose: str
    categories: list[str]
    accessed_at: datetime
    request_id: str | None = Field(default=None)


class ErasureRequest(BaseModel):
    """``POST /v1/subjects/{id}/erasure``: why (a ticket, the subject's request); optional."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class ErasureRead(BaseModel):
    """An erasure and the record of what was done."""

    erasure_id: str
    status: Literal["pending", "completed"]
    reason: str | None
    requested_by: str
    requested_at: datetime
    completed_at: datetime | None
    report: dict[str, Any]
    """``key_destroyed``, and once completed ``removed``: rows deleted or cleared per store
    (``main`` or a region) and table, Redis keys and LLM cache entries."""
