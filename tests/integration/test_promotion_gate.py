"""The promotion gate over HTTP: golden datasets, thresholds, dry runs and refused approvals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ombud.audit.events import Outcome
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.registry import promotion
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ArtifactFormat, FeatureSpec, ServingConfig, VersionStatus
from ombud.registry.service import RegistryService
from ombud.serving.artifacts import STORE_UNAVAILABLE, ArtifactIntegrityError
from ombud.serving.runtime import LoadedModel
from tests import promotion_support as churn
from tests.integration.helpers import audit_for

pytestmark = pytest.mark.anyio

MODELS = "/v1/registry/models"
CHURN = f"{MODELS}/churn"


@dataclass(frozen=True)
class Team:
    scientist: dict[str, str]
    approver: dict[str, str]
    analyst: dict[str, str]


async def _headers(container: Container, name: str, role: str) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        created = await identity.create_api_key(tenant="acme", roles=[role], principal=name)
    return {"Authorization": f"Bearer {created.token}"}


@pytest.fixture
async def team(container: Container, client: httpx.AsyncClient) -> Team:
    people = Team(
        scientist=await _headers(container, "scientist", "data_scientist"),
        approver=await _headers(container, "approver", "model_approver"),
        analyst=await _headers(container, "analyst", "analyst"),
    )
    created = await client.post(MODELS, json={"name": "churn"}, headers=people.scientist)
    assert created.status_code == 201, created.text
    return people


async def _version(
    client: httpx.AsyncClient,
    container: Container,
    team: Team,
    *,
    shuffled: bool = False,
    seed: int = 1,
    threshold: float = 0.5,
    submit: bool = True,
) -> int:
    uri, sha256 = churn.store(container.artifacts, shuffled=shuffled, seed=seed)
    body: dict[str, Any] = {
        "artifact_uri": uri, "sha256": sha256, "format": "skops",
        "input_schema": [{"name": churn.FEATURE, "type": "integer", "minimum": 0}],
        "serving_config": {"threshold": threshold},
    }  # fmt: skip
    created = await client.post(f"{CHURN}/versions", json=body, headers=team.scientist)
    assert created.status_code == 201, created.text
    version: int = created.json()["version"]
    if submit:
        submitted = await client.post(f"{CHURN}/versions/{version}/submit", headers=team.scientist)
        assert submitted.status_code == 200, submitted.text
    return version


async def _golden(client: httpx.AsyncClient, team: Team, **changes: Any) -> httpx.Response:
    """Set the golden rows as the approver: the side that owns the bar sets them."""
    return await client.put(f"{CHURN}/golden", json=churn.golden_body(**changes),
                            headers=team.approver)  # fmt: skip


async def _approve(client: httpx.AsyncClient, team: Team, version: int) -> httpx.Response:
    url = f"{CHURN}/versions/{version}/approve"
    return await client.post(url, json={"reason": "gate passed"}, headers=team.approver)


async def _status(client: httpx.AsyncClient, team: Team, version: int) -> str:
    read = await client.get(f"{CHURN}/versions/{version}", headers=team.analyst)
    status: str = read.json()["approval"]["status"]
    return status


async def test_an_equivalent_model_passes_and_its_report_is_stored_and_audited(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    first = await _version(client, container, team)
    stored = await _golden(client, team)
    assert stored.status_code == 200, stored.text
    assert stored.json()["rows"] == churn.GOLDEN_SIZE
    assert (await _approve(client, team, first)).status_code == 200
    second = await _version(client, container, team, seed=2)

    approved = await _approve(client, team, second)

    assert approved.status_code == 200, approved.text
    report = await client.get(f"{CHURN}/versions/{second}/promotion-report", headers=team.analyst)
    assert report.status_code == 200
    body = report.json()
    assert (body["passed"], body["reasons"], body["baseline_version"]) == (True, [], first)
    assert body["golden_sha256"] == stored.json()["sha256"]
    assert body["golden_rows"] == churn.GOLDEN_SIZE
    assert body["metrics"]["roc_auc"]["candidate"] > 0.7
    assert abs(body["metrics"]["roc_auc"]["delta"]) < 0.02
    assert body["score_change"]["max_abs"] < 0.1
    assert body["dry_run"] is False
    events = await audit_for(container, approved.headers["X-Request-Id"])
    assert [(e.action, e.outcome) for e in events] == [
        ("registry.promotion_gate", Outcome.SUCCESS), ("registry.approve", Outcome.SUCCESS),
    ]  # fmt: skip
    assert events[0].detail["report_id"] == body["id"]


async def test_a_worse_model_is_refused_with_the_reasons_and_the_report_id(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    first = await _version(client, container, team)
    await _golden(client, team)
    assert (await _approve(client, team, first)).status_code == 200
    bad = await _version(client, container, team, shuffled=True)

    refused = await _approve(client, team, bad)

    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"] == "urn:ombud:problem:promotion_refused"
    assert "roc_auc drops by" in problem["detail"]
    report = (
        await client.get(f"{CHURN}/versions/{bad}/promotion-report", headers=team.analyst)
    ).json()
    assert report["id"] in problem["detail"]
    assert report["passed"] is False
    assert any(r.startswith("roc_auc drops by") for r in report["reasons"])
    assert report["metrics"]["roc_auc"]["delta"] < -0.02
    assert await _status(client, team, bad) == "pending_review"
    events = await audit_for(container, refused.headers["X-Request-Id"])
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("registry.promotion_gate", Outcome.REJECTED, "promotion_refused"),
        ("registry.approve", Outcome.REJECTED, "promotion_refused"),
    ]


async def test_decision_flips_beyond_the_policy_are_refused(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    first = await _version(client, container, team)
    await _golden(client, team)
    assert (await _approve(client, team, first)).status_code == 200
    policy = {"max_metric_drop": {}, "min_metrics": {}, "max_decision_change_fraction": 0.0}
    by_scientist = await client.put(f"{CHURN}/promotion-policy", json=policy,
                                    headers=team.scientist)  # fmt: skip
    assert by_scientist.status_code == 403
    put = await client.put(f"{CHURN}/promotion-policy", json=policy, headers=team.approver)
    assert put.status_code == 200, put.text
    # The same model with a lower threshold: identical scores, some decisions flip.
    lenient = await _version(client, container, team, threshold=0.3)

    refused = await _approve(client, team, lenient)

    assert refused.status_code == 409, refused.text
    assert "change decision from v1, more than the 0.00% allowed" in refused.json()["detail"]
    report = (
        await client.get(f"{CHURN}/versions/{lenient}/promotion-report", headers=team.analyst)
    ).json()
    assert report["score_change"]["max_abs"] == 0.0
    assert report["decision_change_fraction"] > 0
    assert report["policy"]["max_decision_change_fraction"] == 0.0


async def test_without_a_golden_dataset_nothing_can_be_approved(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    version = await _version(client, container, team)

    refused = await _approve(client, team, version)

    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:ombud:problem:promotion_refused"
    assert "no golden dataset" in refused.json()["detail"]
    assert await _status(client, team, version) == "pending_review"
    missing = await client.get(f"{CHURN}/versions/{version}/promotion-report",
                               headers=team.analyst)  # fmt: skip
    assert missing.status_code == 404
    assert (await client.get(f"{CHURN}/golden", headers=team.analyst)).status_code == 404


async def test_bad_golden_rows_are_listed_and_nothing_is_stored(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    no_version = await _golden(client, team)
    assert no_version.status_code == 409
    await _version(client, container, team, submit=False)
    rows = churn.golden_rows()
    rows[3] = {"features": {churn.FEATURE: -1}, "label": 1}
    rows[7] = {"features": {"tenure": 5}, "label": 0}

    bad = await _golden(client, team, rows=rows)
    one_class = await _golden(client, team, rows=[{"features": {churn.FEATURE: 3}, "label": 1}] * 5)
    bad_label = await _golden(client, team, rows=[{"features": {churn.FEATURE: 3}, "label": 2}] * 5)

    assert bad.status_code == 422
    assert "rows 3, 7" in bad.json()["detail"]
    locations = {tuple(e["loc"][:3]) for e in bad.json()["errors"]}
    assert locations == {("body", "rows", 3), ("body", "rows", 7)}
    assert [one_class.status_code, bad_label.status_code] == [422, 422]
    assert "both labels" in one_class.json()["detail"]
    assert (await client.get(f"{CHURN}/golden", headers=team.analyst)).status_code == 404


async def test_a_dry_run_reports_without_approving(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    version = await _version(client, container, team)
    await _golden(client, team)
    url = f"{CHURN}/versions/{version}/promotion-report"

    by_analyst = await client.post(url, headers=team.analyst)
    dry = await client.post(url, headers=team.scientist)

    assert by_analyst.status_code == 403
    assert dry.status_code == 201, dry.text
    assert (dry.json()["passed"], dry.json()["dry_run"], dry.json()["baseline_version"]) == (
        True, True, None,
    )  # fmt: skip
    assert dry.json()["notes"] == [
        "no approved version to compare with: only the floors were checked"
    ]
    assert await _status(client, team, version) == "pending_review"
    latest = await client.get(url, headers=team.analyst)
    assert latest.json()["id"] == dry.json()["id"]
    golden = (await client.get(f"{CHURN}/golden", headers=team.analyst)).json()
    assert (golden["rows"], golden["description"]) == (churn.GOLDEN_SIZE, "held-out churn sample")
    policy = (await client.get(f"{CHURN}/promotion-policy", headers=team.analyst)).json()
    assert policy["updated_by"] is None
    assert policy["max_metric_drop"] == {"roc_auc": 0.02, "accuracy": 0.03}


async def test_the_demo_seed_registers_the_held_out_split_as_golden(
    client: httpx.AsyncClient, container: Container, team: Team, api_key: str
) -> None:
    demo = f"{MODELS}/credit-risk"
    golden = await client.get(f"{demo}/golden", headers=team.analyst)
    dry = await client.post(f"{demo}/versions/1/promotion-report", headers=team.scientist)

    assert (golden.status_code, golden.json()["rows"], golden.json()["created_by"]) == (
        200, 200, "system",
    )  # fmt: skip
    assert dry.status_code == 201, dry.text
    assert dry.json()["passed"] is True
    assert dry.json()["metrics"]["roc_auc"]["candidate"] > 0.75


async def test_only_an_approver_sets_the_golden_rows_and_reports_name_who_did(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    version = await _version(client, container, team)
    stored = await _golden(client, team)
    assert stored.status_code == 200, stored.text
    # An author hand-picking the rows their version is judged on:
    picked = [row for row in churn.golden_rows() if row["label"] == 1][:3] + [
        row for row in churn.golden_rows() if row["label"] == 0
    ][:3]

    by_author = await client.put(f"{CHURN}/golden", json=churn.golden_body(rows=picked),
                                 headers=team.scientist)  # fmt: skip

    assert by_author.status_code == 403, by_author.text
    golden = (await client.get(f"{CHURN}/golden", headers=team.analyst)).json()
    assert (golden["sha256"], golden["rows"]) == (stored.json()["sha256"], churn.GOLDEN_SIZE)
    setter = golden["created_by"]
    events = await audit_for(container, stored.headers["X-Request-Id"])
    assert [(e.action, e.actor) for e in events] == [("registry.golden.put", setter)]
    refused = await audit_for(container, by_author.headers["X-Request-Id"])
    assert [(e.outcome, e.actor != setter) for e in refused] == [(Outcome.DENIED, True)]
    dry = await client.post(f"{CHURN}/versions/{version}/promotion-report", headers=team.scientist)
    assert dry.status_code == 201, dry.text
    assert (dry.json()["golden_sha256"], dry.json()["golden_created_by"]) == (
        stored.json()["sha256"], setter,
    )  # fmt: skip
    gate_events = await audit_for(container, dry.headers["X-Request-Id"])
    assert gate_events[0].detail["golden_created_by"] == setter


async def _operator_version(container: Container, *, seed: int = 1) -> tuple[int, str]:
    """An approved version installed by the operator (never loaded yet); (version, uri)."""
    uri, sha256 = churn.store(container.artifacts, seed=seed)
    async with container.sessions.begin() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        created = await registry.register_version(
            model="churn", artifact_uri=uri, sha256=sha256, artifact_format=ArtifactFormat.SKOPS,
            features=[FeatureSpec(name=churn.FEATURE, type="integer", minimum=0)],
            serving=ServingConfig(), status=VersionStatus.APPROVED,
        )  # fmt: skip
    return created.version, uri


async def test_a_baseline_the_store_cannot_serve_now_refuses_the_approval_with_503(
    client: httpx.AsyncClient, container: Container, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline, baseline_uri = await _operator_version(container)
    await _golden(client, team)
    candidate = await _version(client, container, team, seed=2)
    read = container.artifacts.read_verified

    def outage(uri: str, sha256: str) -> bytes:
        if uri == baseline_uri:
            raise ArtifactIntegrityError("S3 timed out", reason=STORE_UNAVAILABLE)
        return read(uri, sha256)

    monkeypatch.setattr(container.artifacts, "read_verified", outage)

    refused = await _approve(client, team, candidate)
    dry = await client.post(f"{CHURN}/versions/{candidate}/promotion-report",
                            headers=team.scientist)  # fmt: skip

    assert refused.status_code == 503, refused.text
    assert refused.json()["type"] == "urn:ombud:problem:model_unavailable"
    assert f"cannot load the baseline v{baseline}" in refused.json()["detail"]
    assert "store unavailable" in refused.json()["detail"]
    assert dry.status_code == 503, dry.text
    assert await _status(client, team, candidate) == "pending_review"
    report = await client.get(f"{CHURN}/versions/{candidate}/promotion-report",
                              headers=team.analyst)  # fmt: skip
    assert report.status_code == 404  # nothing judged on floors alone
    events = await audit_for(container, refused.headers["X-Request-Id"])
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("registry.approve", Outcome.ERROR, "model_unavailable")
    ]
    monkeypatch.setattr(container.artifacts, "read_verified", read)
    assert (await _approve(client, team, candidate)).status_code == 200


async def test_a_baseline_whose_artifact_is_refused_leaves_only_the_floors(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    uri, _ = churn.store(container.artifacts, seed=1)
    _, other_sha256 = churn.store(container.artifacts, seed=3)
    async with container.sessions.begin() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        await registry.register_version(
            model="churn", artifact_uri=uri, sha256=other_sha256,  # altered: digests differ
            artifact_format=ArtifactFormat.SKOPS,
            features=[FeatureSpec(name=churn.FEATURE, type="integer", minimum=0)],
            serving=ServingConfig(), status=VersionStatus.APPROVED,
        )  # fmt: skip
    await _golden(client, team)
    candidate = await _version(client, container, team, seed=2)

    approved = await _approve(client, team, candidate)

    assert approved.status_code == 200, approved.text
    report = (
        await client.get(f"{CHURN}/versions/{candidate}/promotion-report", headers=team.analyst)
    ).json()
    assert report["baseline_version"] == 1
    assert report["notes"] == [
        "baseline v1 cannot be scored on the golden rows (churn v1 failed verification: "
        "sha256 mismatch): only the floors were checked"
    ]


async def test_scores_that_are_not_numbers_fail_the_candidate(
    client: httpx.AsyncClient, container: Container, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = await _version(client, container, team)
    assert (await _golden(client, team)).status_code == 200
    monkeypatch.setattr(LoadedModel, "score_many", lambda self, rows: [math.nan] * len(rows))

    refused = await _approve(client, team, version)

    assert refused.status_code == 409, refused.text
    expected = f"v{version} gave {churn.GOLDEN_SIZE} scores that are not finite numbers"
    assert expected in refused.json()["detail"]
    events = await audit_for(container, refused.headers["X-Request-Id"])
    assert [(e.action, e.outcome) for e in events] == [
        ("registry.promotion_gate", Outcome.REJECTED), ("registry.approve", Outcome.REJECTED),
    ]  # fmt: skip


async def test_a_fault_in_the_metrics_is_a_problem_and_audited(
    client: httpx.AsyncClient, container: Container, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = await _version(client, container, team)
    assert (await _golden(client, team)).status_code == 200

    def broken(*args: object) -> None:
        raise ValueError("Input contains NaN")

    monkeypatch.setattr(promotion, "judge", broken)

    refused = await _approve(client, team, version)

    assert refused.status_code == 500, refused.text
    assert refused.json()["type"] == "urn:ombud:problem:model_error"
    assert "could not compute the metrics" in refused.json()["detail"]
    assert "ValueError: Input contains NaN" in refused.json()["detail"]
    assert await _status(client, team, version) == "pending_review"
    events = await audit_for(container, refused.headers["X-Request-Id"])
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("registry.approve", Outcome.ERROR, "model_error")
    ]


async def test_during_a_rollout_the_baseline_is_the_deployments_stable_version(
    client: httpx.AsyncClient, container: Container, team: Team
) -> None:
    stable, _ = await _operator_version(container, seed=1)
    rolled_out, _ = await _operator_version(container, seed=3)
    engineer = await _headers(container, "engineer", "ml_engineer")
    body = {"model": "churn", "stable_version": stable, "candidate_version": rolled_out,
            "mode": "canary", "percent": 10}  # fmt: skip
    deployed = await client.post("/v1/deployments", json=body, headers=engineer)
    assert deployed.status_code == 201, deployed.text
    await _golden(client, team)
    candidate = await _version(client, container, team, seed=2)
    url = f"{CHURN}/versions/{candidate}/promotion-report"

    during = await client.post(url, headers=team.scientist)
    ended = await client.post(f"/v1/deployments/{deployed.json()['id']}/rollback",
                              json={"reason": "done"}, headers=engineer)  # fmt: skip
    after = await client.post(url, headers=team.scientist)

    assert during.status_code == 201, during.text
    assert during.json()["baseline_version"] == stable
    assert ended.status_code == 200, ended.text
    assert after.json()["baseline_version"] == rolled_out  # the newest approved again
