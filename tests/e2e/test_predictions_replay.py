"""``ombud predictions replay`` as an operator runs it (in-process: the command builds its own
container from the environment, as the installed entry point does), on every storage backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from ombud.app import create_app
from ombud.audit.tables import AuditEventRow
from ombud.cli.main import app as cli
from ombud.config import Settings
from ombud.container import Container
from ombud.demo.seed import seed_demo
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.predictions.tables import PredictionRow
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, bearer

SUBJECT = "subj-7f3a"


@dataclass(frozen=True)
class Predicted:
    prediction_id: str
    score: float
    analyst_id: str
    auditor_id: str


def _env(settings: Settings) -> dict[str, str]:
    return {
        "OMBUD_DATABASE__URL": settings.database.url.get_secret_value(),
        "OMBUD_SERVING__ARTIFACT_DIR": str(settings.serving.artifact_dir),
        "OMBUD_CRYPTO__KEYRING_PATH": str(settings.crypto.keyring_path),
        "OMBUD_JOBS__EMBEDDED_WORKER": "false",
    }


async def _principal_id(container: Container, token: str) -> str:
    async with container.sessions() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        return (await identity.authenticate(token)).id


async def _predict(settings: Settings) -> Predicted:
    """Seed the demo, predict once over HTTP for ``SUBJECT``, add a compliance officer."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        container: Container = application.state.container
        key = (await seed_demo(container)).api_key
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            headers = {**bearer(key), "X-Ombud-Subject": SUBJECT}
            answer = await http.post(PREDICT, json=applicant(), headers=headers)
        assert answer.status_code == 200, answer.text
        async with container.sessions.begin() as session:
            identity = IdentityService(
                IdentityRepository(session), container.api_key_pepper, container.clock
            )
            auditor = await identity.create_api_key(
                tenant="demo", roles=["compliance_officer"], principal="auditor"
            )
        return Predicted(
            prediction_id=answer.json()["prediction_id"],
            score=answer.json()["score"],
            analyst_id=await _principal_id(container, key),
            auditor_id=await _principal_id(container, auditor.token),
        )


async def _in_container(settings: Settings, action: str, prediction_id: str) -> list[str]:
    """Alter the record's score (``alter:<delta>``), erase its subject, or read the replay
    audit events' outcomes."""
    container = Container.create(settings)
    try:
        if action.startswith("alter:"):
            delta = float(action.removeprefix("alter:"))
            async with container.sessions.begin() as session:
                row = await session.get(PredictionRow, prediction_id)
                assert row is not None
                outputs = {**row.outputs, "score": row.outputs["score"] + delta}
                await session.execute(
                    update(PredictionRow)
                    .where(PredictionRow.id == prediction_id)
                    .values(outputs=outputs)
                )
        elif action == "erase":
            assert await container.keys.destroy(scope="subject", owner=SUBJECT)
        elif action == "empty":
            await empty_database(container)
        stmt = select(AuditEventRow.outcome, AuditEventRow.reason, AuditEventRow.actor).where(
            AuditEventRow.action == "prediction.replay"
        )
        async with container.sessions() as session:
            rows = (await session.execute(stmt.order_by(AuditEventRow.seq))).all()
        return [f"{outcome}:{reason}:{actor}" for outcome, reason, actor in rows]
    finally:
        await container.aclose()


@pytest.fixture
def predicted(settings: Settings) -> Iterator[Predicted]:
    yield asyncio.run(_predict(settings))
    asyncio.run(_in_container(settings, "empty", ""))


def _replay(settings: Settings, prediction_id: str, *extra: str) -> Result:
    return CliRunner().invoke(
        cli, ["predictions", "replay", prediction_id, *extra], env=_env(settings)
    )


def test_a_recorded_prediction_replays_equal(settings: Settings, predicted: Predicted) -> None:
    result = _replay(settings, predicted.prediction_id)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["equal"] is True
    assert report["bit_equal"] is True
    assert report["abs_diff"] == 0.0
    assert report["recorded"]["score"] == report["replayed"]["score"] == predicted.score
    assert report["recorded"]["decision"] == report["replayed"]["decision"]
    assert report["model"] == "credit-risk"
    assert len(report["artifact_sha256"]) == 64
    assert report["feature_views"] == {}
    audited = asyncio.run(_in_container(settings, "read", predicted.prediction_id))
    assert audited == ["success:None:operator"]


def test_a_score_off_in_the_last_bits_still_replays_equal(
    settings: Settings, predicted: Predicted
) -> None:
    # What a row scored inside a micro-batch can differ by from the same row scored alone.
    asyncio.run(_in_container(settings, "alter:1e-15", predicted.prediction_id))
    result = _replay(settings, predicted.prediction_id)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["equal"] is True
    assert report["bit_equal"] is False
    assert 0 < report["abs_diff"] <= report["tolerance"] == 1e-9
    assert report["replayed"]["score"] == predicted.score != report["recorded"]["score"]
    audited = asyncio.run(_in_container(settings, "read", predicted.prediction_id))
    assert audited == ["success:None:operator"]


def test_an_altered_score_does_not_replay(settings: Settings, predicted: Predicted) -> None:
    asyncio.run(_in_container(settings, "alter:1e-3", predicted.prediction_id))
    result = _replay(settings, predicted.prediction_id, "--by", predicted.auditor_id)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["equal"] is False
    assert report["bit_equal"] is False
    assert abs(report["abs_diff"] - 1e-3) < 1e-12
    assert report["replayed"]["score"] == predicted.score != report["recorded"]["score"]
    audited = asyncio.run(_in_container(settings, "read", predicted.prediction_id))
    assert audited == [f"error:replay_differs:{predicted.auditor_id}"]


def test_an_erased_subject_cannot_be_replayed(settings: Settings, predicted: Predicted) -> None:
    asyncio.run(_in_container(settings, "erase", predicted.prediction_id))
    result = _replay(settings, predicted.prediction_id)
    assert result.exit_code == 2, result.output
    assert "subject was erased" in result.stderr
    assert result.stdout == ""
    audited = asyncio.run(_in_container(settings, "read", predicted.prediction_id))
    assert audited == ["error:subject_erased:operator"]


def test_replay_needs_the_permission_and_a_known_id(
    settings: Settings, predicted: Predicted
) -> None:
    refused = _replay(settings, predicted.prediction_id, "--by", predicted.analyst_id)
    assert refused.exit_code == 3, refused.output
    unknown = _replay(settings, "pred_" + "0" * 32)
    assert unknown.exit_code == 3
    assert "no prediction" in unknown.stderr
    assert asyncio.run(_in_container(settings, "read", predicted.prediction_id)) == []
