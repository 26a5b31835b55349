"""Residency of LLM calls: a call about a registered subject reaches only provider deployments
in the subject's region — never another region's, not even as a fallback.

Two fake upstreams stand for two regions' providers: ``chat`` has a deployment in each, ``eu-chat``
is deployed in ``eu`` only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ombud.config import LlmSettings, NetworkSettings, PrivacySettings, Settings
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.llm.usage.tables import LlmUsageRow
from tests.fakes.llm_upstream import FakeUpstream, Fault, running_fake_upstream

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, FakeUpstream]]:
    async with running_fake_upstream() as eu, running_fake_upstream() as us:
        yield {"eu": eu, "us": us}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, upstreams: dict[str, FakeUpstream]) -> Settings:
    catalog = {
        "providers": {
            f"{region}-provider": {"kind": "openai_compatible", "base_url": up.openai_base_url}
            for region, up in upstreams.items()
        },
        "deployments": [
            {"id": "chat-eu", "provider": "eu-provider", "model": "fake-gpt", "region": "eu",
             "aliases": ["chat", "eu-chat"], "timeout_s": 1.0},
            {"id": "chat-us", "provider": "us-provider", "model": "fake-gpt", "region": "us",
             "aliases": ["chat"], "timeout_s": 1.0},
        ],
        "routing": {"max_attempts": 3, "backoff_base_s": 0.0, "backoff_max_s": 0.0},
    }  # fmt: skip
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return settings.model_copy(
        update={
            "llm": LlmSettings(catalog_file=path),
            "privacy": PrivacySettings(regions=["eu", "us"]),
            "network": NetworkSettings(
                allowed_hosts=["127.0.0.1"],
                allow_private_networks=True,
                allowed_schemes=["http", "https"],
            ),  # fmt: skip
        }
    )


@pytest.fixture
async def service(container: Container, api_key: str) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant="demo", roles=["service"])).token
    return {"Authorization": f"Bearer {token}"}


async def _subjects(
    client: httpx.AsyncClient, headers: dict[str, str], region: str, count: int
) -> list[str]:
    made = []
    for _ in range(count):
        answer = await client.post("/v1/subjects", json={"region": region}, headers=headers)
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["subject_id"])
    return made


async def _ask(
    client: httpx.AsyncClient, headers: dict[str, str], model: str, subject: str | None, n: int
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": f"question {n}"}]}
    extra = {"X-Ombud-Subject": subject} if subject is not None else {}
    return await client.post(CHAT, json=body, headers={**headers, **extra})


async def _usage(container: Container, subjects: list[str]) -> set[str | None]:
    async with container.sessions() as session:
        stmt = select(LlmUsageRow.deployment).where(LlmUsageRow.subject.in_(subjects))
        return set(await session.scalars(stmt))


async def test_a_subjects_llm_calls_reach_only_its_regions_provider(
    client: httpx.AsyncClient,
    container: Container,
    service: dict[str, str],
    upstreams: dict[str, FakeUpstream],
) -> None:
    eu, us = await _subjects(client, service, "eu", 5), await _subjects(client, service, "us", 10)
    for n, subject in enumerate(us):
        answer = await _ask(client, service, "chat", subject, n)
        assert answer.status_code == 200, answer.text
    assert upstreams["eu"].requests == []
    assert len(upstreams["us"].requests) == len(us)
    assert await _usage(container, us) == {"chat-us"}

    for n, subject in enumerate(eu):
        assert (await _ask(client, service, "chat", subject, 100 + n)).status_code == 200
    assert len(upstreams["eu"].requests) == len(eu)
    assert await _usage(container, eu) == {"chat-eu"}


async def test_no_deployment_in_the_subjects_region_is_a_refusal_not_a_detour(
    client: httpx.AsyncClient, service: dict[str, str], upstreams: dict[str, FakeUpstream]
) -> None:
    [eu] = await _subjects(client, service, "eu", 1)
    [us] = await _subjects(client, service, "us", 1)
    refused = await _ask(client, service, "eu-chat", us, 1)
    assert refused.status_code == 403, refused.text
    assert "outside the allowed regions ['us']" in refused.text
    # The region's own provider failing does not send the call to the other region.
    upstreams["us"].inject(Fault.status(503), times=3)
    failed = await _ask(client, service, "chat", us, 2)
    assert failed.status_code in (502, 503), failed.text
    assert upstreams["eu"].requests == []
    assert (await _ask(client, service, "eu-chat", eu, 3)).status_code == 200
    # A call about no subject has no region: either deployment may take it.
    assert (await _ask(client, service, "eu-chat", None, 4)).status_code == 200
