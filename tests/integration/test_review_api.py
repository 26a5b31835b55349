"""Human review through HTTP: the queue, decisions, appeals, deadlines and signed webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from ombud.app import create_app
from ombud.audit.events import Outcome
from ombud.config import JobsSettings, NetworkSettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.identity.principal import Principal
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.jobs.tables import JobRow
from ombud.jobs.worker import Worker, build_worker
from ombud.review.tables import ReviewWebhookRow
from ombud.review.webhooks import SIGNATURE_HEADER, verify
from ombud.review.wiring import review_jobs, review_opener
from tests.conftest import empty_database
from tests.integration.helpers import audit_for, bearer

pytestmark = pytest.mark.anyio

RECOMMENDATION = {"score": 0.71, "decision": "deny", "threshold": 0.5}
JOBS = JobsSettings(
    embedded_worker=False, max_attempts=3, backoff_base_s=1, backoff_max_s=4,
    poll_interval_s=0.01, shutdown_grace_s=0,
)  # fmt: skip


class Receiver:
    """A local webhook receiver answering the statuses it is told to, then 200."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ombud"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.deliveries]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    local = Receiver()
    thread = threading.Thread(target=local.server.serve_forever, daemon=True)
    thread.start()
    yield local
    local.server.shutdown()
    local.server.server_close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    network = NetworkSettings(
        allowed_hosts=["127.0.0.1"], allow_private_networks=True, allowed_schemes=["http", "https"]
    )
    return settings.model_copy(update={"network": network})


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application
        await empty_database(application.state.container)


@pytest.fixture
def worker(container: Container, clock: FrozenClock) -> Worker:
    return build_worker(
        sessions=container.sessions, clock=clock, settings=JOBS, metrics=container.metrics,
        registry=default_registry(review=review_jobs(container)),
    )  # fmt: skip


async def _key(container: Container, tenant: str, *roles: str) -> tuple[str, Principal]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=roles)).token
        return token, await identity.authenticate(token)


async def _open(container: Container, requester: Principal, deadline_s: int = 3600) -> str:
    return await review_opener(container).open_for_call(
        tenant_id=requester.tenant_id, requested_by=requester.id, subject="sub_4f2a",
        resource="prediction:pred_" + "1" * 32, recommendation=RECOMMENDATION,
        inputs={"credit_amount": 4500, "duration_months": 24}, reason="score near threshold",
        explanation={"credit_amount": 0.31}, deadline=timedelta(seconds=deadline_s),
        request_id="req-review-test",
    )  # fmt: skip


async def _register(client: httpx.AsyncClient, admin: str, url: str) -> str:
    response = await client.put("/v1/reviews/webhook", json={"url": url}, headers=bearer(admin))
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


async def _webhook_jobs(container: Container) -> list[JobRow]:
    async with container.sessions() as session:
        rows = await session.scalars(select(JobRow).where(JobRow.kind == "review.webhook"))
        return list(rows)


def _sample(container: Container, name: str, **labels: str) -> float:
    return container.metrics.registry.get_sample_value(name, labels) or 0.0


