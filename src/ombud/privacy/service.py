"""Subjects, their vault, consents and AI-usage preferences: each step authorized, each change
audited.

A subject is created with a pseudonymous id (``sub_<32 hex>``) that every other part of ombud
uses; its identifying data goes only to ``subject_vault``, sealed with key management under the
subject's own data key (``("subject", <id>)``, the key prediction inputs are sealed under too),
so erasing the subject later destroys one key for all of it. An external id is found through an
HMAC of it, never the value. Reading the profile goes through :class:`DataAccess`.

Residency: a subject's rows live in the store of its region (:mod:`ombud.privacy.regions`);
every operation opens its unit of work there (one short transaction per call) and commits it.
Changes are written to the audit trail ahead of the change itself (as elsewhere: the record
writer commits on connections of its own and must not wait on a write lock this unit of work
holds).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from ombud.audit.events import AuditEvent, Outcome
from ombud.authz import Authorizer, Resource
from ombud.config import PrivacySettings
from ombud.core.clock import Clock
from ombud.core.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    NotFound,
    SubjectErased,
    UnknownPurpose,
)
from ombud.core.ids import new_id
from ombud.crypto.errors import KeyDestroyed
from ombud.crypto.service import KeyManager
from ombud.identity.principal import Principal
from ombud.privacy.access import DataAccess
from ombud.privacy.regions import RegionalStores
from ombud.privacy.repository import PrivacyRepository
from ombud.privacy.rights_tables import SubjectExternalRefRow
from ombud.privacy.schemas import (
    ConsentRead,
    Consents,
    ConsentWrite,
    Preferences,
    PreferencesHistory,
    PreferencesWrite,
    SubjectCreate,
    SubjectDetail,
    SubjectProfile,
    SubjectRead,
)
from ombud.privacy.tables import (
    DataSubjectRow,
    SubjectConsentRow,
    SubjectPreferenceRow,
    SubjectVaultRow,
)
from ombud.records.writer import RecordWriter

MANAGE = "subject.manage"
READ = "subject.read"
CONSENT_READ = "consent.read"
CONSENT_MANAGE = "consent.manage"
RESOURCE_KIND = "subject"
KEY_SCOPE = "subject"
PROFILE_CATEGORIES = ("identity",)


def vault_aad(subject_id: str) -> bytes:
    """Associated data of a vault envelope: it opens only as this subject's vault row."""
    return f"subject_vault:{subject_id}".encode()


