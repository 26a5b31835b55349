"""The gate's arithmetic: metrics, floors, drops, score changes and decision flips."""

from __future__ import annotations

import pytest

from ombud.registry.promotion_metrics import Scored, judge, metrics
from ombud.registry.promotion_schemas import PromotionPolicy

LABELS = [0, 0, 0, 1, 1, 1]
GOOD = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]


def test_metrics_at_the_threshold() -> None:
    values = metrics(LABELS, Scored(1, [0.1, 0.2, 0.6, 0.4, 0.8, 0.9], threshold=0.5))

    assert values["accuracy"] == pytest.approx(4 / 6)
    assert values["precision"] == pytest.approx(2 / 3)
    assert values["recall"] == pytest.approx(2 / 3)
    assert values["roc_auc"] == pytest.approx(8 / 9)
    assert values["brier"] > 0


def test_an_equal_candidate_passes_and_reports_zero_deltas() -> None:
    verdict = judge(LABELS, Scored(2, GOOD, 0.5), Scored(1, GOOD, 0.5), PromotionPolicy())

    assert verdict.passed
    assert verdict.metrics["roc_auc"].delta == 0.0
    assert verdict.score_change is not None
    assert verdict.score_change.max_abs == 0.0
    assert verdict.decision_change_fraction == 0.0


def test_a_metric_drop_beyond_the_limit_is_a_reason_with_numbers() -> None:
    worse = [0.1, 0.2, 0.8, 0.7, 0.3, 0.9]
    verdict = judge(LABELS, Scored(2, worse, 0.5), Scored(1, GOOD, 0.5), PromotionPolicy())

    assert not verdict.passed
    assert any(r.startswith("roc_auc drops by 0.2222 (from 1.0000 on v1") for r in verdict.reasons)
    assert any(r.startswith("accuracy drops by 0.3333") for r in verdict.reasons)
    assert any("change decision from v1" in r for r in verdict.reasons)


def test_brier_worsens_upwards() -> None:
    policy = PromotionPolicy(max_metric_drop={"brier": 0.01}, max_decision_change_fraction=None)
    hedged = [0.4, 0.4, 0.4, 0.6, 0.6, 0.6]
    verdict = judge(LABELS, Scored(2, hedged, 0.5), Scored(1, GOOD, 0.5), policy)

    assert [r.split(" (")[0] for r in verdict.reasons] == ["brier rises by 0.1133"]


def test_floors_apply_without_a_baseline_and_relative_checks_do_not() -> None:
    policy = PromotionPolicy(min_metrics={"roc_auc": 0.95, "recall": 0.5})
    verdict = judge(LABELS, Scored(1, [0.1, 0.2, 0.6, 0.4, 0.8, 0.9], 0.5), None, policy)

    assert verdict.reasons == ["roc_auc 0.8889 is below the floor of 0.9500"]
    assert verdict.score_change is None
    assert verdict.decision_change_fraction is None
    assert verdict.metrics["accuracy"].baseline is None


def test_score_changes_and_flips_are_limited() -> None:
    policy = PromotionPolicy(
        max_metric_drop={}, max_score_change=0.05, max_decision_change_fraction=0.0
    )
    moved = [0.1, 0.2, 0.3, 0.7, 0.8, 0.99]
    verdict = judge(LABELS, Scored(2, moved, 0.75), Scored(1, GOOD, 0.5), policy)

    assert verdict.score_change is not None
    assert verdict.score_change.rows_over_limit == 1
    assert verdict.decision_change_fraction == pytest.approx(1 / 6)
    assert len(verdict.reasons) == 2
    assert "1 of 6 rows by more than 0.0500" in verdict.reasons[0]
    assert "16.67% of golden rows (1 of 6)" in verdict.reasons[1]


def test_policy_limits_must_lie_in_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="outside"):
        PromotionPolicy(max_metric_drop={"roc_auc": 2.0})
    with pytest.raises(ValueError, match="min_metrics.brier"):
        PromotionPolicy.model_validate({"min_metrics": {"brier": 0.1}})
