"""The KPI arithmetic against scikit-learn, and how reports are cut into windows and arms."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ombud.core.errors import InvalidRequest
from ombud.outcomes.kpis import Labelled, quality
from ombud.outcomes.report import by_version, parse_window, period
from ombud.outcomes.repository import Group, LabelCounts

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _rows(n: int, seed: int, threshold: float = 0.5) -> list[Labelled]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        score = rng.random()
        # Labels that follow the score loosely, so every metric is strictly between 0 and 1.
        label = int(rng.random() < 0.2 + 0.6 * score)
        rows.append(Labelled(score=score, threshold=threshold, label=label))
    return rows


def _ece(labels: list[int], scores: list[float]) -> float:
    """Independently: scikit-learn's reliability curve, weighted by numpy's bin counts."""
    observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    counts, _ = np.histogram(scores, bins=10, range=(0.0, 1.0))
    counts = counts[counts > 0]
    return float(np.sum(counts / len(scores) * np.abs(observed - predicted)))


def test_every_kpi_equals_scikit_learn_on_the_same_pairs() -> None:
    rows = _rows(500, seed=7, threshold=0.4)
    y = [r.label for r in rows]
    p = [r.score for r in rows]
    decided = [int(s >= 0.4) for s in p]

    q = quality(rows)

    assert q.scored == 500
    assert q.auc == pytest.approx(roc_auc_score(y, p))
    assert q.precision == pytest.approx(precision_score(y, decided))
    assert q.recall == pytest.approx(recall_score(y, decided))
    assert q.f1 == pytest.approx(f1_score(y, decided))
    assert q.brier == pytest.approx(brier_score_loss(y, p))
    assert q.ece == pytest.approx(_ece(y, p))
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    filled = [b for b in q.reliability if b.count]
    assert [b.observed_rate for b in filled] == pytest.approx(list(observed))
    assert [b.mean_predicted for b in filled] == pytest.approx(list(predicted))
    assert sum(b.count for b in q.reliability) == 500
    assert (q.reliability[0].lower, q.reliability[-1].upper) == (0.0, 1.0)


def test_each_prediction_is_decided_at_its_own_threshold() -> None:
    rows = [
        Labelled(0.3, 0.2, 1),  # decided positive at 0.2: a hit
        Labelled(0.3, 0.5, 1),  # the same score at 0.5: a miss
        Labelled(0.6, 0.5, 0),  # a false alarm
    ]
    q = quality(rows)
    assert q.precision == pytest.approx(0.5)
    assert q.recall == pytest.approx(0.5)


def test_undefined_kpis_are_null_not_zero() -> None:
    one_class = [Labelled(0.2, 0.5, 0), Labelled(0.7, 0.5, 0)]
    q = quality(one_class)
    assert q.auc is None
    assert q.recall is None  # no positive label
    assert q.f1 is None
    assert q.precision == 0.0  # one positive decision, wrong
    assert q.brier == pytest.approx((0.04 + 0.49) / 2)

    nothing_decided = quality([Labelled(0.1, 0.5, 1), Labelled(0.2, 0.5, 0)])
    assert nothing_decided.precision is None
    assert nothing_decided.recall == 0.0

    empty = quality([])
    assert (empty.scored, empty.auc, empty.brier, empty.ece) == (0, None, None, None)
    assert [b.count for b in empty.reliability] == [0] * 10
    assert all(b.mean_predicted is None for b in empty.reliability)


def test_a_score_on_a_bin_edge_falls_where_scikit_learn_puts_it() -> None:
    rows = [Labelled(0.1, 0.5, 0), Labelled(0.2, 0.5, 1), Labelled(0.0, 0.5, 0)]
    q = quality(rows)
    assert [b.count for b in q.reliability][:2] == [2, 1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1h", timedelta(hours=1)), ("24h", timedelta(days=1)), ("7d", timedelta(days=7)),
     ("30m", timedelta(minutes=30)), ("400d", timedelta(days=400))],
)  # fmt: skip
def test_windows_parse(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "0h", "1w", "h", "1.5h", "-1d", "401d", "1h "])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="window|400 days"):
        parse_window(text)


def test_period_defaults_to_the_last_day_and_takes_explicit_bounds() -> None:
    default = period(NOW, None, None, None)
    assert (default.since, default.until, default.window) == (NOW - timedelta(days=1), NOW, "24h")
    since = NOW - timedelta(hours=5)
    explicit = period(NOW, None, since, None)
    assert (explicit.since, explicit.until, explicit.window) == (since, NOW, None)


@pytest.mark.parametrize(
    ("window", "since", "until", "field"),
    [
        ("1h", NOW - timedelta(hours=2), None, "window"),
        (None, None, NOW, "since"),
        (None, NOW, NOW, "since"),
        (None, NOW - timedelta(days=401), None, "since"),
        ("1y", None, None, "window"),
    ],
)
def test_period_refuses_what_does_not_make_one(
    window: str | None, since: datetime | None, until: datetime | None, field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        period(NOW, window, since, until)
    assert caught.value.errors[0].loc == ("query", field)


def test_versions_split_by_arm_only_when_a_deployment_served_them() -> None:
    stable, canary = _rows(40, seed=1), _rows(30, seed=2)
    direct = _rows(20, seed=3)
    rows: list[tuple[Group, Labelled]] = [((2, "stable"), r) for r in stable]
    rows += [((3, "canary"), r) for r in canary]
    rows += [((1, None), r) for r in direct] + [((2, None), r) for r in direct[:5]]
    predictions = {(3, "canary"): 60, (2, "stable"): 80, (2, None): 10, (1, None): 20}
    labels = {
        (3, "canary"): LabelCounts(30, sum(r.label for r in canary)),
        (2, "stable"): LabelCounts(40, sum(r.label for r in stable)),
        (2, None): LabelCounts(5, sum(r.label for r in direct[:5])),
        (1, None): LabelCounts(20, sum(r.label for r in direct)),
    }

    versions = by_version(predictions, labels, rows)

    assert [v.version for v in versions] == [3, 2, 1]
    three, two, one = versions
    assert [a.arm for a in three.arms] == ["canary"]
    assert one.arms == []
    assert [a.arm for a in two.arms] == [None, "stable"]
    assert (two.kpis.predictions, two.kpis.labelled, two.kpis.scored) == (90, 45, 45)
    assert two.kpis.label_coverage == pytest.approx(0.5)
    both = stable + direct[:5]
    assert two.kpis.auc == pytest.approx(
        roc_auc_score([r.label for r in both], [r.score for r in both])
    )
    stable_arm = two.arms[1].kpis
    assert stable_arm.auc == pytest.approx(
        roc_auc_score([r.label for r in stable], [r.score for r in stable])
    )
    assert (stable_arm.predictions, stable_arm.labelled) == (80, 40)


def test_a_version_without_labels_still_reports_its_predictions() -> None:
    [version] = by_version({(1, None): 12}, {}, [])
    kpis = version.kpis
    assert (kpis.predictions, kpis.labelled, kpis.positives, kpis.label_coverage) == (12, 0, 0, 0)
    assert (kpis.auc, kpis.brier, kpis.scored) == (None, None, 0)
