"""A version's ``serving.feature_view`` is checked against the declared views: at registration
and in ``ombud registry check``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ombud.cli.registry import app
from ombud.demo.credit_model import PROFILE_VIEW, feature_specs
from ombud.features.declarations import load_views
from ombud.features.definitions import EventType, FeatureCatalog, FeatureView
from ombud.registry.declared import check
from ombud.registry.feature_source import feature_view_problems
from ombud.registry.schemas import FeatureSpec, FeatureViewSource

ROOT = Path(__file__).resolve().parents[2]


def _catalog(fields: dict[str, Any], features: list[dict[str, Any]], **view: Any) -> FeatureCatalog:
    event = EventType.model_validate({"name": "profile", "fields": fields})
    declared = FeatureView.model_validate(
        {"name": "profile", "version": 1, "source": "profile", "ttl_s": 60, "features": features}
        | view
    )
    return FeatureCatalog(event_types={"profile": event}, views={("profile", 1): declared})


def _latest(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "transformation": {"kind": "latest", "field": name}}


SPECS = [
    FeatureSpec(name="housing", type="category", categories=["own", "rent"]),
    FeatureSpec(name="tenure", type="number"),
    FeatureSpec(name="amount", type="integer", minimum=0),
]
SOURCE = FeatureViewSource(name="profile", version=1)


def _messages(catalog: FeatureCatalog, source: FeatureViewSource = SOURCE) -> list[str]:
    return [
        f"{'.'.join(p.loc)}: {p.message}" for p in feature_view_problems(SPECS, source, catalog)
    ]


def test_the_demo_model_fits_the_shipped_views() -> None:
    views = load_views(ROOT / "features")
    assert feature_view_problems(feature_specs(), PROFILE_VIEW, views) == []
    assert check(ROOT / "models", views=views) == []


def test_a_fitting_view_passes_and_an_integer_may_feed_a_number() -> None:
    catalog = _catalog(
        {"housing": {"type": "category", "categories": ["own"]}, "tenure": "integer"},
        [_latest("housing", "category"), _latest("tenure", "integer")],
    )
    assert _messages(catalog) == []


def test_an_undeclared_view_or_version_is_refused() -> None:
    catalog = _catalog({"tenure": "number"}, [_latest("tenure", "number")])
    [message] = _messages(catalog, FeatureViewSource(name="profile", version=2))
    assert message == "name: feature view profile v2 is not declared (OMBUD_FEATURES__VIEWS_DIR)"
    assert "not declared" in _messages(FeatureCatalog())[0]


def test_a_view_must_be_about_subjects_and_feed_an_input() -> None:
    about_shops = _catalog(
        {"tenure": "number"}, [_latest("tenure", "number")], entity="shop"
    ).views[("profile", 1)]
    event = EventType.model_validate(
        {"name": "profile", "entity": "shop", "fields": {"x": "number"}}
    )
    shops = FeatureCatalog(event_types={"profile": event}, views={("profile", 1): about_shops})
    assert "not data subjects" in _messages(shops)[0]
    unrelated = _catalog({"spend": "number"}, [_latest("spend", "number")])
    assert "is an input of this version" in _messages(unrelated)[0]


@pytest.mark.parametrize(
    ("fields", "feature", "expected"),
    [
        ({"tenure": "string"}, _latest("tenure", "string"), "profile_v1.tenure is string"),
        ({"amount": "number"}, _latest("amount", "number"), "input 'amount' is integer"),
        ({"housing": "category"}, _latest("housing", "category"), "may hold any string"),
        (
            {"housing": {"type": "category", "categories": ["own", "boat"]}},
            _latest("housing", "category"),
            "may hold ['boat']",
        ),
    ],
)
def test_a_feature_that_does_not_fit_its_input_is_named(
    fields: dict[str, Any], feature: dict[str, Any], expected: str
) -> None:
    [message] = _messages(_catalog(fields, [feature]))
    assert message.startswith("name: ")
    assert expected in message


def test_fallback_values_must_be_valid_inputs_the_view_feeds() -> None:
    catalog = _catalog(
        {"housing": {"type": "category", "categories": ["own"]}, "amount": "integer"},
        [_latest("housing", "category"), _latest("amount", "integer")],
    )
    good = SOURCE.model_copy(update={"fallback": {"housing": "own", "amount": 0}})
    assert _messages(catalog, good) == []
    bad = SOURCE.model_copy(update={"fallback": {"housing": "castle", "amount": -1, "tenure": 3}})
    problems = _messages(catalog, bad)
    assert [p.split(":")[0] for p in problems] == [
        "fallback.tenure", "fallback.housing", "fallback.amount",
    ]  # fmt: skip
    assert "not an input profile_v1 feeds" in problems[0]


def test_the_cli_checks_model_files_against_the_configured_views(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    body = yaml.safe_load((ROOT / "models" / "credit-risk.yaml").read_text(encoding="utf-8"))
    (models / "credit-risk.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    monkeypatch.setenv("OMBUD_FEATURES__VIEWS_DIR", str(ROOT / "features"))
    accepted = CliRunner().invoke(app, ["check", str(models)])
    assert accepted.exit_code == 0, accepted.output

    body["versions"][0]["serving"]["feature_view"]["fallback"]["housing"] = "castle"
    (models / "credit-risk.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    refused = CliRunner().invoke(app, ["check", str(models)])
    assert refused.exit_code == 1
    assert "versions[0].serving.feature_view.fallback.housing:" in refused.output

    monkeypatch.setenv("OMBUD_FEATURES__VIEWS_DIR", str(tmp_path / "nowhere"))
    missing = CliRunner().invoke(app, ["check", str(ROOT / "models")])
    assert missing.exit_code == 1
    assert "credit_applicant_profile v1 is not declared" in missing.output
