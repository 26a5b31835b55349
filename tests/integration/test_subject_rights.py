"""Data-subject rights end to end: access (the export bundle has every category of data, each
correct) and erasure.

Erasure: a subject of a region with a database of its own is given
data of every kind (profile, consents, preferences, events, online features, a prediction, a
review item, a cached LLM answer, reads in the access history), erased, and then searched for:
every table of every store (from the schema metadata), every Redis key and value, and every
file of the SQLite stores and the artifact store must be free of its identifiers and plaintext
values; its pseudonymous id may stay only in the audit trail and the destroyed key's tombstone.
Afterwards training sets leave it out, events about it are refused and the audit chain still
verifies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from ombud.app import create_app
from ombud.audit.verify import verify_database
from ombud.config import RedisSettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.demo.seed import seed_demo
from ombud.features.materialize import MATERIALIZE_JOB
from ombud.features.wiring import materialize_jobs
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.jobs.registry import JobContext
from ombud.privacy.erasure import ERASURE_JOB
from ombud.privacy.wiring import privacy_jobs
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for
from tests.region_support import as_text, tables_naming, two_regions

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SCORING = "credit_scoring"


@dataclass(frozen=True)
class Values:
    """Identifiers and plaintext values of one test alone (tests on other backends may run at
    the same time, and Redis is shared)."""

    name: str
    email: str
    external_id: str
    secret: str
    amount: float
    balance: float

    @classmethod
    def fresh(cls) -> Values:
        run = uuid4()
        return cls(
            name=f"Quentin Zyxwvutsrq {run.hex[:8]}",
            email=f"quokka-zebra-{run.hex[8:16]}@example.org",
            external_id=f"EXT-QZX-{run.hex[16:24]}",
            secret=f"pangolin-marmalade-{run.hex[24:]}",
            amount=float(f"9{run.int % 10**6:06d}.4321"),
            balance=float(f"8{(run.int >> 20) % 10**6:06d}.6789"),
        )

    @property
    def profile(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "external_id": self.external_id}

    @property
    def needles(self) -> tuple[str, ...]:
        return (self.name, self.email, self.external_id, self.secret, str(self.amount),
                str(self.balance))  # fmt: skip


ALLOWED = {"audit_events", "data_keys"}
"""Where an erased subject's pseudonymous id may remain: the hash-chained audit trail and the
tombstone of its destroyed key."""
RISKY = applicant(checking_status="lt_0", credit_history="no_credits", duration_months=60,
                  credit_amount=15000, savings="lt_100")  # fmt: skip


@pytest.fixture(params=["database", "redis"])
def online_store(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def app(
    settings: Settings, regional_database: str, redis_url: str, online_store: str
) -> AsyncIterator[FastAPI]:
    changed = two_regions(settings, regional_database, online_store=online_store)  # type: ignore[arg-type]
    changed = changed.model_copy(update={"redis": RedisSettings(url=SecretStr(redis_url))})
    application = create_app(changed, clock=FrozenClock(NOW))
    async with application.router.lifespan_context(application):
        yield application
        await empty_database(application.state.container)


@dataclass
class World:
    client: httpx.AsyncClient
    container: Container
    service: dict[str, str]
    tenant: str

    async def key(self, role: str) -> dict[str, str]:
        async with self.container.sessions.begin() as session:
            identity = IdentityService(
                IdentityRepository(session), self.container.api_key_pepper, self.container.clock
            )
            token = (await identity.create_api_key(tenant=self.tenant, roles=(role,))).token
        return {"Authorization": f"Bearer {token}"}

    async def subject(self, region: str, **profile: str) -> str:
        created = await self.client.post(
            "/v1/subjects", json={"region": region, **profile}, headers=self.service
        )
        assert created.status_code == 201, created.text
        subject_id: str = created.json()["subject_id"]
        consent = {"purpose": SCORING, "status": "granted", "source": "web_form"}
        answer = await self.client.post(
            f"/v1/subjects/{subject_id}/consents", json=consent, headers=self.service
        )
        assert answer.status_code == 201, answer.text
        return subject_id

    async def events(self, subject_id: str, amount: float, balance: float) -> httpx.Response:
        event = {
            "type": "transaction", "entity_id": subject_id,
            "timestamp": (NOW - timedelta(days=1)).isoformat(),
            "payload": {"amount": amount, "balance": balance, "channel": "card"},
        }  # fmt: skip
        return await self.client.post("/v1/events", json=event, headers=self.service)

    async def run(self, kind: str, payload: dict[str, object], **handlers: Any) -> None:
        handler = default_registry(**handlers).handler(kind)
        async with self.container.sessions.begin() as session:
            context = SimpleNamespace(payload=payload, clock=self.container.clock, session=session)
            await handler(cast(JobContext, context))


@pytest.fixture
async def world(client: httpx.AsyncClient, container: Container) -> World:
    await seed_demo(container)
    tenant = "demo"
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=("service",))).token
    return World(client, container, {"Authorization": f"Bearer {token}"}, tenant)


async def _give_data(world: World, subject: str, v: Values) -> None:
    """Data of every kind about ``subject``."""
    client, service = world.client, world.service
    prefs = {"automated_decision_opt_out": True, "personalization_opt_out": False}
    answer = await client.put(f"/v1/subjects/{subject}/preferences", json=prefs, headers=service)
    assert answer.status_code == 200, answer.text
    assert (await world.events(subject, v.amount, v.balance)).status_code == 201
    await world.run(MATERIALIZE_JOB, {}, features=materialize_jobs(world.container))
    scoring = {**service, "X-Ombud-Purpose": SCORING, "X-Ombud-Subject": subject}
    online = await client.post(
        "/v1/features/credit_applicant/online", json={"entity_ids": [subject]}, headers=scoring
    )
    assert online.json()["rows"][0]["values"]["last_balance"] == v.balance
    held = await client.post(PREDICT, json=RISKY, headers=scoring)
    assert held.status_code == 202, held.text  # an adverse decision held for human review
    safe = await client.post(PREDICT, json=applicant(), headers=scoring)
    assert safe.status_code == 200, safe.text
    ask = {"model": "local-echo", "messages": [{"role": "user", "content": v.secret}]}
    chat = await client.post("/v1/chat/completions", json=ask, headers=scoring)
    assert chat.status_code == 200, chat.text
    assert v.secret in chat.text


async def _redis_naming(redis: Redis, needle: str) -> list[str]:
    found: list[str] = []
    async for raw in redis.scan_iter(count=1000):
        key = as_text(raw)
        kind = as_text(await redis.type(raw))
        if kind == "string":
            content: object = await redis.get(raw)
        elif kind == "hash":
            content = await redis.hgetall(raw)
        elif kind == "set":
            content = await redis.smembers(raw)
        elif kind == "zset":
            content = await redis.zrange(raw, 0, -1)
        elif kind == "list":
            content = await redis.lrange(raw, 0, -1)
        else:
            content = b""
        if needle in key or needle in repr(content):
            found.append(key)
    return found


def _files(container: Container, settings: Settings) -> list[Path]:
    """Every file the stores, the artifact store and the keyring keep on this machine (SQLite
    files with their logs; a PostgreSQL server's files are not ours to read)."""
    files = [p for p in settings.serving.artifact_dir.rglob("*") if p.is_file()]
    files += [settings.crypto.keyring_path] if settings.crypto.keyring_path.is_file() else []
    for store in container.regions.stores:
        url = make_url(str(store.engine.url))
        if url.get_backend_name() == "sqlite" and url.database:
            files += list(Path(url.database).parent.glob(Path(url.database).name + "*"))
    return files


async def test_an_erased_subject_is_nowhere_but_the_audit_trail(
    world: World, container: Container, settings: Settings
) -> None:
    v = Values.fresh()
    gone = await world.subject("us", **v.profile)
    kept = await world.subject("eu", name="Bystander", email="stay@example.org")
    await _give_data(world, gone, v)
    assert (await world.events(kept, 10.0, 20.0)).status_code == 201
    before = await tables_naming(container.regions.for_region("us").engine, gone)
    assert {"data_subjects", "subject_vault", "feature_events"} <= before
    stored = b"".join(path.read_bytes() for path in _files(container, settings))
    if container.regions.main.engine.dialect.name == "sqlite":
        # The file scan below can see: the event's values are in the files now.
        assert str(v.amount).encode() in stored

    started = await world.client.post(
        f"/v1/subjects/{gone}/erasure", json={"reason": "ticket 42"}, headers=world.service
    )
    assert started.status_code == 202, started.text
    erasure = started.json()
    assert (erasure["status"], erasure["report"]["key_destroyed"]) == ("pending", True)
    assert started.headers["Location"] == f"/v1/subjects/{gone}/erasure"
    # Shredded at once: the profile can no longer be read, before the cascade ran.
    profile_read = await world.client.get(
        f"/v1/subjects/{gone}", headers={**world.service, "X-Ombud-Purpose": SCORING}
    )
    assert profile_read.status_code == 410, profile_read.text
    again = await world.client.post(f"/v1/subjects/{gone}/erasure", headers=world.service)
    assert again.status_code == 200
    assert again.json()["erasure_id"] == erasure["erasure_id"]

    jobs = privacy_jobs(container)
    await world.run(ERASURE_JOB, {"erasure_id": erasure["erasure_id"]}, privacy=jobs)
    await world.run(ERASURE_JOB, {"erasure_id": erasure["erasure_id"]}, privacy=jobs)  # a retry

    done = await world.client.get(f"/v1/subjects/{gone}/erasure", headers=world.service)
    assert done.status_code == 200
    record = done.json()
    assert record["status"] == "completed"
    removed = record["report"]["removed"]
    assert removed["us"]["data_subjects"] == 1
    assert removed["us"]["feature_events"] == 1
    assert removed["main"]["predictions"] == 2
    assert removed["main"]["reviews"] == 1
    assert removed["llm_cache"]["entries"] >= 1

    for store in container.regions.stores:
        for needle in v.needles:
            assert await tables_naming(store.engine, needle) == set(), (store.name, needle)
        assert await tables_naming(store.engine, gone) <= ALLOWED, store.name
    assert container.redis is not None
    for needle in (*v.needles, gone):
        assert await _redis_naming(container.redis, needle) == [], needle
    for path in _files(container, settings):
        content = path.read_bytes()
        for needle in v.needles:
            assert needle.encode() not in content, (path, needle)

    # The bystander is untouched; a training set leaves the erased subject out.
    scientist = await world.key("data_scientist")
    rows = [{"entity_id": s, "label_time": NOW.isoformat()} for s in (gone, kept)]
    built = await world.client.post(
        "/v1/features/credit_applicant/historical", json={"rows": rows}, headers=scientist
    )
    assert built.status_code == 200, built.text
    assert [r["entity_id"] for r in built.json()["rows"]] == [kept]
    assert built.json()["excluded"] == 1
    refused = await world.events(gone, 1.0, 2.0)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["type"] == "subject_erased"

    report = await verify_database(container.sessions)
    assert report.ok, report.problems


async def test_erasure_needs_its_permission_and_the_callers_tenant(world: World) -> None:
    subject = await world.subject("eu", name="Ada")
    analyst = await world.key("analyst")
    refused = await world.client.post(f"/v1/subjects/{subject}/erasure", headers=analyst)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    world.tenant = f"t{uuid4().hex[:12]}"
    stranger = await world.key("service")
    for method in ("POST", "GET"):
        answer = await world.client.request(
            method, f"/v1/subjects/{subject}/erasure", headers=stranger
        )
        assert answer.status_code == 404, (method, answer.text)
    missing = await world.client.post(f"/v1/subjects/sub_{'0' * 32}/erasure", headers=stranger)
    assert missing.status_code == 404
    bad = await world.client.post(
        f"/v1/subjects/{subject}/erasure", json={"reason": 5, "x": 1}, headers=world.service
    )
    assert bad.status_code == 422
    not_yet = await world.client.get(f"/v1/subjects/{subject}/erasure", headers=world.service)
    assert not_yet.status_code == 404
    read = await world.client.get(
        f"/v1/subjects/{subject}", headers={**world.service, "X-Ombud-Purpose": SCORING}
    )
    assert read.status_code == 200, read.text


async def test_the_export_holds_every_category_of_the_subjects_data(world: World) -> None:
    v = Values.fresh()
    subject = await world.subject("us", **v.profile)
    await _give_data(world, subject, v)
    officer = await world.key("compliance_officer")

    answer = await world.client.post(f"/v1/subjects/{subject}/export", headers=officer)

    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert bundle["subject"] == {**bundle["subject"], "subject_id": subject, "region": "us"}
    assert (bundle["profile"]["name"], bundle["profile"]["email"]) == (v.name, v.email)
    assert bundle["consents"]["current"][SCORING]["status"] == "granted"
    assert bundle["preferences"]["current"]["automated_decision_opt_out"] is True
    [event] = bundle["features"]["events"]
    assert event["payload"]["amount"] == v.amount
    online = bundle["features"]["online"]["credit_applicant_v1"]["values"]
    assert online["last_balance"] == v.balance
    assert len(bundle["predictions"]) == 2
    assert bundle["predictions_truncated"] is False
    sent = {json_key(p["inputs"]) for p in bundle["predictions"]}
    assert {json_key(RISKY["features"]), json_key(applicant()["features"])} == sent
    assert all(p["outputs"]["decision"] in ("approve", "decline") for p in bundle["predictions"])
    assert [d["kind"] for d in bundle["decisions"]] == ["automated", "automated"]
    [review] = bundle["reviews"]
    assert review["status"] == "pending"
    assert review["inputs"] == RISKY["features"]
    purposes = {(p["purpose"], p["lawful_basis"]) for p in bundle["purposes"]}
    assert {(SCORING, "consent"), ("data_subject_request", "legal_obligation")} <= purposes
    reads = [(a["purpose"], a["categories"]) for a in bundle["access_history"]]
    assert (SCORING, ["financial"]) in reads
    assert any(purpose == "data_subject_request" for purpose, _ in reads)
    assert bundle["sources"]
    [audited] = [
        e
        for e in await audit_for(world.container, answer.headers["X-Request-Id"])
        if e.action == "subject.export"
    ]
    assert audited.subject == subject
    assert len(audited.detail["sha256"]) == 64
    assert audited.detail["counts"]["predictions"] == 2


async def test_the_export_is_refused_without_permission_elsewhere_and_after_erasure(
    world: World,
) -> None:
    subject = await world.subject("eu", name="Ada")
    analyst = await world.key("analyst")
    refused = await world.client.post(f"/v1/subjects/{subject}/export", headers=analyst)
    assert refused.status_code == 403
    tenant, world.tenant = world.tenant, f"t{uuid4().hex[:12]}"
    stranger = await world.key("service")
    assert (
        await world.client.post(f"/v1/subjects/{subject}/export", headers=stranger)
    ).status_code == 404
    world.tenant = tenant
    erased = await world.client.post(f"/v1/subjects/{subject}/erasure", headers=world.service)
    assert erased.status_code == 202
    gone = await world.client.post(f"/v1/subjects/{subject}/export", headers=world.service)
    assert gone.status_code == 410, gone.text
    assert gone.json()["type"].endswith("subject_erased")


def json_key(value: object) -> str:
    return json.dumps(value, sort_keys=True)


async def test_an_erased_subject_gets_no_new_personal_data(world: World) -> None:
    subject = await world.subject("eu", name="Ada")
    started = await world.client.post(f"/v1/subjects/{subject}/erasure", headers=world.service)
    assert started.status_code == 202
    headers = {**world.service, "X-Ombud-Purpose": SCORING, "X-Ombud-Subject": subject}
    refused = await world.client.post(PREDICT, json=applicant(), headers=headers)
    assert refused.status_code == 410, refused.text
    assert refused.json()["type"].endswith("subject_erased")
    jobs = privacy_jobs(world.container)
    await world.run(ERASURE_JOB, {"erasure_id": started.json()["erasure_id"]}, privacy=jobs)
    consent = {"purpose": SCORING, "status": "granted", "source": "web_form"}
    again = await world.client.post(
        f"/v1/subjects/{subject}/consents", json=consent, headers=world.service
    )
    assert again.status_code == 404, again.text
    still = await world.client.post(PREDICT, json=applicant(), headers=headers)
    assert still.status_code == 410, still.text
    ask = {"model": "local-echo", "messages": [{"role": "user", "content": "hello"}]}
    chat = await world.client.post("/v1/chat/completions", json=ask, headers=headers)
    assert chat.status_code == 410, chat.text
