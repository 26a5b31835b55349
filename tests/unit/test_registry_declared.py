"""Declared model files: the shipped ones pass, and each kind of mistake is named with its file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ombud.cli.registry import app
from ombud.demo import credit_model
from ombud.registry.declared import DeclarationError, check, load_declared

MODELS = Path(__file__).resolve().parents[2] / "models"


def _model(name: str = "churn", **version: object) -> dict[str, object]:
    return {
        "name": name,
        "owner": "risk team",
        "versions": [
            {"version": 1, "format": "onnx", "features": [{"name": "tenure", "type": "integer"}]}
            | version
        ],
    }


def _write(directory: Path, file: str, body: object) -> Path:
    path = directory / file
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body), encoding="utf-8")
    return path


def _problems(directory: Path) -> list[tuple[str, str, str]]:
    return [(p.file.name, p.location, p.message) for p in check(directory)]


def test_the_shipped_models_pass_and_match_the_demo_seed() -> None:
    assert check(MODELS) == []
    (model,) = load_declared(MODELS)
    assert model.name == credit_model.MODEL_NAME
    (version,) = model.versions
    assert version.features == credit_model.feature_specs()
    assert version.serving == credit_model.serving_config()
    assert version.artifact.path is None


def test_a_valid_directory_loads(tmp_path: Path) -> None:
    _write(tmp_path, "churn.yaml", _model())
    (model,) = load_declared(tmp_path)
    assert (model.name, model.versions[0].version) == ("churn", 1)


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    _write(tmp_path, "churn.yaml", "name: churn\nversions: [\n  - oops: {\n")
    [(file, location, message)] = _problems(tmp_path)
    assert file == "churn.yaml"
    assert location.split(":")[0].isdigit()
    assert message.startswith("invalid YAML")


def test_schema_errors_give_the_field_path(tmp_path: Path) -> None:
    body = _model(features=[{"name": "tenure", "type": "decimal"}], extra_field=1)
    _write(tmp_path, "churn.yaml", body)
    locations = {(f, loc) for f, loc, _ in _problems(tmp_path)}
    assert locations == {
        ("churn.yaml", "versions[0].features[0].type"),
        ("churn.yaml", "versions[0].extra_field"),
    }


def test_a_model_name_declared_in_two_files_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "churn.yaml", _model())
    _write(tmp_path, "churn.yml", _model())
    problems = _problems(tmp_path)
    assert (
        "churn.yml",
        "name",
        "model 'churn' is also declared in " + str(tmp_path / "churn.yaml"),
    ) in problems


def test_the_file_name_must_match_the_model_name(tmp_path: Path) -> None:
    _write(tmp_path, "other.yaml", _model())
    assert _problems(tmp_path) == [("other.yaml", "name", "model 'churn' belongs in churn.yaml")]


def test_version_numbers_are_unique(tmp_path: Path) -> None:
    body = _model()
    versions = body["versions"]
    assert isinstance(versions, list)
    body["versions"] = versions * 2
    _write(tmp_path, "churn.yaml", body)
    assert [loc for _, loc, _ in _problems(tmp_path)] == [
        "versions[0].version",
        "versions[1].version",
    ]


def test_an_artifact_path_must_exist_and_match_its_digest(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "churn.onnx").write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    path = "artifacts/churn.onnx"
    _write(tmp_path, "churn.yaml", _model(artifact={"path": path, "sha256": good}))
    assert _problems(tmp_path) == []

    _write(
        tmp_path,
        "churn.yaml",
        _model(artifact={"path": path, "sha256": "0" * 64}),
    )
    assert [(f, loc) for f, loc, _ in _problems(tmp_path)] == [
        ("churn.yaml", "versions[0].artifact.sha256")
    ]

    _write(tmp_path, "churn.yaml", _model(artifact={"path": "missing.onnx", "sha256": good}))
    assert [(f, loc) for f, loc, _ in _problems(tmp_path)] == [
        ("churn.yaml", "versions[0].artifact.path")
    ]


def test_an_artifact_path_needs_a_digest(tmp_path: Path) -> None:
    _write(tmp_path, "churn.yaml", _model(artifact={"path": "churn.onnx"}))
    [(file, location, message)] = _problems(tmp_path)
    assert (file, location) == ("churn.yaml", "versions[0].artifact")
    assert "needs its sha256" in message


def test_load_declared_raises_with_every_problem(tmp_path: Path) -> None:
    _write(tmp_path, "other.yaml", _model())
    with pytest.raises(DeclarationError) as raised:
        load_declared(tmp_path)
    assert [p.location for p in raised.value.problems] == ["name"]


def test_the_cli_reports_ok_for_the_shipped_models() -> None:
    result = CliRunner().invoke(app, ["check", str(MODELS)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok: 1 models, 1 versions"


def test_the_cli_exits_1_and_prints_each_problem(tmp_path: Path) -> None:
    _write(tmp_path, "other.yaml", _model())
    result = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == f"{tmp_path / 'other.yaml'}:name: model 'churn' belongs in churn.yaml"
    )
