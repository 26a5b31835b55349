"""The gate's arithmetic: metrics on the golden rows, and the comparison with the policy.

No I/O and no clock: given the labels, both versions' scores and thresholds, and the policy,
:func:`judge` answers the same verdict every time, so it is tested on its own. Blocking
(scikit-learn): call it through a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ombud.registry.promotion_schemas import MetricComparison, PromotionPolicy, ScoreChange

LOWER_IS_BETTER = frozenset({"brier"})


@dataclass(frozen=True, slots=True)
class Scored:
    """One version's scores on the golden rows and the threshold that turns them into decisions."""

    version: int
    scores: Sequence[float]
    threshold: float

    @property
    def decisions(self) -> list[bool]:
        return [s >= self.threshold for s in self.scores]


@dataclass(frozen=True)
class Verdict:
    reasons: list[str]
    metrics: dict[str, MetricComparison]
    score_change: ScoreChange | None
    decision_change_fraction: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons


def metrics(labels: Sequence[int], scored: Scored) -> dict[str, float]:
    """ROC AUC and Brier on the scores; accuracy, precision and recall at the threshold."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(scored.scores, dtype=float)
    decided = np.asarray(scored.decisions, dtype=int)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, decided)),
        "precision": float(precision_score(y, decided, zero_division=0)),
        "recall": float(recall_score(y, decided, zero_division=0)),
        "brier": float(brier_score_loss(y, p)),
    }


def judge(
    labels: Sequence[int],
    candidate: Scored,
    baseline: Scored | None,
    policy: PromotionPolicy,
) -> Verdict:
    """Compare ``candidate`` with ``baseline`` (if any) under ``policy``."""
    mine = metrics(labels, candidate)
    theirs = metrics(labels, baseline) if baseline is not None else None
    table = {
        name: MetricComparison(
            candidate=value,
            baseline=theirs[name] if theirs else None,
            delta=value - theirs[name] if theirs else None,
        )
        for name, value in mine.items()
    }
    reasons = _floors(mine, policy)
    if baseline is None or theirs is None:
        return Verdict(reasons, table, None, None)
    reasons += _drops(mine, theirs, baseline.version, policy)
    change = _score_change(candidate, baseline, policy)
    flips = _flip_fraction(candidate, baseline)
    reasons += _change_reasons(change, flips, len(labels), baseline.version, policy)
    return Verdict(reasons, table, change, flips)


def _floors(mine: dict[str, float], policy: PromotionPolicy) -> list[str]:
    return [
        f"{name} {mine[name]:.4f} is below the floor of {floor:.4f}"
        for name, floor in sorted(policy.min_metrics.items())
        if mine[name] < floor
    ]


def _drops(
    mine: dict[str, float], theirs: dict[str, float], baseline: int, policy: PromotionPolicy
) -> list[str]:
    reasons = []
    for name, allowed in sorted(policy.max_metric_drop.items()):
        worse = mine[name] - theirs[name] if name in LOWER_IS_BETTER else theirs[name] - mine[name]
        if worse > allowed + 1e-12:
            verb = "rises" if name in LOWER_IS_BETTER else "drops"
            reasons.append(
                f"{name} {verb} by {worse:.4f} (from {theirs[name]:.4f} on v{baseline} to "
                f"{mine[name]:.4f}), more than the {allowed:.4f} allowed"
            )
    return reasons


def _score_change(candidate: Scored, baseline: Scored, policy: PromotionPolicy) -> ScoreChange:
    diffs = np.abs(np.asarray(candidate.scores, float) - np.asarray(baseline.scores, float))
    limit = policy.max_score_change
    over = int((diffs > limit + 1e-12).sum()) if limit is not None else 0
    return ScoreChange(
        max_abs=float(diffs.max()), mean_abs=float(diffs.mean()), rows_over_limit=over
    )


def _flip_fraction(candidate: Scored, baseline: Scored) -> float:
    flips = sum(a != b for a, b in zip(candidate.decisions, baseline.decisions, strict=True))
    return flips / len(candidate.scores)


def _change_reasons(
    change: ScoreChange, flips: float, rows: int, baseline: int, policy: PromotionPolicy
) -> list[str]:
    reasons = []
    if policy.max_score_change is not None and change.rows_over_limit:
        reasons.append(
            f"scores move by up to {change.max_abs:.4f} from v{baseline} "
            f"({change.rows_over_limit} of {rows} rows by more than "
            f"{policy.max_score_change:.4f} allowed)"
        )
    limit = policy.max_decision_change_fraction
    if limit is not None and flips > limit + 1e-12:
        reasons.append(
            f"{flips:.2%} of golden rows ({round(flips * rows)} of {rows}) change decision "
            f"from v{baseline}, more than the {limit:.2%} allowed"
        )
    return reasons
