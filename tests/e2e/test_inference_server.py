"""The hybrid pattern: a gateway in ``remote`` mode scoring through a real
``ombud inference-server`` process, on every storage backend."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from pydantic import SecretStr

from ombud.app import create_app
from ombud.config import Settings
from ombud.container import Container
from ombud.demo.seed import seed_demo
from ombud.registry.schemas import ModelVersion
from ombud.serving.remote import RemoteRuntime
from tests.integration.helpers import PREDICT, applicant, bearer, prediction_count

pytestmark = pytest.mark.anyio

TOKEN = "inference-token-for-tests-" + "0" * 16
PROBLEM = "urn:ombud:problem:"


def server_env(settings: Settings, artifact_dir: Path) -> dict[str, str]:
    return {
        "OMBUD_DATABASE__URL": settings.database.url.get_secret_value(),
        "OMBUD_SERVING__ARTIFACT_DIR": str(artifact_dir),
        "OMBUD_SERVING__INFERENCE_TOKEN": TOKEN,
        "OMBUD_SERVING__INFERENCE_THREADS": "2",
        "OMBUD_CRYPTO__KEYRING_PATH": str(settings.crypto.keyring_path),
        "OMBUD_JOBS__EMBEDDED_WORKER": "false",
    }


@contextmanager
def inference_server(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``ombud inference-server --port 0``; yields its base URL and process, stops it after."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ombud", "inference-server", "--port", "0"],
        env={**clean, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"inference server did not start: {line!r}")
        yield line.split()[-1], process
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def remote(settings: Settings, url: str, token: str = TOKEN) -> Settings:
    serving = settings.serving.model_copy(
        update={"mode": "remote", "inference_url": url, "inference_token": SecretStr(token)}
    )
    return settings.model_copy(update={"serving": serving})


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    """An in-process gateway app (its lifespan running) and a client for it."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            yield http, application.state.container


def score_body(version: ModelVersion, rows: list[dict[str, object]]) -> dict[str, object]:
    return {"sha256": version.sha256, "rows": rows}


async def test_remote_mode_scores_exactly_as_local_mode(
    client: httpx.AsyncClient, container: Container, settings: Settings, artifact_dir: Path
) -> None:
    key = (await seed_demo(container)).api_key
    applicants = [applicant(), applicant(credit_amount=9000), applicant(duration_months=6)]
    local = [
        (await client.post(PREDICT, json=body, headers=bearer(key))).json() for body in applicants
    ]
    with inference_server(server_env(settings, artifact_dir)) as (base, _):
        async with gateway(remote(settings, base)) as (http, remote_container):
            answers: list[httpx.Response] = []

            async def predict(body: dict[str, object]) -> None:
                answers.append(await http.post(PREDICT, json=body, headers=bearer(key)))

            async with anyio.create_task_group() as group:  # concurrent: batched over there
                for body in applicants:
                    group.start_soon(predict, body)
            assert isinstance(remote_container.runtime, RemoteRuntime)
            assert remote_container.local_runtime.loaded == []  # no model loaded in the gateway
        async with httpx.AsyncClient(base_url=base) as direct:
            ready = (await direct.get("/readyz")).json()
            metrics = (await direct.get("/metrics")).text
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert all("score" in p for p in local), local  # none of them was sent to review
    remote_scores = sorted((a.json()["score"], a.json()["decision"]) for a in answers)
    assert remote_scores == sorted((p["score"], p["decision"]) for p in local)
    assert ready == {"status": "ready", "loaded": ["credit-risk v1"]}
    assert 'route="/v1/internal/models/{version_id}/score"' in metrics
    assert await prediction_count(container) == 6  # the gateway records remote calls as ever


async def test_wrong_token_is_refused_and_a_stopped_server_is_503(
    client: httpx.AsyncClient, container: Container, settings: Settings, artifact_dir: Path
) -> None:
    seed = await seed_demo(container)
    body = score_body(seed.model, [applicant()["features"]])
    path = f"/v1/internal/models/{seed.model.id}/score"
    with inference_server(server_env(settings, artifact_dir)) as (base, process):
        async with httpx.AsyncClient(base_url=base) as direct:
            for headers in ({}, {"Authorization": "Bearer not-the-token"}):
                refused = await direct.post(path, json=body, headers=headers)
                assert refused.status_code == 401
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.json()["type"] == PROBLEM + "unauthenticated"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            unknown = await direct.post(
                "/v1/internal/models/mv_other/score", json=body, headers=auth
            )
            assert unknown.status_code == 404
            assert unknown.json()["type"] == PROBLEM + "model_not_found"
            legacy = {"version": seed.model.model_dump(mode="json"), "rows": body["rows"]}
            mismatch = await direct.post(
                "/v1/internal/models/mv_other/score", json=legacy, headers=auth
            )
            assert mismatch.status_code == 422
            assert (await direct.post(path, json=legacy, headers=auth)).status_code == 200
        async with gateway(remote(settings, base, token="w" * 40)) as (http, _):
            wrong = await http.post(PREDICT, json=applicant(), headers=bearer(seed.api_key))
        assert wrong.status_code == 503
        assert wrong.json()["type"] == PROBLEM + "model_unavailable"

        async with gateway(remote(settings, base)) as (http, _):
            served = await http.post(PREDICT, json=applicant(), headers=bearer(seed.api_key))
            assert served.status_code == 200
            stop(process)
            gone = await http.post(PREDICT, json=applicant(), headers=bearer(seed.api_key))
    assert gone.status_code == 503
    assert gone.json()["type"] == PROBLEM + "model_unavailable"
    assert "did not answer" in gone.json()["detail"]
    assert await prediction_count(container) == 1  # refusals record no prediction


async def test_a_tampered_artifact_on_the_inference_side_is_refused(
    client: httpx.AsyncClient,
    container: Container,
    settings: Settings,
    artifact_dir: Path,
    tmp_path: Path,
) -> None:
    seed = await seed_demo(container)
    # The inference server's own copy of the store (and of the trusted keys), then altered.
    tampered = tmp_path / "inference" / "artifacts"
    shutil.copytree(artifact_dir, tampered)
    if (artifact_dir.parent / "signing").exists():
        shutil.copytree(artifact_dir.parent / "signing", tmp_path / "inference" / "signing")
    artifact = tampered / seed.model.artifact_uri.removeprefix("local:")
    artifact.write_bytes(artifact.read_bytes() + b"\0")

    with inference_server(server_env(settings, tampered)) as (base, _):
        async with gateway(remote(settings, base)) as (http, _):
            refused = await http.post(PREDICT, json=applicant(), headers=bearer(seed.api_key))
        async with httpx.AsyncClient(base_url=base) as direct:
            direct_answer = await direct.post(
                f"/v1/internal/models/{seed.model.id}/score",
                json=score_body(seed.model, [applicant()["features"]]),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
    assert refused.status_code == 503
    assert refused.json()["type"] == PROBLEM + "model_unavailable"
    assert "failed verification" in refused.json()["detail"]
    assert direct_answer.status_code == 503
    assert direct_answer.json()["type"] == PROBLEM + "model_unavailable"
    assert await prediction_count(container) == 0
    # The gateway's own (untouched) store still serves the same version locally.
    assert (await client.post(PREDICT, json=applicant(), headers=bearer(seed.api_key))).is_success
