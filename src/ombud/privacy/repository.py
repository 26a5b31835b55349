"""All SQL of the privacy domain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.privacy.tables import (
    DataSubjectRow,
    SubjectAccessRow,
    SubjectConsentRow,
    SubjectPreferenceRow,
    SubjectVaultRow,
)


class PrivacyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def subject(self, subject_id: str) -> DataSubjectRow | None:
        return await self._session.get(DataSubjectRow, subject_id)

    async def subjects(self, subject_ids: Sequence[str]) -> dict[str, DataSubjectRow]:
        """The subjects among ``subject_ids`` that this store holds, by id."""
        if not subject_ids:
            return {}
        stmt = select(DataSubjectRow).where(DataSubjectRow.id.in_(subject_ids))
        return {row.id: row for row in await self._session.scalars(stmt)}

    async def subject_by_ref(self, tenant_id: str, external_ref: str) -> DataSubjectRow | None:
        stmt = select(DataSubjectRow).where(
            DataSubjectRow.tenant_id == tenant_id, DataSubjectRow.external_ref == external_ref
        )
        return (await self._session.scalars(stmt)).first()

    async def vault(self, subject_id: str) -> SubjectVaultRow | None:
        return await self._session.get(SubjectVaultRow, subject_id)

    async def current_consent(self, subject_id: str, purpose: str) -> SubjectConsentRow | None:
        """The newest consent record of ``subject_id`` for ``purpose``, read from the database
        each time (a withdrawal applies to the very next read)."""
        stmt = (
            select(SubjectConsentRow)
            .where(SubjectConsentRow.subject_id == subject_id, SubjectConsentRow.purpose == purpose)
            .order_by(SubjectConsentRow.recorded_at.desc(), SubjectConsentRow.seq.desc())
            .limit(1)
        )
        return (await self._session.scalars(stmt)).first()

    async def current_consent_statuses(
        self, subject_ids: Sequence[str], purpose: str
    ) -> dict[str, str]:
        """The newest consent status for ``purpose`` of each of ``subject_ids`` that has any,
        in one query (read each time, as :meth:`current_consent`)."""
        if not subject_ids:
            return {}
        c = SubjectConsentRow
        stmt = (
            select(c.subject_id, c.status)
            .where(c.subject_id.in_(subject_ids), c.purpose == purpose)
            .order_by(c.subject_id, c.recorded_at, c.seq)
        )
        # Oldest first per subject: the last row seen for a subject is its newest.
        return {str(subject): str(status) for subject, status in await self._session.execute(stmt)}

    async def consents(self, subject_id: str) -> Sequence[SubjectConsentRow]:
        stmt = (
            select(SubjectConsentRow)
            .where(SubjectConsentRow.subject_id == subject_id)
            .order_by(SubjectConsentRow.recorded_at, SubjectConsentRow.seq)
        )
        return (await self._session.scalars(stmt)).all()

    async def preferences(self, subject_id: str) -> Sequence[SubjectPreferenceRow]:
        """Every preferences record of ``subject_id``, oldest first."""
        stmt = (
            select(SubjectPreferenceRow)
            .where(SubjectPreferenceRow.subject_id == subject_id)
            .order_by(SubjectPreferenceRow.seq)
        )
        return (await self._session.scalars(stmt)).all()

    async def current_preferences(self, subject_id: str) -> SubjectPreferenceRow | None:
        stmt = (
            select(SubjectPreferenceRow)
            .where(SubjectPreferenceRow.subject_id == subject_id)
            .order_by(SubjectPreferenceRow.seq.desc())
            .limit(1)
        )
        return (await self._session.scalars(stmt)).first()

    async def accesses(self, subject_id: str) -> Sequence[SubjectAccessRow]:
        """Every granted read of ``subject_id``'s data, oldest first."""
        stmt = (
            select(SubjectAccessRow)
            .where(SubjectAccessRow.subject_id == subject_id)
            .order_by(SubjectAccessRow.seq)
        )
        return (await self._session.scalars(stmt)).all()

    def add(
        self,
        row: DataSubjectRow
        | SubjectVaultRow
        | SubjectConsentRow
        | SubjectPreferenceRow
        | SubjectAccessRow,
    ) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        await self._session.flush()