class PrivacyService:
    """The privacy domain; each call is a unit of work in the subject's home store.

    Args:
        regions: The stores of the regions (residency).
        clock: Time of changes and their audit events.
        records: Where audit events go (the group-commit record writer).
        authorizer: Decides who may manage and read subjects and consents.
        keys: Key management; seals and opens the vault.
        access: The data access layer the profile is read through.
        settings: Allowed regions.
        lookup_key: Key of the external-id HMAC.
    """

    def __init__(
        self,
        regions: RegionalStores,
        *,
        clock: Clock,
        records: RecordWriter,
        authorizer: Authorizer,
        keys: KeyManager,
        access: DataAccess,
        settings: PrivacySettings,
        lookup_key: bytes,
    ) -> None:
        self._regions = regions
        self._clock = clock
        self._records = records
        self._authorizer = authorizer
        self._keys = keys
        self._access = access
        self._settings = settings
        self._lookup_key = lookup_key

    async def create_subject(
        self, principal: Principal, body: SubjectCreate, *, request_id: str | None = None
    ) -> SubjectRead:
        """Create a subject in the principal's tenant; its profile goes sealed to the vault.

        Raises:
            Forbidden: the principal may not manage subjects.
            InvalidRequest: a region not in ``OMBUD_PRIVACY__REGIONS``.
            Conflict: the tenant already has a subject with this external id.
        """
        tenant = principal.tenant_id
        self._authorizer.authorize(
            principal, MANAGE, Resource(kind=RESOURCE_KIND, tenant_id=tenant)
        )
        self._require_region(body.region)
        ref = self._external_ref(tenant, body.external_id)
        if ref is not None:
            for store in self._regions.stores:
                async with store.sessions() as session:
                    if await PrivacyRepository(session).subject_by_ref(tenant, ref) is not None:
                        raise Conflict(
                            detail="the tenant already has a subject with this external_id"
                        )
        subject_id = new_id("sub")
        profile = SubjectProfile.model_validate(body.model_dump(exclude={"region"}))
        given = sorted(profile.model_dump(exclude_none=True))
        await self._audit(principal, "subject.create", subject_id, request_id,
                          {"region": body.region, "fields": given})  # fmt: skip
        # Sealed before anything is added here: the data key is created on a connection of its
        # own, which must not wait on this unit of work's write lock.
        sealed = await self._keys.encrypt(
            profile.model_dump_json(exclude_none=True).encode(), scope=KEY_SCOPE,
            owner=subject_id, aad=vault_aad(subject_id),
        )  # fmt: skip
        now = self._clock.now()
        row = DataSubjectRow(id=subject_id, tenant_id=tenant, region=body.region,
                             external_ref=ref, created_by=principal.id, created_at=now)  # fmt: skip
        store = self._regions.for_region(body.region)
        if ref is not None:
            await self._reserve(tenant, ref, subject_id)
        try:
            async with store.sessions.begin() as session:
                repo = PrivacyRepository(session)
                repo.add(row)
                await repo.flush()
                repo.add(SubjectVaultRow(subject_id=subject_id, sealed=sealed, updated_at=now))
        except BaseException as exc:
            if ref is not None:
                await self._release(tenant, ref, subject_id)
            if isinstance(exc, IntegrityError):
                raise Conflict(
                    detail="a subject with this external_id was created concurrently"
                ) from exc
            raise
        self._regions.remember(subject_id, body.region, tenant)
        return SubjectRead(subject_id=subject_id, region=row.region, created_at=now)

    async def read_subject(
        self,
        principal: Principal,
        subject_id: str,
        *,
        purpose: str | None,
        request_id: str | None = None,
    ) -> SubjectDetail:
        """The subject's decrypted profile, read through the data access layer for ``purpose``.

        Raises:
            Forbidden: the principal may not read subjects.
            PurposeRequired, UnknownPurpose, PurposeNotAllowed, ConsentRequired, NotFound: the
                data access layer refused (see :mod:`ombud.privacy.access`).
            SubjectErased: the subject's key is destroyed.
        """
        self._authorizer.authorize(principal, READ, Resource(kind=RESOURCE_KIND))
        grant = await self._access.check(
            principal, subject_id=subject_id, purpose=purpose, categories=PROFILE_CATEGORIES,
            request_id=request_id,
        )  # fmt: skip
        async with self._home(subject_id) as repo:
            subject = await _subject(repo, subject_id)
            vault = await repo.vault(subject_id)
        profile = SubjectProfile()
        if vault is not None:
            profile = await open_vault(self._keys, vault)
        return SubjectDetail(
            subject_id=subject.id, region=subject.region, created_at=subject.created_at,
            profile=profile, purpose=grant.purpose,
        )  # fmt: skip

    async def consents(self, principal: Principal, subject_id: str) -> Consents:
        """The subject's consents: current per purpose, and the whole history."""
        self._authorizer.authorize(principal, CONSENT_READ, Resource(kind=RESOURCE_KIND))
        async with self._home(subject_id) as repo:
            await self._tenant_subject(repo, principal, CONSENT_READ, subject_id)
            history = [_consent_read(row) for row in await repo.consents(subject_id)]
        return Consents(
            subject_id=subject_id, current={c.purpose: c for c in history}, history=history
        )

    async def record_consent(
        self,
        principal: Principal,
        subject_id: str,
        body: ConsentWrite,
        *,
        request_id: str | None = None,
    ) -> ConsentRead:
        """Append a consent given or withdrawn; the newest record is the current state.

        Raises:
            Forbidden: the principal may not manage consents.
            NotFound: no such subject in the principal's tenant.
            UnknownPurpose: the purpose is not in the catalog (422).
            InvalidRequest: ``recorded_at`` is in the future.
        """
        self._authorizer.authorize(principal, CONSENT_MANAGE, Resource(kind=RESOURCE_KIND))
        async with self._home(subject_id) as repo:
            await self._tenant_subject(repo, principal, CONSENT_MANAGE, subject_id)
        now = self._clock.now()
        _require_known_purpose(self._access, body.purpose)
        recorded_at = body.recorded_at or now
        if recorded_at > now:
            message = "recorded_at is in the future"
            raise InvalidRequest(
                detail=message, errors=[FieldError(("body", "recorded_at"), message, "value_error")]
            )
        action = "consent.grant" if body.status == "granted" else "consent.withdraw"
        await self._audit(principal, action, subject_id, request_id,
                          {"source": body.source, "recorded_at": recorded_at.isoformat()},
                          purpose=body.purpose)  # fmt: skip
        row = SubjectConsentRow(
            subject_id=subject_id, tenant_id=principal.tenant_id, purpose=body.purpose,
            status=body.status, source=body.source, recorded_at=recorded_at,
            recorded_by=principal.id, created_at=now,
        )  # fmt: skip
        async with self._home(subject_id, write=True) as repo:
            repo.add(row)
        return _consent_read(row)

    async def read_preferences(self, principal: Principal, subject_id: str) -> PreferencesHistory:
        """The subject's AI-usage preferences now, and every change."""
        self._authorizer.authorize(principal, CONSENT_READ, Resource(kind=RESOURCE_KIND))
        async with self._home(subject_id) as repo:
            await self._tenant_subject(repo, principal, CONSENT_READ, subject_id)
            history = [_preferences(row) for row in await repo.preferences(subject_id)]
        current = history[-1] if history else Preferences(subject_id=subject_id)
        return PreferencesHistory(current=current, history=history)

    async def set_preferences(
        self,
        principal: Principal,
        subject_id: str,
        body: PreferencesWrite,
        *,
        request_id: str | None = None,
    ) -> Preferences:
        """Record the subject's AI-usage choices (appended: the history is kept)."""
        self._authorizer.authorize(principal, CONSENT_MANAGE, Resource(kind=RESOURCE_KIND))
        async with self._home(subject_id) as repo:
            await self._tenant_subject(repo, principal, CONSENT_MANAGE, subject_id)
        before = await self.preferences(subject_id)
        values = body.model_dump()
        await self._audit(principal, "subject.preferences", subject_id, request_id,
                          {"before": before.model_dump(include=set(values)),
                           "after": values})  # fmt: skip
        row = SubjectPreferenceRow(subject_id=subject_id, tenant_id=principal.tenant_id,
                                   recorded_by=principal.id, recorded_at=self._clock.now(),
                                   **values)  # fmt: skip
        async with self._home(subject_id, write=True) as repo:
            repo.add(row)
        return _preferences(row)

    async def preferences(self, subject_id: str) -> Preferences:
        """The subject's current AI-usage preferences, for the request path (no authorization:
        the caller already decided it may act for this subject). Read each time, never cached;
        both ``false`` for an unknown subject or one who never chose."""
        async with self._home(subject_id) as repo:
            row = await repo.current_preferences(subject_id)
        return _preferences(row) if row is not None else Preferences(subject_id=subject_id)

    async def _reserve(self, tenant_id: str, ref: str, subject_id: str) -> None:
        """Claim the external id tenant-wide (main database) before the subject is stored in
        its region: two regions' stores cannot both take it."""
        try:
            async with self._regions.main.sessions.begin() as session:
                session.add(
                    SubjectExternalRefRow(tenant_id=tenant_id, external_ref=ref,
                                          subject_id=subject_id)
                )  # fmt: skip
        except IntegrityError as exc:
            raise Conflict(detail="the tenant already has a subject with this external_id") from exc

    async def _release(self, tenant_id: str, ref: str, subject_id: str) -> None:
        async with self._regions.main.sessions.begin() as session:
            await session.execute(
                delete(SubjectExternalRefRow).where(
                    SubjectExternalRefRow.tenant_id == tenant_id,
                    SubjectExternalRefRow.external_ref == ref,
                    SubjectExternalRefRow.subject_id == subject_id,
                )
            )

    @asynccontextmanager
    async def _home(
        self, subject_id: str, *, write: bool = False
    ) -> AsyncIterator[PrivacyRepository]:
        """A unit of work in the subject's home store; ``write``: a transaction committed on
        leaving."""
        sessions = (await self._regions.home(subject_id)).sessions
        if write:
            async with sessions.begin() as session:
                yield PrivacyRepository(session)
        else:
            async with sessions() as session:
                yield PrivacyRepository(session)

    async def _tenant_subject(
        self, repo: PrivacyRepository, principal: Principal, action: str, subject_id: str
    ) -> DataSubjectRow:
        """Authorize ``action`` on the subject; another tenant's subject is 404 like a missing
        one (the role is checked first, so a caller without it cannot probe ids)."""
        self._authorizer.authorize(principal, action, Resource(kind=RESOURCE_KIND))
        row = await _subject(repo, subject_id)
        resource = Resource(kind=RESOURCE_KIND, id=subject_id, tenant_id=row.tenant_id)
        self._authorizer.authorize(principal, action, resource)
        return row

    def _require_region(self, region: str) -> None:
        if region not in self._settings.regions:
            message = f"region {region!r} is not one of {self._settings.regions}"
            raise InvalidRequest(
                detail=message, errors=[FieldError(("body", "region"), message, "enum")]
            )

    def external_ref(self, tenant_id: str, external_id: str) -> str:
        """The HMAC an external id is stored and found by (per tenant)."""
        ref = self._external_ref(tenant_id, external_id)
        assert ref is not None
        return ref

    def _external_ref(self, tenant_id: str, external_id: str | None) -> str | None:
        """The HMAC an external id is stored and found by (per tenant)."""
        if external_id is None:
            return None
        message = f"{tenant_id}\x00{external_id}".encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()

    async def _audit(
        self,
        principal: Principal,
        action: str,
        subject_id: str,
        request_id: str | None,
        detail: dict[str, Any],
        *,
        purpose: str | None = None,
    ) -> None:
        await self._records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(), actor=principal.id,
                action=action, resource=f"{RESOURCE_KIND}:{subject_id}",
                outcome=Outcome.SUCCESS, tenant_id=principal.tenant_id,
                request_id=request_id, purpose=purpose, subject=subject_id, detail=detail,
            )
        ])  # fmt: skip


