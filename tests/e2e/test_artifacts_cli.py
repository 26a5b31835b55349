"""``ombud artifacts`` as a publisher runs it (in-process; each command reads the environment)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from ombud.cli.main import app

PEPPER = "p" * 40


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.skops"
    path.write_bytes(skops.io.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1])))
    return path


def ombud(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def keygen(directory: Path) -> dict[str, str]:
    result = ombud({}, "artifacts", "keygen", str(directory))
    assert result.exit_code == 0, result.output
    keys: dict[str, str] = json.loads(result.stdout)
    return keys


def test_keygen_put_and_verify(tmp_path: Path, model_file: Path) -> None:
    keys = keygen(tmp_path / "keys")
    assert stat.S_IMODE(Path(keys["private_key"]).stat().st_mode) == 0o600
    again = ombud({}, "artifacts", "keygen", str(tmp_path / "keys"))
    assert again.exit_code == 1
    assert "never overwritten" in again.stderr

    env = {
        "OMBUD_ENV": "prod",
        "OMBUD_SECURITY__API_KEY_PEPPER": PEPPER,
        "OMBUD_SERVING__ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "OMBUD_SERVING__SIGNING_PRIVATE_KEY": keys["private_key"],
        "OMBUD_SERVING__SIGNING_PUBLIC_KEYS": json.dumps([keys["public_key"]]),
    }
    put = ombud(env, "artifacts", "put", str(model_file), "--format", "skops")
    assert put.exit_code == 0, put.output
    stored = json.loads(put.stdout)
    assert stored["uri"] == f"local:{stored['sha256']}.skops"
    assert stored["signed"] is True

    verified = ombud(env, "artifacts", "verify", stored["uri"], stored["sha256"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["verified"] is True

    # A server trusting only another key refuses the artifact.
    other = keygen(tmp_path / "other")
    foreign = {**env, "OMBUD_SERVING__SIGNING_PUBLIC_KEYS": json.dumps([other["public_key"]])}
    refused = ombud(foreign, "artifacts", "verify", stored["uri"], stored["sha256"])
    assert refused.exit_code == 1
    assert "refused: signature does not verify" in refused.stderr
    # After rotation both keys are trusted, and the old signature still verifies.
    both = json.dumps([other["public_key"], keys["public_key"]])
    rotated = {**env, "OMBUD_SERVING__SIGNING_PUBLIC_KEYS": both}
    assert ombud(rotated, "artifacts", "verify", stored["uri"], stored["sha256"]).exit_code == 0

    artifact = tmp_path / "artifacts" / stored["uri"].removeprefix("local:")
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    tampered = ombud(env, "artifacts", "verify", stored["uri"], stored["sha256"])
    assert tampered.exit_code == 1
    assert "refused: sha256 mismatch" in tampered.stderr


def test_put_refuses_without_a_key_or_with_an_unloadable_file(
    tmp_path: Path, model_file: Path
) -> None:
    keys = keygen(tmp_path / "keys")
    verify_only = {
        "OMBUD_ENV": "prod",
        "OMBUD_SECURITY__API_KEY_PEPPER": PEPPER,
        "OMBUD_SERVING__ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "OMBUD_SERVING__SIGNING_PUBLIC_KEYS": json.dumps([keys["public_key"]]),
    }
    unsigned = ombud(verify_only, "artifacts", "put", str(model_file))
    assert unsigned.exit_code == 1
    assert "OMBUD_SERVING__SIGNING_PRIVATE_KEY" in unsigned.stderr

    no_keys = {k: v for k, v in verify_only.items() if "SIGNING" not in k}
    refused = ombud(no_keys, "artifacts", "verify", "local:" + "0" * 64 + ".skops", "0" * 64)
    assert refused.exit_code == 1
    assert "OMBUD_SERVING__SIGNING_PUBLIC_KEYS" in refused.stderr

    garbage = tmp_path / "garbage.skops"
    garbage.write_bytes(b"not a model")
    signing = {**verify_only, "OMBUD_SERVING__SIGNING_PRIVATE_KEY": keys["private_key"]}
    bad = ombud(signing, "artifacts", "put", str(garbage))
    assert bad.exit_code == 1
    assert "would not load" in bad.stderr
    assert not (tmp_path / "artifacts").exists()
