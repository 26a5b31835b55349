"""``/v1/compliance``: the record of processing activities and the privacy-notice section.

Both need ``compliance.read`` and are audited as reads. The record answers JSON, or Markdown
with ``Accept: text/markdown``; the notice is Markdown only (it is text for data subjects).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.compliance.record import ProcessingRecord
from ombud.compliance.render import render_notice, render_record
from ombud.compliance.service import processing_record
from ombud.features.router import CatalogDep
from ombud.registry.router import RegistryDep

router = APIRouter(prefix="/v1/compliance", tags=["compliance"])

READ = "compliance.read"
MARKDOWN = "text/markdown"
RECORD_RESPONSES = {
    **PROBLEM_RESPONSES,
    200: {"content": {MARKDOWN: {"schema": {"type": "string"}}},
          "description": "The record (JSON, or Markdown with `Accept: text/markdown`)"},
}  # fmt: skip
NOTICE_RESPONSES = {
    **PROBLEM_RESPONSES,
    200: {"content": {MARKDOWN: {"schema": {"type": "string"}}},
          "description": "The privacy-notice section, as Markdown"},
}  # fmt: skip


@router.get(
    "/processing-record", name=READ, summary="The record of processing activities (Art. 30)",
    response_model=ProcessingRecord, responses=RECORD_RESPONSES,
)  # fmt: skip
async def read_processing_record(
    request: Request,
    principal: PrincipalDep,
    container: ContainerDep,
    registry: RegistryDep,
    features: CatalogDep,
    accept: Annotated[str, Header()] = "application/json",
) -> ProcessingRecord | Response:
    """Purposes, data categories, models and their training data, feature views, recipients
    and security measures, generated from the configuration and the registry."""
    container.authorizer.authorize(principal, READ, Resource(kind="compliance"))
    record = await processing_record(container, registry, features)
    await record_access(container, request, principal, READ, "processing-record")
    if MARKDOWN in accept:
        return Response(render_record(record), media_type=f"{MARKDOWN}; charset=utf-8")
    return record


@router.get(
    "/privacy-notice", name=READ, summary="The privacy-notice section, generated",
    response_class=Response, responses=NOTICE_RESPONSES,
)  # fmt: skip
async def read_privacy_notice(
    request: Request,
    principal: PrincipalDep,
    container: ContainerDep,
    registry: RegistryDep,
    features: CatalogDep,
) -> Response:
    """Per purpose, in plain words: what data, why, how long, who receives it, and which
    automated decisions are made, with the right to human review and to opt out."""
    container.authorizer.authorize(principal, READ, Resource(kind="compliance"))
    record = await processing_record(container, registry, features)
    await record_access(container, request, principal, READ, "privacy-notice")
    return Response(render_notice(record), media_type=f"{MARKDOWN}; charset=utf-8")
