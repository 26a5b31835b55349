"""The data access layer: the one gate every read of a data subject's data goes through.

:meth:`DataAccess.check` decides, in this order, whether ``principal`` may read ``categories``
of a subject's data for ``purpose``:

1. a purpose is declared (else 403 ``purpose_required``);
2. the purposes catalog knows it (else 422 ``unknown_purpose``);
3. the purpose may read every category asked for (else 403 ``purpose_not_allowed``);
4. the principal's roles allow ``subject.data.read`` at all (else 403 ``forbidden``);
5. the subject exists in the principal's tenant (else 404, as for a missing one), and policy
   allows the read of that subject for that purpose and those categories (else 403);
6. when the purpose's lawful basis is consent, the subject's current consent for it is
   ``granted`` (else 403 ``consent_required``). Consent is read from the database on every
   check, never cached, so a withdrawal applies to the very next read.

A refusal is written to the audit trail (``data.access``, outcome ``denied`` or ``rejected``,
with purpose, subject, categories and reason) before it is raised: refused and audited, not
merely logged. A grant is audited too and appended to the subject's access history
(``subject_access_log``), which a subject's data export lists. The same checks apply whether
the read comes over HTTP or from Python.

Residency: a subject's rows (and its access history) live in the store of its region
(:mod:`ombud.privacy.regions`), which is where the check reads and records.

:meth:`DataAccess.check_many` is the same gate for many subjects at once (one purpose and set
of categories): a query for the subjects and one for their consents per store, one audit write
for every decision and one insert of the history rows per store, instead of a round of each
per subject. Either every subject is allowed, or nothing is read and every refusal is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.authz import Authorizer, Resource
from ombud.core.clock import Clock
from ombud.core.errors import (
    ConsentRequired,
    FieldError,
    InvalidRequest,
    NotFound,
    Problem,
    PurposeNotAllowed,
    PurposeRequired,
    UnknownPurpose,
)
from ombud.core.ids import new_id
from ombud.identity.principal import Principal
from ombud.privacy.purposes import LawfulBasis, Purpose, PurposeCatalog
from ombud.privacy.regions import RegionalStores
from ombud.privacy.repository import PrivacyRepository
from ombud.privacy.tables import DataSubjectRow, SubjectAccessRow
from ombud.records.writer import RecordWriter

ACTION = "data.access"
"""The audit action of every check, granted or refused."""
PERMISSION = "subject.data.read"
RESOURCE_KIND = "subject"
GRANTED = "granted"


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """Proof that one read of a subject's data was allowed, and recorded."""

    access_id: str
    subject_id: str
    tenant_id: str
    region: str
    purpose: str
    lawful_basis: LawfulBasis
    categories: tuple[str, ...]
    actor: str
    granted_at: datetime


@dataclass(frozen=True, slots=True)
class _Request:
    principal: Principal
    subject_id: str
    purpose: str | None
    categories: tuple[str, ...]
    request_id: str | None


