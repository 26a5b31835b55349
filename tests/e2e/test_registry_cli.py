"""``ombud registry`` as an operator runs it, on a real SQLite file (in-process: each command
builds its own container from the environment, exactly as the installed entry point does)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic import SecretStr
from typer.testing import CliRunner

from ombud.cli.main import app
from ombud.config import CryptoSettings, DatabaseSettings, ServingSettings, Settings
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ArtifactFormat, CardFields, FeatureSpec, ServingConfig
from ombud.registry.service import RegistryService
from ombud.storage import migrate
from tests import promotion_support as churn


async def _prepare(settings: Settings) -> tuple[str, str]:
    """A migrated database with a draft version and two principals: (author id, approver id)."""
    container = Container.create(settings)
    try:
        await migrate.upgrade(container.engine)
        async with container.sessions.begin() as session:
            identity = IdentityService(
                IdentityRepository(session), container.api_key_pepper, container.clock
            )
            ids = []
            for name, role in (("author", "data_scientist"), ("approver", "model_approver")):
                created = await identity.create_api_key(tenant="acme", roles=[role], principal=name)
                ids.append((await identity.authenticate(created.token)).id)
            uri, sha256 = churn.store(container.artifacts)
            await RegistryService(RegistryRepository(session), container.clock).register_version(
                model="churn", artifact_uri=uri, sha256=sha256,
                artifact_format=ArtifactFormat.SKOPS,
                features=[FeatureSpec(name=churn.FEATURE, type="integer")],
                serving=ServingConfig(),
                card=CardFields(intended_use="Retention offers."), actor=ids[0],
            )  # fmt: skip
        return ids[0], ids[1]
    finally:
        await container.aclose()


def test_submit_approve_and_print_the_card(tmp_path: Path) -> None:
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
    author, approver = asyncio.run(_prepare(settings))
    runner = CliRunner()

    def ombud(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["registry", *args], env=env)
        return result.exit_code, result.stdout, result.stderr

    assert ombud("submit", "churn", "1", "--by", author) == (0, "churn v1: pending_review\n", "")
    code, _, error = ombud("approve", "churn", "1", "--by", author, "--reason", "mine")
    assert code == 1
    assert "needs one of the roles: model_approver" in error
    code, _, error = ombud("approve", "churn", "1", "--by", approver, "--reason", "checked")
    assert code == 1
    assert "no golden dataset" in error
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps(churn.golden_body()), encoding="utf-8")
    code, _, error = ombud("golden", "churn", str(golden), "--by", author)
    assert code == 1
    assert "needs one of the roles: model_approver" in error  # authors never set their bar
    code, out, error = ombud("golden", "churn", str(golden), "--by", approver)
    assert (code, out.split(",")[0]) == (0, f"churn: golden dataset of {churn.GOLDEN_SIZE} rows")
    code, out, _ = ombud("gate", "churn", "1")
    assert (code, json.loads(out)["passed"], json.loads(out)["dry_run"]) == (0, True, True)
    assert json.loads(out)["golden_created_by"] == approver
    code, out, error = ombud("approve", "churn", "1", "--by", approver, "--reason", "checked")
    assert (code, out) == (0, "churn v1: approved\n"), error
    card = json.loads(ombud("card", "churn", "1", "--format", "json")[1])
    assert (card["approval"]["decided_by"], card["intended_use"]) == (approver, "Retention offers.")
    assert [h["action"] for h in card["history"]] == ["register", "submit", "approve"]
    assert "churn" in ombud("list")[1]
