"""``/v1/subjects``: data subjects, their profile (through the data access layer), consents and
AI-usage preferences, all within the caller's tenant (another tenant's subject answers 404).

The service authorizes and audits; refusals of the data access layer are audited there, the
others by the HTTP edge.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from ombud.api.deps import ContainerDep, PrincipalDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.features.definitions import FeatureCatalog
from ombud.privacy.erasure import ErasureService
from ombud.privacy.export import ExportService
from ombud.privacy.schemas import (
    SUBJECT_ID_PATTERN,
    ConsentRead,
    Consents,
    ConsentWrite,
    ErasureRead,
    ErasureRequest,
    Preferences,
    PreferencesHistory,
    PreferencesWrite,
    SubjectCreate,
    SubjectDetail,
    SubjectRead,
)
from ombud.privacy.service import PrivacyService
from ombud.privacy.wiring import erasure_deps, lookup_key

router = APIRouter(prefix="/v1/subjects", tags=["privacy"])

SubjectId = Annotated[str, Path(pattern=SUBJECT_ID_PATTERN)]
PurposeHeader = Annotated[str | None, Header(alias="X-Ombud-Purpose", max_length=64)]


def get_privacy(container: ContainerDep) -> PrivacyService:
    return PrivacyService(
        container.regions, clock=container.clock, records=container.records,
        authorizer=container.authorizer, keys=container.keys, access=container.data_access,
        settings=container.settings.privacy, lookup_key=lookup_key(container),
    )  # fmt: skip


def get_erasure(container: ContainerDep) -> ErasureService:
    return ErasureService(erasure_deps(container))


ErasureDep = Annotated[ErasureService, Depends(get_erasure)]


def get_export(container: ContainerDep, request: Request) -> ExportService:
    catalog = getattr(request.app.state, "feature_catalog", None)
    views = catalog if isinstance(catalog, FeatureCatalog) else FeatureCatalog()
    return ExportService(
        regions=container.regions, sessions=container.sessions, keys=container.keys,
        access=container.data_access, authorizer=container.authorizer,
        records=container.records, clock=container.clock, views=views,
        online=container.online_features.store if views.views else None,
    )  # fmt: skip


ExportDep = Annotated[ExportService, Depends(get_export)]


PrivacyDep = Annotated[PrivacyService, Depends(get_privacy)]


@router.post(
    "", name="subject.create", status_code=201, summary="Create a data subject",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def create_subject(
    body: SubjectCreate, request: Request, principal: PrincipalDep, privacy: PrivacyDep
) -> SubjectRead:
    """A subject in the caller's tenant; its identifying data goes sealed to the vault, and the
    answer carries only its pseudonymous id."""
    return await privacy.create_subject(principal, body, request_id=request.state.request_id)


@router.get(
    "/{subject_id}", name="subject.read", summary="Read a subject's profile",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def read_subject(
    subject_id: SubjectId,
    request: Request,
    principal: PrincipalDep,
    privacy: PrivacyDep,
    purpose: PurposeHeader = None,
) -> SubjectDetail:
    """The decrypted profile, for the purpose in ``X-Ombud-Purpose`` (data category
    ``identity``), if the data access layer allows it."""
    return await privacy.read_subject(
        principal, subject_id, purpose=purpose, request_id=request.state.request_id
    )


@router.get(
    "/{subject_id}/consents", name="consent.list", summary="A subject's consents",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def list_consents(
    subject_id: SubjectId, principal: PrincipalDep, privacy: PrivacyDep
) -> Consents:
    """The current consent per purpose and the whole history."""
    return await privacy.consents(principal, subject_id)


@router.post(
    "/{subject_id}/consents", name="consent.record", status_code=201,
    summary="Record a consent given or withdrawn", responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def record_consent(
    subject_id: SubjectId,
    body: ConsentWrite,
    request: Request,
    principal: PrincipalDep,
    privacy: PrivacyDep,
) -> ConsentRead:
    """Appended to the history; it is the current state from the next read on."""
    return await privacy.record_consent(
        principal, subject_id, body, request_id=request.state.request_id
    )


@router.get(
    "/{subject_id}/preferences", name="preferences.read",
    summary="A subject's AI-usage preferences", responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def read_preferences(
    subject_id: SubjectId, principal: PrincipalDep, privacy: PrivacyDep
) -> PreferencesHistory:
    """The current preferences and every change."""
    return await privacy.read_preferences(principal, subject_id)


@router.put(
    "/{subject_id}/preferences", name="preferences.write",
    summary="Set a subject's AI-usage preferences", responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def write_preferences(
    subject_id: SubjectId,
    body: PreferencesWrite,
    request: Request,
    principal: PrincipalDep,
    privacy: PrivacyDep,
) -> Preferences:
    """Both opt-outs, recorded together; the previous values stay in the history."""
    return await privacy.set_preferences(
        principal, subject_id, body, request_id=request.state.request_id
    )


@router.post(
    "/{subject_id}/erasure", name="subject.erase", status_code=202,
    summary="Erase a data subject everywhere", responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def erase_subject(
    subject_id: SubjectId,
    request: Request,
    response: Response,
    principal: PrincipalDep,
    erasure: ErasureDep,
    body: ErasureRequest | None = None,
) -> ErasureRead:
    """Destroys the subject's key at once (nothing sealed under it decrypts again), then a
    job deletes every copy; 202 with the record, 200 with the same record when the subject
    was already erased. ``Location`` is the record's URL."""
    record, started = await erasure.request(
        principal, subject_id, body or ErasureRequest(), request_id=request.state.request_id
    )
    response.status_code = 202 if started else 200
    response.headers["Location"] = f"/v1/subjects/{subject_id}/erasure"
    return record


@router.get(
    "/{subject_id}/erasure", name="subject.erasure", summary="A subject's erasure record",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def erasure_status(
    subject_id: SubjectId, principal: PrincipalDep, erasure: ErasureDep
) -> ErasureRead:
    """Pending, or completed with what was removed where."""
    return await erasure.status(principal, subject_id)


@router.post(
    "/{subject_id}/export", name="subject.export", summary="Export a subject's data (Art. 15)",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def export_subject(
    subject_id: SubjectId, request: Request, principal: PrincipalDep, export: ExportDep
) -> dict[str, Any]:
    """One JSON bundle: profile, consents, preferences, purposes, features, predictions,
    decisions, reviews, the access history and the sources of the data; audited with its
    digest. 410 once the subject was erased."""
    return await export.export(principal, subject_id, request_id=request.state.request_id)