async def _claim_and_override(
    client: httpx.AsyncClient, reviewer: str, review_id: str
) -> httpx.Response:
    claim = await client.post(f"/v1/reviews/{review_id}/claim", headers=bearer(reviewer))
    assert claim.json()["status"] == "claimed"
    unjustified = {"action": "override", "outcome": {"decision": "approve"}}
    refused = await client.post(
        f"/v1/reviews/{review_id}/decision", json=unjustified, headers=bearer(reviewer)
    )
    assert refused.status_code == 422
    decision = {**unjustified, "justification": "income verified; bureau record was stale"}
    decided = await client.post(
        f"/v1/reviews/{review_id}/decision", json=decision, headers=bearer(reviewer)
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["outcome"] == {"decision": "approve"}
    return decided


def _check_signed_delivery(receiver: Receiver, secret: str, clock: FrozenClock) -> None:
    [(headers, body)] = receiver.deliveries
    now = int(clock.now().timestamp())
    assert verify(secret, body, headers[SIGNATURE_HEADER], now=now)
    assert not verify("whsec_wrong", body, headers[SIGNATURE_HEADER], now=now)
    assert not verify(secret, body, headers[SIGNATURE_HEADER], now=now + 3600)  # a replay
    payload = json.loads(body)
    assert payload["type"] == "review.decided"
    assert payload["data"]["outcome"] == {"decision": "approve"}
    assert payload["data"]["recommendation"] == RECOMMENDATION
    assert headers["Ombud-Event-Id"] == payload["id"]


async def test_full_round_trip_override_signed_webhook_and_appeal(
    client: httpx.AsyncClient,
    container: Container,
    clock: FrozenClock,
    receiver: Receiver,
    worker: Worker,
) -> None:
    admin, _ = await _key(container, "bank", "admin")
    reviewer, reviewer_principal = await _key(container, "bank", "reviewer")
    app_key, requester = await _key(container, "bank", "service")
    secret = await _register(client, admin, receiver.url)
    assert secret.startswith("whsec_")
    async with container.sessions() as session:
        stored = await session.get(ReviewWebhookRow, requester.tenant_id)
        assert stored is not None
        assert secret.encode() not in stored.secret_ciphertext

    review_id = await _open(container, requester)
    listed = await client.get("/v1/reviews?status=pending", headers=bearer(reviewer))
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert (item["id"], item["recommendation"], item["subject"]) == (
        review_id, RECOMMENDATION, "sub_4f2a",
    )  # fmt: skip

    decided = await _claim_and_override(client, reviewer, review_id)
    [event] = await audit_for(container, decided.headers["X-Request-Id"])
    assert (event.action, event.actor, event.outcome) == (
        "review.decide", reviewer_principal.id, Outcome.SUCCESS,
    )  # fmt: skip
    assert [job.status for job in await _webhook_jobs(container)] == ["queued"]
    assert await worker.run_once() >= 1
    _check_signed_delivery(receiver, secret, clock)

    polled = (await client.get(f"/v1/reviews/{review_id}", headers=bearer(app_key))).json()
    assert (polled["status"], polled["decision"]) == ("decided", "override")
    assert [h["action"] for h in polled["history"]] == ["open", "claim", "decide"]

    appeal = await client.post(
        f"/v1/reviews/{review_id}/appeal", json={"reason": "subject disputes"},
        headers=bearer(app_key),
    )  # fmt: skip
    assert (appeal.json()["status"], appeal.json()["appeal_count"]) == ("pending", 1)
    await worker.run_once()
    assert [e["type"] for e in receiver.events()] == ["review.decided", "review.appealed"]
    assert _sample(container, "ombud_reviews_decided_total", action="override") == 1
    assert _sample(container, "ombud_review_webhook_deliveries_total", outcome="delivered") == 2


async def test_a_failing_receiver_is_retried_with_the_same_event(
    client: httpx.AsyncClient,
    container: Container,
    clock: FrozenClock,
    receiver: Receiver,
    worker: Worker,
) -> None:
    admin, _ = await _key(container, "bank", "admin")
    reviewer, _ = await _key(container, "bank", "reviewer")
    _, requester = await _key(container, "bank", "service")
    await _register(client, admin, receiver.url)
    review_id = await _open(container, requester)
    await client.post(f"/v1/reviews/{review_id}/claim", headers=bearer(reviewer))
    await client.post(
        f"/v1/reviews/{review_id}/decision", json={"action": "approve"}, headers=bearer(reviewer)
    )
    receiver.statuses = [500]

    await worker.run_once()
    [job] = await _webhook_jobs(container)
    assert (job.status, job.attempts) == ("queued", 1)
    assert "HTTP 500" in (job.last_error or "")
    clock.advance(10)
    await worker.run_once()
    [job] = await _webhook_jobs(container)
    assert job.status == "succeeded"
    first, second = receiver.events()
    assert first == second  # one event, delivered at least once
    assert _sample(container, "ombud_review_webhook_deliveries_total", outcome="failed") == 1


async def test_a_missed_deadline_escalates_through_the_scheduled_job(
    client: httpx.AsyncClient,
    container: Container,
    clock: FrozenClock,
    receiver: Receiver,
    worker: Worker,
) -> None:
    admin, _ = await _key(container, "bank", "admin")
    reviewer, _ = await _key(container, "bank", "reviewer")
    _, requester = await _key(container, "bank", "service")
    await _register(client, admin, receiver.url)
    review_id = await _open(container, requester, deadline_s=60)
    await client.post(f"/v1/reviews/{review_id}/claim", headers=bearer(reviewer))
    await worker.run_once()  # declares the schedules

    clock.advance(180)
    overdue = await client.get("/v1/reviews?overdue=true", headers=bearer(reviewer))
    assert [r["id"] for r in overdue.json()["items"]] == [review_id]
    await worker.run_once()  # the escalation run
    await worker.run_once()  # its webhook
    review = (await client.get(f"/v1/reviews/{review_id}", headers=bearer(reviewer))).json()
    assert (review["status"], review["claimed_by"]) == ("escalated", None)
    assert review["history"][-1]["actor"] == "system"
    assert [e["type"] for e in receiver.events()] == ["review.escalated"]
    assert _sample(container, "ombud_review_escalations_total") == 1
    again = await client.post(f"/v1/reviews/{review_id}/claim", headers=bearer(reviewer))
    assert again.json()["status"] == "claimed"


async def test_another_tenants_review_is_404_and_not_listed(
    client: httpx.AsyncClient, container: Container
) -> None:
    _, requester = await _key(container, "bank", "service")
    outsider, _ = await _key(container, "other-bank", "reviewer")
    review_id = await _open(container, requester)
    for response in (
        await client.get(f"/v1/reviews/{review_id}", headers=bearer(outsider)),
        await client.post(f"/v1/reviews/{review_id}/claim", headers=bearer(outsider)),
    ):
        assert response.status_code == 404
        assert response.json()["type"] == "urn:ombud:problem:not_found"
    listed = await client.get("/v1/reviews", headers=bearer(outsider))
    assert listed.json()["items"] == []


async def test_roles_decide_who_reads_decides_appeals_and_registers(
    client: httpx.AsyncClient, container: Container
) -> None:
    analyst, _ = await _key(container, "bank", "analyst")
    officer, _ = await _key(container, "bank", "compliance_officer")
    reviewer, _ = await _key(container, "bank", "reviewer")
    both, requester = await _key(container, "bank", "service", "reviewer")
    review_id = await _open(container, requester)
    url = f"/v1/reviews/{review_id}"
    assert (await client.get(url, headers=bearer(analyst))).status_code == 200
    assert (await client.get(url, headers=bearer(officer))).status_code == 200
    assert (await client.post(f"{url}/claim", headers=bearer(analyst))).status_code == 403
    # The principal whose call opened the review may not decide it, whatever its roles.
    assert (await client.post(f"{url}/claim", headers=bearer(both))).status_code == 403
    appeal = await client.post(f"{url}/appeal", json={"reason": "x"}, headers=bearer(reviewer))
    assert appeal.status_code == 403
    webhook = await client.put(
        "/v1/reviews/webhook", json={"url": "https://127.0.0.1/"}, headers=bearer(reviewer)
    )
    assert webhook.status_code == 403
    assert (await client.get("/v1/reviews")).status_code == 401
    conflict = await client.post(f"{url}/appeal", json={"reason": "x"}, headers=bearer(analyst))
    assert conflict.status_code == 409
    assert conflict.json()["type"] == "urn:ombud:problem:conflict"


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "https://hooks.example.com/ombud"]
)
async def test_webhook_urls_off_the_allow_list_are_refused_and_audited(
    client: httpx.AsyncClient, container: Container, url: str
) -> None:
    admin, _ = await _key(container, "bank", "admin")
    response = await client.put("/v1/reviews/webhook", json={"url": url}, headers=bearer(admin))
    assert response.status_code == 422
    assert response.json()["type"] == "urn:ombud:problem:outbound_refused"
    [event] = await audit_for(container, response.json()["request_id"])
    assert (event.action, event.reason) == ("review.webhook", "outbound_refused")
    deleted = await client.delete("/v1/reviews/webhook", headers=bearer(admin))
    assert deleted.status_code == 404


async def test_bodies_are_closed_schemas(client: httpx.AsyncClient, container: Container) -> None:
    admin, _ = await _key(container, "bank", "admin")
    reviewer, _ = await _key(container, "bank", "reviewer")
    _, requester = await _key(container, "bank", "service")
    review_id = await _open(container, requester)
    await client.post(f"/v1/reviews/{review_id}/claim", headers=bearer(reviewer))
    sneaky = {"action": "approve", "decided_by": "prn_someone_else", "status": "decided"}
    decision = await client.post(
        f"/v1/reviews/{review_id}/decision", json=sneaky, headers=bearer(reviewer)
    )
    assert decision.status_code == 422
    webhook = await client.put(
        "/v1/reviews/webhook", json={"url": "http://127.0.0.1:9/", "secret": "mine"},
        headers=bearer(admin),
    )  # fmt: skip
    assert webhook.status_code == 422
    review = (await client.get(f"/v1/reviews/{review_id}", headers=bearer(reviewer))).json()
    assert (review["status"], review["decided_by"]) == ("claimed", None)
