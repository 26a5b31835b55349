"""The ``promotion:`` block of a declared model file: thresholds and a golden dataset file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ombud.registry.declared import check, load_declared


def _write(directory: Path, promotion: dict[str, object], golden: object | None = None) -> None:
    model = {
        "name": "churn",
        "versions": [
            {"version": 1, "format": "skops", "features": [{"name": "tenure", "type": "integer"}]}
        ],
        "promotion": promotion,
    }
    (directory / "churn.yaml").write_text(yaml.safe_dump(model), encoding="utf-8")
    if golden is not None:
        (directory / "golden.json").write_text(json.dumps(golden), encoding="utf-8")


def _rows(*tenures: object) -> dict[str, object]:
    return {"rows": [{"features": {"tenure": t}, "label": i % 2} for i, t in enumerate(tenures)]}


def _problems(directory: Path) -> list[tuple[str, str]]:
    return [(p.location, p.message) for p in check(directory)]


def test_thresholds_and_a_valid_golden_file_load(tmp_path: Path) -> None:
    _write(tmp_path, {"golden": "golden.json", "max_decision_change_fraction": 0.1}, _rows(1, 2))

    (model,) = load_declared(tmp_path)

    assert model.promotion is not None
    assert model.promotion.golden == "golden.json"
    assert model.promotion.max_decision_change_fraction == 0.1
    assert model.promotion.max_metric_drop == {"roc_auc": 0.02, "accuracy": 0.03}


def test_a_missing_golden_file_is_named(tmp_path: Path) -> None:
    _write(tmp_path, {"golden": "nope.json"})

    [(location, message)] = _problems(tmp_path)

    assert location == "promotion.golden"
    assert message.startswith("no golden dataset at ")


def test_golden_rows_must_fit_the_newest_version(tmp_path: Path) -> None:
    _write(tmp_path, {"golden": "golden.json"}, _rows(1, "long", 3))

    assert _problems(tmp_path) == [
        (
            "promotion.golden",
            "golden.json: rows[1].features.tenure: Input should be a valid integer",
        )
    ]


def test_golden_files_and_thresholds_are_validated(tmp_path: Path) -> None:
    _write(tmp_path, {"golden": "golden.json"}, {"rows": [{"features": {}, "label": 5}]})
    assert [m for _, m in _problems(tmp_path)] == [
        "golden.json: rows[0].label: Input should be less than or equal to 1",
    ]
    _write(tmp_path, {"max_metric_drop": {"auc": 0.1}})
    assert [loc for loc, _ in _problems(tmp_path)] == ["promotion.max_metric_drop.auc.[key]"]
