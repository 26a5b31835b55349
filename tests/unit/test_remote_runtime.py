"""The remote runtime against a fake inference server (``aiohttp.web`` on loopback)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr, ValidationError

from ombud.config import Environment, SecuritySettings, ServingSettings, Settings
from ombud.core.errors import InvalidRequest, ModelUnavailable, Overloaded
from ombud.registry.schemas import (
    ArtifactFormat,
    FeatureSpec,
    ModelVersion,
    ServingConfig,
    VersionStatus,
)
from ombud.serving.explain import NotExplainable
from ombud.serving.remote import RemoteRuntime

pytestmark = pytest.mark.anyio

TOKEN = "t" * 40
VERSION = ModelVersion(
    id="mv_0123",
    model="churn",
    version=3,
    status=VersionStatus.APPROVED,
    format=ArtifactFormat.SKOPS,
    artifact_uri="local:" + "ab" * 32 + ".skops",
    sha256="ab" * 32,
    features=[FeatureSpec(name="tenure", type="integer", minimum=0)],
    serving=ServingConfig(),
)


def problem(kind: str, status: int, detail: str, **extra: Any) -> web.Response:
    body = {"type": f"urn:ombud:problem:{kind}", "title": kind, "status": status}
    return web.json_response(
        {**body, "detail": detail, **extra}, status=status, content_type="application/problem+json"
    )


@dataclass
class FakeInference:
    """Answers each call with the next scripted response (default: a score of 0.25)."""

    answers: list[web.StreamResponse] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    hang: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers), await request.json()))
        if self.hang is not None:
            await self.hang.wait()
        if self.answers:
            return self.answers.pop(0)
        return web.json_response({"scores": [0.25]})


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeInference, str]]:
    inference = FakeInference()
    app = web.Application()
    app.router.add_post("/v1/internal/models/{version_id}/{action}", inference.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield inference, str(server.make_url("")).rstrip("/")
    finally:
        if inference.hang is not None:
            inference.hang.set()
        await server.close()


@pytest.fixture
async def runtime(fake: tuple[FakeInference, str]) -> AsyncIterator[RemoteRuntime]:
    remote = RemoteRuntime(fake[1], token=SecretStr(TOKEN), timeout_s=2.0)
    try:
        yield remote
    finally:
        await remote.aclose()


async def test_score_names_the_version_and_sends_the_rows_and_the_token(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime
) -> None:
    model = await runtime.get(VERSION)
    assert await runtime.score(model, model.validate({"tenure": 4})) == 0.25
    [(path, headers, body)] = fake[0].requests
    assert path == "/v1/internal/models/mv_0123/score"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    # Only the digest: the server reads the version itself (inputs, config) from its registry.
    assert body == {"sha256": VERSION.sha256, "rows": [{"tenure": 4}]}


async def test_validation_stays_in_the_gateway(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime
) -> None:
    model = await runtime.get(VERSION)
    assert await runtime.get(VERSION) is model
    assert runtime.loaded == [VERSION]
    with pytest.raises(InvalidRequest) as caught:
        model.validate({"tenure": -1, "extra": 1})
    assert {e.loc[-1] for e in caught.value.errors} == {"tenure", "extra"}
    assert fake[0].requests == []


async def test_overloaded_passes_through_with_retry_after(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime
) -> None:
    shed = problem("overloaded", 503, "churn v3 is saturated")
    shed.headers["Retry-After"] = "2"
    fake[0].answers.append(shed)
    model = await runtime.get(VERSION)
    with pytest.raises(Overloaded) as caught:
        await runtime.score(model, {"tenure": 4})
    assert caught.value.headers["Retry-After"] == "2"
    assert "saturated" in caught.value.detail


async def test_model_unavailable_passes_through_with_its_detail(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime
) -> None:
    fake[0].answers.append(problem("model_unavailable", 503, "churn v3 failed verification"))
    model = await runtime.get(VERSION)
    with pytest.raises(ModelUnavailable) as caught:
        await runtime.score(model, {"tenure": 4})
    assert type(caught.value) is ModelUnavailable
    assert caught.value.detail == "churn v3 failed verification"


@pytest.mark.parametrize(
    ("kind", "status"),
    [("model_not_found", 404), ("version_mismatch", 409), ("version_not_approved", 409)],
)
async def test_a_version_the_server_does_not_serve_is_model_unavailable(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime, kind: str, status: int
) -> None:
    fake[0].answers.append(problem(kind, status, "churn v3 is deprecated"))
    model = await runtime.get(VERSION)
    with pytest.raises(ModelUnavailable) as caught:
        await runtime.score(model, {"tenure": 4})
    assert type(caught.value) is ModelUnavailable
    assert caught.value.detail == "churn v3 is deprecated"


async def test_a_refused_token_is_model_unavailable(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime
) -> None:
    fake[0].answers.append(problem("unauthenticated", 401, "missing or wrong inference token"))
    model = await runtime.get(VERSION)
    with pytest.raises(ModelUnavailable, match="credentials"):
        await runtime.score(model, {"tenure": 4})


async def test_the_servers_validation_errors_keep_their_fields(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime
) -> None:
    errors = [{"loc": ["body", "rows", 0, "tenure"], "msg": "bad", "type": "int_type"}]
    fake[0].answers.append(problem("validation_error", 422, "invalid features", errors=errors))
    model = await runtime.get(VERSION)
    with pytest.raises(InvalidRequest) as caught:
        await runtime.score(model, {"tenure": 4})
    assert caught.value.errors[0].loc == ("body", "rows", 0, "tenure")


@pytest.mark.parametrize(
    "answer",
    [
        web.Response(status=500, text="<html>oops</html>"),
        web.json_response({"scores": []}),
        web.json_response({"scores": ["0.3"]}),
        web.Response(status=200, text="not json"),
    ],
    ids=["html-500", "no-score", "string-score", "not-json"],
)
async def test_broken_answers_are_model_unavailable(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime, answer: web.Response
) -> None:
    fake[0].answers.append(answer)
    model = await runtime.get(VERSION)
    with pytest.raises(ModelUnavailable):
        await runtime.score(model, {"tenure": 4})


async def test_explain_returns_the_explanation_or_not_explainable(
    fake: tuple[FakeInference, str], runtime: RemoteRuntime
) -> None:
    explanation = {"method": "linear", "contributions": [{"feature": "tenure"}]}
    fake[0].answers.append(web.json_response(explanation))
    fake[0].answers.append(problem("not_explainable", 422, "a k-NN model"))
    model = await runtime.get(VERSION)
    assert await runtime.explain(model, {"tenure": 4}) == explanation
    path, _, body = fake[0].requests[0]
    assert path == "/v1/internal/models/mv_0123/explain"
    assert body == {"sha256": VERSION.sha256, "features": {"tenure": 4}}
    with pytest.raises(NotExplainable, match="k-NN"):
        await runtime.explain(model, {"tenure": 4})


async def test_no_answer_in_time_is_model_unavailable(fake: tuple[FakeInference, str]) -> None:
    fake[0].hang = asyncio.Event()
    remote = RemoteRuntime(fake[1], token=None, timeout_s=0.2)
    try:
        model = await remote.get(VERSION)
        with pytest.raises(ModelUnavailable, match="timed out"):
            await remote.score(model, {"tenure": 4})
        assert "Authorization" not in fake[0].requests[0][1]
    finally:
        await remote.aclose()


async def test_a_refused_connection_is_model_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    remote = RemoteRuntime(f"http://127.0.0.1:{port}", token=None, timeout_s=2.0)
    try:
        model = await remote.get(VERSION)
        with pytest.raises(ModelUnavailable, match="did not answer"):
            await remote.score(model, {"tenure": 4})
    finally:
        await remote.aclose()


def test_settings_build_the_runtime_and_refuse_a_missing_url() -> None:
    serving = ServingSettings(
        mode="remote", inference_url="http://10.0.0.7:8100/", inference_token=SecretStr(TOKEN)
    )
    assert isinstance(RemoteRuntime.from_settings(serving), RemoteRuntime)
    with pytest.raises(ValueError, match="INFERENCE_URL"):
        ServingSettings(mode="remote")


def test_outside_dev_remote_mode_needs_a_long_token() -> None:
    def settings(token: str | None) -> Settings:
        return Settings(
            env=Environment.PROD,
            security=SecuritySettings(api_key_pepper=SecretStr("p" * 40)),
            serving=ServingSettings(
                mode="remote",
                inference_url="https://inference.internal",
                inference_token=SecretStr(token) if token is not None else None,
            ),
        )

    with pytest.raises(ValidationError, match="INFERENCE_TOKEN"):
        settings(None)
    with pytest.raises(ValidationError, match="at least 32"):
        settings("short")
    assert settings(TOKEN).serving.mode == "remote"
