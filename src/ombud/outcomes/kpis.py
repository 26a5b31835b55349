"""The KPI arithmetic: discrimination, decisions and calibration of labelled scores.

No I/O and no clock: given scores, each one's decision threshold and the observed labels, the
numbers are the same every time, so they are tested on their own against scikit-learn.
Blocking for many rows (scikit-learn, numpy): callers run big inputs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

BINS = 10
"""Equal-width reliability bins over [0, 1]."""


@dataclass(frozen=True, slots=True)
class Labelled:
    """One labelled prediction: its score, the threshold it was decided at, and the truth."""

    score: float
    threshold: float
    label: int


@dataclass(frozen=True, slots=True)
class Bin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_rate: float | None


@dataclass(frozen=True, slots=True)
class Quality:
    """What the labelled predictions say about the model; ``None`` where undefined."""

    scored: int
    auc: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    brier: float | None
    ece: float | None
    reliability: list[Bin]


def quality(rows: Sequence[Labelled]) -> Quality:
    """Every KPI of ``rows``.

    AUC needs both labels; precision needs a positive decision (score at or above its own
    threshold); recall needs a positive label; F1 needs both of those; Brier and ECE need one
    row. Anything undefined is ``None``, never a misleading 0.
    """
    y = np.fromiter((r.label for r in rows), dtype=int, count=len(rows))
    p = np.fromiter((r.score for r in rows), dtype=float, count=len(rows))
    decided = np.fromiter((r.score >= r.threshold for r in rows), dtype=int, count=len(rows))
    bins = reliability(y, p)
    if not rows:
        return Quality(0, None, None, None, None, None, None, bins)
    positives, predicted = int(y.sum()), int(decided.sum())
    hits = int((y & decided).sum())
    precision = hits / predicted if predicted else None
    recall = hits / positives if positives else None
    f1 = (
        float(f1_score(y, decided, zero_division=0.0))
        if precision is not None and recall is not None
        else None
    )
    auc = float(roc_auc_score(y, p)) if 0 < positives < len(rows) else None
    return Quality(
        scored=len(rows),
        auc=auc,
        precision=precision,
        recall=recall,
        f1=f1,
        brier=float(brier_score_loss(y, p, labels=[0, 1])),
        ece=expected_calibration_error(bins, len(rows)),
        reliability=bins,
    )


def reliability(labels: NDArray[np.int_], scores: NDArray[np.float64]) -> list[Bin]:
    """Mean score and observed positive rate per bin: ``(lower, upper]``, the first with 0.

    Binned as scikit-learn's ``calibration_curve(strategy="uniform")`` bins, so both agree
    on a score that falls on an edge.
    """
    edges = np.linspace(0.0, 1.0, BINS + 1)
    ids = np.searchsorted(edges[1:-1], np.clip(scores, 0.0, 1.0))
    out = []
    for i in range(BINS):
        mask = ids == i
        count = int(mask.sum())
        out.append(
            Bin(
                lower=float(edges[i]),
                upper=float(edges[i + 1]),
                count=count,
                mean_predicted=float(scores[mask].mean()) if count else None,
                observed_rate=float(labels[mask].mean()) if count else None,
            )
        )
    return out


def expected_calibration_error(bins: Sequence[Bin], total: int) -> float | None:
    """The count-weighted mean gap between predicted and observed rate over the bins."""
    if total == 0:
        return None
    gaps = (
        b.count / total * abs(b.mean_predicted - b.observed_rate)
        for b in bins
        if b.mean_predicted is not None and b.observed_rate is not None
    )
    return float(sum(gaps))