async def open_vault(keys: KeyManager, vault: SubjectVaultRow) -> SubjectProfile:
    """A subject's identifying data, decrypted.

    Raises:
        SubjectErased: the subject's key is destroyed.
    """
    try:
        plaintext = await keys.decrypt(
            vault.sealed, aad=vault_aad(vault.subject_id), scope=KEY_SCOPE,
            owner=vault.subject_id,
        )  # fmt: skip
    except KeyDestroyed as exc:
        raise SubjectErased(detail=f"subject {vault.subject_id!r} was erased") from exc
    return SubjectProfile.model_validate_json(plaintext)


async def _subject(repo: PrivacyRepository, subject_id: str) -> DataSubjectRow:
    row = await repo.subject(subject_id)
    if row is None:
        raise NotFound(detail=f"no subject {subject_id!r}")
    return row


def _require_known_purpose(access: DataAccess, purpose: str) -> None:
    if access.catalog.purpose(purpose) is None:
        message = f"unknown purpose {purpose!r}"
        raise UnknownPurpose(
            detail=message, errors=[FieldError(("body", "purpose"), message, "enum")]
        )


def _consent_read(row: SubjectConsentRow) -> ConsentRead:
    return ConsentRead(
        purpose=row.purpose, status="granted" if row.status == "granted" else "withdrawn",
        source=row.source, recorded_at=row.recorded_at, recorded_by=row.recorded_by,
    )  # fmt: skip


def _preferences(row: SubjectPreferenceRow) -> Preferences:
    return Preferences(
        subject_id=row.subject_id, personalization_opt_out=row.personalization_opt_out,
        automated_decision_opt_out=row.automated_decision_opt_out,
        recorded_at=row.recorded_at, recorded_by=row.recorded_by,
    )  # fmt: skip
