"""``/v1/reviews``: the human review queue, decisions, appeals and the outcome webhook.

Each route authorizes its action first (so a caller without the role cannot probe which ids
exist), then against the review's tenant: another tenant's review answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.container import Container
from ombud.core.errors import NotFound
from ombud.identity.principal import Principal
from ombud.net.outbound import OutboundPolicy
from ombud.review.repository import ReviewRepository
from ombud.review.schemas import (
    AppealCreate,
    DecisionCreate,
    ReviewDetail,
    ReviewFilters,
    ReviewPage,
    ReviewRead,
    ReviewStatus,
    WebhookCreate,
    WebhookRead,
)
from ombud.review.service import ReviewService
from ombud.review.webhooks import WebhookRegistry

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])

READ = "review.read"
DECIDE = "review.decide"
APPEAL = "review.appeal"
WEBHOOK = "review.webhook"
ReviewId = Annotated[str, Path(pattern=r"^rev_[0-9a-f]{32}$")]
RESPONSES = {**PROBLEM_RESPONSES, 409: {"description": "Not allowed in the review's state"}}


def get_service(container: ContainerDep, session: SessionDep) -> ReviewService:
    return ReviewService(
        session, container.clock, container.records, container.metrics,
        webhook_attempts=container.settings.jobs.max_attempts,
    )  # fmt: skip


ServiceDep = Annotated[ReviewService, Depends(get_service)]


async def _authorize(
    container: Container,
    principal: Principal,
    service: ReviewService,
    action: str,
    review_id: str,
) -> None:
    container.authorizer.authorize(principal, action, Resource(kind="review"))
    tenant_id = await service.tenant_of(review_id)
    resource = Resource(kind="review", id=review_id, tenant_id=tenant_id)
    container.authorizer.authorize(principal, action, resource)


async def _audit_access(
    container: Container, request: Request, principal: Principal, action: str, resource: str
) -> None:
    await record_access(container, request, principal, action, resource)


@router.get("", name=READ, summary="List reviews", responses=PROBLEM_RESPONSES)
async def list_reviews(
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
    status: ReviewStatus | None = None,
    subject: Annotated[str | None, Query(max_length=128)] = None,
    overdue: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> ReviewPage:
    """The caller's tenant's reviews, oldest first; follow ``next_cursor`` for more."""
    container.authorizer.authorize(principal, READ, Resource(kind="review"))
    filters = ReviewFilters(status=status, subject=subject, overdue=overdue)
    page = await service.list(principal.tenant_id, filters, cursor=cursor, limit=limit)
    await _audit_access(container, request, principal, READ, "review")
    return page.model_copy(
        update={"items": [undecided_view(item, principal) for item in page.items]}
    )


@router.get("/{review_id}", name=READ, summary="Read a review", responses=PROBLEM_RESPONSES)
async def read_review(
    review_id: ReviewId,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> ReviewDetail:
    """A review with its history; poll it for the outcome of a call answered 202."""
    await _authorize(container, principal, service, READ, review_id)
    review = await service.get(principal.tenant_id, review_id)
    await _audit_access(container, request, principal, READ, f"review:{review_id}")
    return undecided_view(review, principal)


@router.post(
    "/{review_id}/claim", name="review.claim", summary="Claim a review", responses=RESPONSES
)
async def claim_review(
    review_id: ReviewId,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> ReviewRead:
    """Take a pending or escalated review; others cannot act on it until it is released."""
    await _authorize(container, principal, service, DECIDE, review_id)
    return await service.claim(principal, review_id, request_id=request.state.request_id)


@router.post(
    "/{review_id}/release", name="review.release", summary="Release a review", responses=RESPONSES
)
async def release_review(
    review_id: ReviewId,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> ReviewRead:
    """Give a review the caller claimed back to the queue."""
    await _authorize(container, principal, service, DECIDE, review_id)
    return await service.release(principal, review_id, request_id=request.state.request_id)


@router.post(
    "/{review_id}/decision", name="review.decide", summary="Decide a review", responses=RESPONSES
)
async def decide_review(
    review_id: ReviewId,
    body: DecisionCreate,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> ReviewRead:
    """Approve the recommendation or override it (with the new outcome and a justification)."""
    await _authorize(container, principal, service, DECIDE, review_id)
    return await service.decide(principal, review_id, body, request_id=request.state.request_id)


@router.post(
    "/{review_id}/appeal", name="review.appeal", summary="Appeal a decision", responses=RESPONSES
)
async def appeal_review(
    review_id: ReviewId,
    body: AppealCreate,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> ReviewRead:
    """Reopen a decided review on behalf of its data subject."""
    await _authorize(container, principal, service, APPEAL, review_id)
    return await service.appeal(
        principal, review_id, body.reason, request_id=request.state.request_id
    )


@router.put(
    "/webhook", name=WEBHOOK, summary="Register the outcome webhook", responses=PROBLEM_RESPONSES
)
async def put_webhook(
    body: WebhookCreate,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
) -> WebhookRead:
    """Register (or replace) the tenant's webhook. The signing secret is returned only here."""
    container.authorizer.authorize(principal, WEBHOOK, Resource(kind="review_webhook"))
    policy = OutboundPolicy(container.settings.network)
    url = str(body.url)
    policy.check_url(url)
    # Audited before the write: the record writer must not wait on this request's lock.
    await _audit_access(container, request, principal, WEBHOOK, "review_webhook")
    registry = WebhookRegistry(ReviewRepository(session), container.keys, policy, container.clock)
    return await registry.register(principal.tenant_id, url)


@router.delete(
    "/webhook", name=WEBHOOK, status_code=204, summary="Remove the outcome webhook",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def delete_webhook(
    request: Request, principal: PrincipalDep, session: SessionDep, container: ContainerDep
) -> Response:
    """Stop deliveries; events still queued are dropped."""
    container.authorizer.authorize(principal, WEBHOOK, Resource(kind="review_webhook"))
    repository = ReviewRepository(session)
    if await repository.webhook(principal.tenant_id) is None:
        raise NotFound(detail="no webhook is registered")
    await _audit_access(container, request, principal, WEBHOOK, "review_webhook")
    await repository.delete_webhook(principal.tenant_id)
    return Response(status_code=204)


_SEE_UNDECIDED = frozenset({"reviewer", "compliance_officer"})
R = TypeVar("R", bound=ReviewRead)


def undecided_view(review: R, principal: Principal) -> R:
    """Until a human has decided, only reviewers see the model's recommendation, the inputs
    and the recorded prediction: the caller that was answered 202 must not act on the machine's
    answer before the human one exists."""
    if review.status == ReviewStatus.DECIDED or principal.roles & _SEE_UNDECIDED:
        return review
    return review.model_copy(update={"recommendation": {}, "inputs": {}, "resource": "withheld"})
