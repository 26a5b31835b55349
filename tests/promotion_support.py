"""A small churn classifier and its golden rows, for tests that approve versions.

Every approval passes the promotion gate, which scores the candidate for real: these helpers
train a one-feature logistic regression (``tenure_months``), serialize it with skops, and give
labelled rows that fit its input contract. Deterministic: fixed seeds throughout.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import skops.io
from sklearn.linear_model import LogisticRegression

from ombud.serving.artifacts import ArtifactStore

FEATURE = "tenure_months"
GOLDEN_SIZE = 120


def _data(n: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Short tenures churn more: P(churn) falls from ~0.95 at 0 months to ~0.05 at 48."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 49, size=n)
    churn = rng.random(n) < 1.0 / (1.0 + np.exp((tenure - 24) / 8.0))
    return tenure.reshape(-1, 1), churn.astype(int)


def train(*, shuffled: bool = False, seed: int = 1) -> bytes:
    """A skops artifact of the churn model; ``shuffled`` trains on permuted labels (useless)."""
    x, y = _data(400, seed)
    if shuffled:
        y = np.random.default_rng(seed + 1).permutation(y)
    model = LogisticRegression().fit(x.astype(float), y)
    buffer = io.BytesIO()
    skops.io.dump(model, buffer)
    return buffer.getvalue()


def store(artifacts: ArtifactStore, *, shuffled: bool = False, seed: int = 1) -> tuple[str, str]:
    """Train and store an artifact; returns (uri, sha256)."""
    stored = artifacts.put(train(shuffled=shuffled, seed=seed), "skops")
    return stored.uri, stored.sha256


def golden_rows(n: int = GOLDEN_SIZE, seed: int = 99) -> list[dict[str, Any]]:
    """Labelled rows drawn like the training data, but from another seed."""
    x, y = _data(n, seed)
    return [
        {"features": {FEATURE: int(t)}, "label": int(label)}
        for t, label in zip(x[:, 0], y, strict=True)
    ]


def golden_body(**changes: Any) -> dict[str, Any]:
    return {"rows": golden_rows(), "description": "held-out churn sample"} | changes
