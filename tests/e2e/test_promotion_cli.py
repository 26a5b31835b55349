"""``ombud registry golden|gate``: setting a golden dataset and dry-running the gate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic import SecretStr
from typer.testing import CliRunner

from ombud.cli.main import app
from ombud.config import CryptoSettings, DatabaseSettings, ServingSettings, Settings
from ombud.container import Container
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ArtifactFormat, FeatureSpec, ServingConfig, VersionStatus
from ombud.registry.service import RegistryService
from ombud.storage import migrate
from tests import promotion_support as churn


async def _prepare(settings: Settings) -> None:
    """v1 (a real churn model) approved by the operator; v2 a draft trained on shuffled labels."""
    container = Container.create(settings)
    try:
        await migrate.upgrade(container.engine)
        async with container.sessions.begin() as session:
            registry = RegistryService(RegistryRepository(session), container.clock)
            for status, shuffled in ((VersionStatus.APPROVED, False), (VersionStatus.DRAFT, True)):
                uri, sha256 = churn.store(container.artifacts, shuffled=shuffled)
                await registry.register_version(
                    model="churn", artifact_uri=uri, sha256=sha256,
                    artifact_format=ArtifactFormat.SKOPS,
                    features=[FeatureSpec(name=churn.FEATURE, type="integer")],
                    serving=ServingConfig(), status=status,
                )  # fmt: skip
    finally:
        await container.aclose()


def test_golden_then_gate_reports_a_failing_candidate(tmp_path: Path) -> None:
    env = {
        "OMBUD_DATABASE__URL": f"sqlite:///{tmp_path / 'ombud.db'}",
        "OMBUD_SERVING__ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "OMBUD_CRYPTO__KEYRING_PATH": str(tmp_path / "keyring.json"),
    }
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(env["OMBUD_DATABASE__URL"])),
        serving=ServingSettings(artifact_dir=tmp_path / "artifacts"),
        crypto=CryptoSettings(keyring_path=tmp_path / "keyring.json"),
    )
    asyncio.run(_prepare(settings))
    runner = CliRunner()

    def ombud(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["registry", *args], env=env)
        return result.exit_code, result.stdout, result.stderr

    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": [{"features": {"tenure_months": 1}, "label": "yes"}]}', "utf-8")
    code, _, error = ombud("golden", "churn", str(bad))
    assert code == 1
    assert "label" in error
    assert ombud("gate", "churn", "2")[0] == 1  # no golden dataset yet

    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps(churn.golden_body()), encoding="utf-8")
    assert ombud("golden", "churn", str(golden))[0] == 0
    code, out, _ = ombud("gate", "churn", "2")

    report = json.loads(out)
    assert (code, report["passed"], report["baseline_version"]) == (2, False, 1)
    assert report["golden_created_by"] == "operator"
    assert any(reason.startswith("roc_auc drops by") for reason in report["reasons"])
    assert ombud("show", "churn", "--version", "2")[1].count('"status":"draft"') == 1
