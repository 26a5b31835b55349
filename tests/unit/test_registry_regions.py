"""Residency in declared model files: a version may name only the configured regions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ombud.cli.registry import app
from ombud.registry.declared import DeclarationError, check, load_declared
from ombud.registry.schemas import ServingConfig


def _write(directory: Path, regions: list[str]) -> Path:
    body = {
        "name": "churn",
        "versions": [
            {"version": 1, "format": "onnx", "features": [{"name": "tenure", "type": "integer"}],
             "serving": {"regions": regions}},
        ],
    }  # fmt: skip
    path = directory / "churn.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def test_a_version_serves_its_regions_and_any_call_about_no_subject() -> None:
    eu_only = ServingConfig(regions=["eu"])
    assert [eu_only.serves(r) for r in ("eu", "us", None)] == [True, False, True]
    assert ServingConfig().serves("us")
    assert eu_only.unknown_regions(["us"]) == ["eu"]
    assert ServingConfig().unknown_regions([]) == []


def test_unknown_regions_are_named_with_their_location(tmp_path: Path) -> None:
    path = _write(tmp_path, ["eu", "mars", "us"])
    [problem] = check(tmp_path, regions=["eu", "us"])
    assert (problem.file, problem.location) == (path, "versions[0].serving.regions")
    assert "['mars']" in problem.message
    with pytest.raises(DeclarationError):
        load_declared(tmp_path, regions=["eu"])
    # Without the configured regions only their form is checked.
    assert check(tmp_path) == []
    (model,) = load_declared(tmp_path, regions=["eu", "mars", "us"])
    assert model.versions[0].serving.regions == ["eu", "mars", "us"]


@pytest.mark.parametrize("bad", [[], ["EU"], ["eu west"]])
def test_region_names_must_be_well_formed(tmp_path: Path, bad: list[str]) -> None:
    _write(tmp_path, bad)
    [problem] = check(tmp_path)
    assert problem.location.startswith("versions[0].serving.regions")


def test_the_cli_checks_against_the_configured_regions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, ["us"])
    monkeypatch.setenv("OMBUD_PRIVACY__REGIONS", '["eu"]')
    refused = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert refused.exit_code == 1
    assert "versions[0].serving.regions: unknown regions ['us']" in refused.output
    monkeypatch.setenv("OMBUD_PRIVACY__REGIONS", '["eu", "us"]')
    accepted = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert accepted.exit_code == 0, accepted.output
