"""A model file may declare its rollout; the check holds it to the deployments API's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ombud.registry.declared import check, load_declared


def _model(deployment: dict[str, Any]) -> dict[str, Any]:
    version = {"format": "skops", "features": [{"name": "tenure", "type": "integer"}]}
    return {
        "name": "churn",
        "versions": [{"version": 1, **version}, {"version": 2, **version}],
        "deployment": deployment,
    }


def _problems(tmp_path: Path, deployment: dict[str, Any]) -> list[tuple[str, str]]:
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(_model(deployment)), encoding="utf-8")
    return [(p.location, p.message) for p in check(tmp_path)]


CANARY = {"mode": "canary", "stable_version": 1, "candidate_version": 2, "percent": 10}


def test_a_canary_of_two_declared_versions_passes(tmp_path: Path) -> None:
    assert _problems(tmp_path, CANARY) == []
    (model,) = load_declared(tmp_path)
    assert model.deployment == CANARY


def test_the_rollout_must_name_versions_the_file_declares(tmp_path: Path) -> None:
    problems = _problems(tmp_path, CANARY | {"candidate_version": 3})
    assert problems == [("deployment.candidate_version", "version 3 is not declared here")]


def test_rollout_rules_are_the_apis(tmp_path: Path) -> None:
    # A canary needs its percentage; the same version cannot be both arms; unknown keys fail.
    missing = _problems(tmp_path, {k: v for k, v in CANARY.items() if k != "percent"})
    assert [loc for loc, _ in missing] == ["deployment"]
    same = _problems(tmp_path, CANARY | {"candidate_version": 1})
    assert "must differ" in same[0][1]
    unknown = _problems(tmp_path, CANARY | {"traffic": 5})
    assert unknown[0][0] == "deployment.traffic"
    too_much = _problems(tmp_path, CANARY | {"percent": 150})
    assert too_much[0][0] == "deployment.percent"


def test_the_model_is_the_files_own(tmp_path: Path) -> None:
    problems = _problems(tmp_path, CANARY | {"model": "other"})
    assert problems == [("deployment.model", "the model is the file's own")]
