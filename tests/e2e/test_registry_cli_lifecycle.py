"""``ombud registry reject|revise|deprecate``: the rest of the lifecycle from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr
from typer.testing import CliRunner

from ombud.cli.main import app
from ombud.config import CryptoSettings, DatabaseSettings, ServingSettings, Settings
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ArtifactFormat, FeatureSpec, ServingConfig, VersionStatus
from ombud.registry.service import RegistryService
from ombud.storage import migrate


async def _prepare(settings: Settings) -> tuple[str, str]:
    """v1 approved by the operator, v2 a draft; returns (author id, approver id)."""
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
            registry = RegistryService(RegistryRepository(session), container.clock)
            for status in (VersionStatus.APPROVED, VersionStatus.DRAFT):
                await registry.register_version(
                    model="churn", artifact_uri="file://churn.skops", sha256="cd" * 32,
                    artifact_format=ArtifactFormat.SKOPS,
                    features=[FeatureSpec(name="tenure", type="integer")],
                    serving=ServingConfig(), status=status, actor=ids[0],
                )  # fmt: skip
        return ids[0], ids[1]
    finally:
        await container.aclose()


def test_reject_revise_and_deprecate(tmp_path: Path) -> None:
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

    assert ombud("submit", "churn", "2", "--by", author)[0] == 0
    reason = "AUC below the bar"
    assert ombud("reject", "churn", "2", "--by", approver, "--reason", reason)[1] == (
        "churn v2: rejected\n"
    )
    # Only a draft's authors may revise; approvers may not, and a draft cannot be revised twice.
    code, _, error = ombud("revise", "churn", "2", "--by", approver)
    assert code == 1
    assert "data_scientist" in error
    assert ombud("revise", "churn", "2", "--by", author) == (0, "churn v2: draft\n", "")
    code, _, error = ombud("revise", "churn", "2", "--by", author)
    assert code == 1
    assert "cannot revise a draft version" in error
    # Deprecating takes an approver, and only an approved version can be deprecated.
    code, _, error = ombud("deprecate", "churn", "2", "--by", approver, "--reason", "old")
    assert code == 1
    assert "cannot deprecate a draft version" in error
    code, out, _ = ombud("deprecate", "churn", "1", "--by", approver, "--reason", "replaced")
    assert (code, out) == (0, "churn v1: deprecated\n")