class DataAccess:
    """The gate before subject data.

    Args:
        regions: The stores subjects, consents and the access history are read from and
            written to (each subject's home store) when the caller gives no session of its own.
        clock: Time of grants and audit events.
        records: Where audit events go (the group-commit record writer).
        authorizer: Decides ``subject.data.read`` by role and policy.
        catalog: The purposes and what each may read.
    """

    def __init__(
        self,
        regions: RegionalStores,
        clock: Clock,
        records: RecordWriter,
        authorizer: Authorizer,
        catalog: PurposeCatalog,
    ) -> None:
        self._regions = regions
        self._clock = clock
        self._records = records
        self._authorizer = authorizer
        self._catalog = catalog

    @property
    def catalog(self) -> PurposeCatalog:
        return self._catalog

    async def check(
        self,
        principal: Principal,
        *,
        subject_id: str,
        purpose: str | None,
        categories: Sequence[str],
        session: AsyncSession | None = None,
        request_id: str | None = None,
    ) -> AccessGrant:
        """Allow ``principal`` to read ``categories`` of ``subject_id``'s data for ``purpose``,
        or raise (see the module's docstring for the order of checks).

        Args:
            session: The caller's unit of work: the check reads through it and the access
                history row joins it (committed, or rolled back, with the caller's work). It
                must not hold a write yet (the audit event commits on connections of its own,
                and SQLite has one writer), and must be on the subject's home store. Without
                it, the check uses sessions of its own on that store.
            request_id: The request this read serves, for the audit trail.

        Raises:
            PurposeRequired, UnknownPurpose, PurposeNotAllowed, Forbidden, PolicyDenied,
            NotFound, ConsentRequired: the read is refused (and already audited).
        """
        asked = _Request(principal, subject_id, purpose, tuple(categories), request_id)
        home = None
        try:
            # Purpose and role first: a caller without them learns nothing, costs no lookup.
            self._preflight(principal, purpose, categories)
            if session is not None:
                grant = await self._decide(asked, PrivacyRepository(session))
            else:
                home = (await self._regions.home(subject_id)).sessions
                async with home() as own:
                    grant = await self._decide(asked, PrivacyRepository(own))
        except Problem as exc:
            await self._audit([(asked, exc, None)])
            raise
        await self._audit([(asked, None, grant)])
        row = _history_row(grant, request_id)
        if session is not None:
            PrivacyRepository(session).add(row)
        else:
            assert home is not None
            async with home.begin() as own:
                PrivacyRepository(own).add(row)
        return grant

    async def check_many(
        self,
        principal: Principal,
        *,
        subject_ids: Sequence[str],
        purpose: str | None,
        categories: Sequence[str],
        request_id: str | None = None,
    ) -> list[AccessGrant]:
        """:meth:`check` for each of ``subject_ids`` (repeats once), batched: one audit write
        and, per store, one read of the subjects, one of their consents and one insert of the
        history. All or nothing: when any subject is refused, every decision is audited (the
        refusals, and no grant) and the first refusal in the order asked is raised.

        Raises:
            As :meth:`check`.
        """
        unique = list(dict.fromkeys(subject_ids))
        asked = {s: _Request(principal, s, purpose, tuple(categories), request_id) for s in unique}
        outcomes: dict[str, AccessGrant | Problem] = {}
        try:
            self._preflight(principal, purpose, categories)
        except Problem as exc:
            await self._audit([(asked[s], exc, None) for s in unique])
            raise
        grouped = await self._regions.homes(unique)
        home_of = {s: name for name, members in grouped.items() for s in members}
        for store_name, members in grouped.items():
            store = self._regions.store(store_name)
            async with store.sessions() as session:
                outcomes |= await self._decide_many(
                    [asked[s] for s in members], PrivacyRepository(session)
                )
        refused = [(s, o) for s, o in outcomes.items() if isinstance(o, Problem)]
        if refused:
            await self._audit([(asked[s], problem, None) for s, problem in refused])
            first = min(refused, key=lambda item: unique.index(item[0]))
            raise first[1]
        grants = [outcomes[s] for s in unique]
        assert all(isinstance(g, AccessGrant) for g in grants)
        granted = [g for g in grants if isinstance(g, AccessGrant)]
        await self._audit([(asked[g.subject_id], None, g) for g in granted])
        # Each history row goes to the store the subject was read from.
        for store_name in dict.fromkeys(home_of[g.subject_id] for g in granted):
            async with self._regions.store(store_name).sessions.begin() as session:
                repo = PrivacyRepository(session)
                for grant in granted:
                    if home_of[grant.subject_id] == store_name:
                        repo.add(_history_row(grant, request_id))
        return granted

    def _preflight(
        self, principal: Principal, purpose: str | None, categories: Sequence[str]
    ) -> None:
        """The checks that do not depend on the subject: purpose, categories, role."""
        self._purpose(_Request(principal, "", purpose, tuple(categories), None))
        context = {"purpose": purpose, "categories": list(categories)}
        self._authorizer.authorize(principal, PERMISSION, Resource(kind=RESOURCE_KIND), context)

    async def _decide_many(
        self, asked: Sequence[_Request], repo: PrivacyRepository
    ) -> dict[str, AccessGrant | Problem]:
        subjects = await repo.subjects([a.subject_id for a in asked])
        consents: dict[str, str] = {}
        purpose, spec = self._purpose(asked[0])
        if spec.needs_consent:
            consents = await repo.current_consent_statuses(list(subjects), purpose)
        decided: dict[str, AccessGrant | Problem] = {}
        for request in asked:
            try:
                decided[request.subject_id] = self._grant(
                    request, subjects.get(request.subject_id), spec, consents
                )
            except Problem as exc:
                decided[request.subject_id] = exc
        return decided

    def _grant(
        self,
        asked: _Request,
        subject: DataSubjectRow | None,
        spec: Purpose,
        consents: dict[str, str],
    ) -> AccessGrant:
        if subject is None:
            raise NotFound(detail=f"no subject {asked.subject_id!r}")
        context = {"purpose": asked.purpose, "categories": list(asked.categories)}
        resource = Resource(kind=RESOURCE_KIND, id=subject.id, tenant_id=subject.tenant_id)
        self._authorizer.authorize(asked.principal, PERMISSION, resource, context)
        if spec.needs_consent and consents.get(subject.id) != GRANTED:
            state = "withdrawn" if subject.id in consents else "never given"
            raise ConsentRequired(
                detail=f"purpose {asked.purpose!r} rests on consent, and the subject's consent "
                f"is {state}"
            )
        assert asked.purpose is not None
        return AccessGrant(
            access_id=new_id("acc"), subject_id=subject.id, tenant_id=subject.tenant_id,
            region=subject.region, purpose=asked.purpose, lawful_basis=spec.lawful_basis,
            categories=asked.categories, actor=asked.principal.id, granted_at=self._clock.now(),
        )  # fmt: skip

    async def _decide(self, asked: _Request, repo: PrivacyRepository) -> AccessGrant:
        purpose, spec = self._purpose(asked)
        context = {"purpose": asked.purpose, "categories": list(asked.categories)}
        # The role first, so a caller without the right cannot probe which subjects exist.
        self._authorizer.authorize(
            asked.principal, PERMISSION, Resource(kind=RESOURCE_KIND), context
        )
        subject = await repo.subject(asked.subject_id)
        if subject is None:
            raise NotFound(detail=f"no subject {asked.subject_id!r}")
        resource = Resource(kind=RESOURCE_KIND, id=subject.id, tenant_id=subject.tenant_id)
        self._authorizer.authorize(asked.principal, PERMISSION, resource, context)
        if spec.needs_consent:
            await _require_consent(repo, subject, purpose)
        return AccessGrant(
            access_id=new_id("acc"), subject_id=subject.id, tenant_id=subject.tenant_id,
            region=subject.region, purpose=purpose, lawful_basis=spec.lawful_basis,
            categories=asked.categories, actor=asked.principal.id, granted_at=self._clock.now(),
        )  # fmt: skip

    def _purpose(self, asked: _Request) -> tuple[str, Purpose]:
        if not asked.purpose:
            raise PurposeRequired(
                detail="declare why the data is read: X-Ombud-Purpose (e.g. credit_scoring)"
            )
        spec = self._catalog.purpose(asked.purpose)
        if spec is None:
            message = f"unknown purpose {asked.purpose!r}"
            raise UnknownPurpose(
                detail=message, errors=[FieldError(("header", "x-ombud-purpose"), message, "enum")]
            )
        if not asked.categories:
            raise InvalidRequest(detail="a read of subject data names at least one category")
        refused = sorted(set(asked.categories) - set(spec.categories))
        if refused:
            raise PurposeNotAllowed(
                detail=f"purpose {asked.purpose!r} may not read {refused}; "
                f"it may read {sorted(spec.categories)}"
            )
        return asked.purpose, spec

    async def _audit(
        self, decisions: Sequence[tuple[_Request, Problem | None, AccessGrant | None]]
    ) -> None:
        """Write one ``data.access`` event per decision, all in one record write."""
        events: list[AuditEvent] = []
        for asked, problem, grant in decisions:
            detail: dict[str, object] = {"categories": list(asked.categories)}
            if problem is not None:
                detail |= {"status": problem.status, "detail": problem.detail[:500]}
            elif grant is not None:
                detail |= {"access_id": grant.access_id, "lawful_basis": grant.lawful_basis.value}
            events.append(AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(),
                actor=asked.principal.id, action=ACTION,
                resource=f"{RESOURCE_KIND}:{asked.subject_id}",
                outcome=Outcome.for_status(problem.status) if problem else Outcome.SUCCESS,
                tenant_id=asked.principal.tenant_id, request_id=asked.request_id,
                purpose=asked.purpose, subject=asked.subject_id,
                reason=problem.kind if problem else None, detail=detail,
            ))  # fmt: skip
        await self._records.write(events)
        for _, problem, _ in decisions:
            if problem is not None:
                problem.audited = True


async def _require_consent(repo: PrivacyRepository, subject: DataSubjectRow, purpose: str) -> None:
    consent = await repo.current_consent(subject.id, purpose)
    if consent is None or consent.status != GRANTED:
        state = "withdrawn" if consent is not None else "never given"
        raise ConsentRequired(
            detail=f"purpose {purpose!r} rests on consent, and the subject's consent is {state}"
        )


def _history_row(grant: AccessGrant, request_id: str | None) -> SubjectAccessRow:
    return SubjectAccessRow(
        access_id=grant.access_id, subject_id=grant.subject_id, tenant_id=grant.tenant_id,
        actor=grant.actor, purpose=grant.purpose, categories=list(grant.categories),
        request_id=request_id, accessed_at=grant.granted_at,
    )  # fmt: skip
