"""Feature-view declarations: the shipped demo file loads; each kind of mistake is refused
with a message that names the file and what is wrong."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ombud.core.errors import NotFound
from ombud.features.declarations import FeatureDeclarationError, load_views
from ombud.features.definitions import Latest, WindowAggregate, parse_window

REPO_VIEWS = Path(__file__).resolve().parents[2] / "features"

EVENTS = """
event_types:
  transaction:
    fields:
      amount: number
      count: integer
      channel: {type: category, categories: [card, transfer]}
      note: {type: string, required: false}
"""


def _view(features: str, *, name: str = "v", version: int = 1, source: str = "transaction") -> str:
    return f"""
views:
  - name: {name}
    version: {version}
    source: {source}
    ttl_s: 60
    features:
{features}
"""


SUM = "      - {name: total, type: number, transformation: {kind: sum, field: amount, window: 7d}}"


def _load(tmp_path: Path, **files: str) -> list[str]:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(FeatureDeclarationError) as caught:
        load_views(tmp_path)
    return caught.value.problems


def test_the_demo_declarations_load() -> None:
    catalog = load_views(REPO_VIEWS)
    view = catalog.view("credit_applicant")
    assert view.id == "credit_applicant_v1"
    assert view.source == "transaction"
    assert view.entity == "subject"
    names = [f.name for f in view.features]
    assert {"txn_count_30d", "txn_sum_30d", "txn_max_7d", "last_balance"} <= set(names)
    assert view.transformations["last_balance"] == Latest(kind="latest", field="balance")
    total = view.transformations["txn_sum_30d"]
    assert isinstance(total, WindowAggregate)
    assert total.span == timedelta(days=30)
    assert view.longest_window is None  # a latest feature reads the whole history
    assert catalog.event_types["transaction"].fields["amount"].type == "number"


def test_views_across_files_versions_and_lookup(tmp_path: Path) -> None:
    (tmp_path / "a_events.yaml").write_text(EVENTS, encoding="utf-8")
    (tmp_path / "b_v1.yaml").write_text(_view(SUM), encoding="utf-8")
    (tmp_path / "c_v2.yml").write_text(_view(SUM, version=2), encoding="utf-8")
    (tmp_path / "ignored.txt").write_text("not: [yaml", encoding="utf-8")
    catalog = load_views(tmp_path)
    assert catalog.view("v").id == "v_v2"
    assert catalog.view("v", 1).id == "v_v1"
    assert catalog.view("v").longest_window == timedelta(days=7)
    with pytest.raises(NotFound):
        catalog.view("v", 3)
    with pytest.raises(NotFound):
        catalog.view("other")


def test_a_missing_directory_declares_nothing(tmp_path: Path) -> None:
    catalog = load_views(tmp_path / "absent")
    assert catalog.views == {}
    assert catalog.event_types == {}


def test_a_view_declared_twice_is_refused(tmp_path: Path) -> None:
    problems = _load(tmp_path, a=EVENTS + _view(SUM), b=_view(SUM))
    assert problems == ["b.yaml: view v_v1 already in a.yaml"]


def test_an_event_type_declared_twice_is_refused(tmp_path: Path) -> None:
    problems = _load(tmp_path, a=EVENTS, b=EVENTS)
    assert problems == ["b.yaml: event type 'transaction' already in a.yaml"]


def test_an_unknown_source_is_refused(tmp_path: Path) -> None:
    problems = _load(tmp_path, a=EVENTS + _view(SUM, source="payment"))
    assert problems == ["a.yaml: v_v1: unknown source event type 'payment'"]


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    latest = "      - {name: x, type: number, transformation: {kind: latest, field: balance}}"
    problems = _load(tmp_path, a=EVENTS + _view(latest))
    assert problems == ["a.yaml: v_v1.x: 'transaction' events have no field 'balance'"]


@pytest.mark.parametrize("kind", ["sum", "mean", "min", "max"])
def test_a_numeric_aggregate_of_a_non_numeric_field_is_refused(tmp_path: Path, kind: str) -> None:
    feature = (
        f"      - {{name: x, type: number, transformation: {{kind: {kind}, field: channel, "
        "window: 1h}}"
    )
    problems = _load(tmp_path, a=EVENTS + _view(feature))
    assert problems == [f"a.yaml: v_v1.x: {kind} needs a numeric field; 'channel' is category"]


def test_a_feature_type_that_does_not_fit_its_transformation_is_refused(tmp_path: Path) -> None:
    features = "\n".join([
        "      - {name: a, type: integer, transformation: {kind: mean, field: count, window: 1h}}",
        "      - {name: b, type: boolean, transformation: {kind: latest, field: channel}}",
        "      - {name: c, type: string, transformation: {kind: count, window: 1h}}",
    ])  # fmt: skip
    problems = _load(tmp_path, a=EVENTS + _view(features))
    assert problems == [
        "a.yaml: v_v1.a: mean of integer gives number, not integer",
        "a.yaml: v_v1.b: latest of category gives category, not boolean",
        "a.yaml: v_v1.c: count of integer gives integer or number, not string",
    ]


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ("{name: x, type: number, transformation: {kind: sum, window: 1h}}",
         "sum needs the numeric field it aggregates"),
        ("{name: x, type: number, transformation: {kind: sum, field: amount, window: 30x}}",
         "not a window"),
        ("{name: x, type: number, transformation: {kind: median, field: amount, window: 1h}}",
         "does not match any of the expected tags"),
        ("{name: entity_id, type: integer, transformation: {kind: count, window: 1h}}",
         "is a column of every training set"),
    ],
)  # fmt: skip
def test_malformed_features_are_refused(tmp_path: Path, feature: str, message: str) -> None:
    problems = _load(tmp_path, a=EVENTS + _view(f"      - {feature}"))
    assert len(problems) == 1
    assert problems[0].startswith("a.yaml: views.0.features.0")
    assert message in problems[0]


def test_duplicate_feature_names_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    problems = _load(tmp_path, a=EVENTS + _view(f"{SUM}\n{SUM}"), b="views: []\nextra: 1\n")
    assert any("a.yaml: views.0.features: " in p and "declared twice: total" in p for p in problems)
    assert any(p.startswith("b.yaml: extra: ") for p in problems)


def test_bad_event_types_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    bad_type = "event_types:\n  t:\n    fields: {amount: decimal}\n"
    problems = _load(tmp_path, a=bad_type, b="views: [unclosed\n")
    assert problems[0].startswith("a.yaml: event_types.t.fields.amount")
    assert problems[1].startswith("b.yaml: cannot read: ")


def test_a_view_about_another_entity_than_its_source_is_refused(tmp_path: Path) -> None:
    view = _view(SUM).replace("    source:", "    entity: account\n    source:")
    problems = _load(tmp_path, a=EVENTS + view)
    assert problems == [
        "a.yaml: v_v1: the view is about 'account' but 'transaction' events are about 'subject'"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)),
     ("1h", timedelta(hours=1)), ("30d", timedelta(days=30))],
)  # fmt: skip
def test_windows_parse(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["0d", "1w", "d", "-1h", "99999d", " 1h"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="window|ten years"):
        parse_window(text)
