"""The artifact loader's extra trusted types: exactly what gradient-boosted trees need."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import skops.io
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier

from ombud.registry.schemas import ArtifactFormat
from ombud.serving.loader import EXTRA_TRUSTED_TYPES, ArtifactRejected, load_classifier


class ForeignClassifier(DummyClassifier):  # type: ignore[misc]
    """A type of nobody's review: its name is this test module's, not scikit-learn's."""


@pytest.fixture(scope="module")
def data() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    x, y = make_classification(n_samples=300, n_features=6, random_state=3)
    return x, y


def test_a_gradient_boosted_model_round_trips(data: tuple[Any, Any]) -> None:
    x, y = data
    model = HistGradientBoostingClassifier(max_iter=15, random_state=3).fit(x, y)
    artifact = skops.io.dumps(model)
    # It needs the extra types (skops alone refuses it), and no more than them.
    needed = set(skops.io.get_untrusted_types(data=artifact))
    assert needed
    assert needed <= EXTRA_TRUSTED_TYPES

    loaded = load_classifier(artifact, ArtifactFormat.SKOPS)

    assert isinstance(loaded, HistGradientBoostingClassifier)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_a_type_outside_scikit_learn_is_still_refused(data: tuple[Any, Any]) -> None:
    x, y = data
    artifact = skops.io.dumps(ForeignClassifier(strategy="prior").fit(x, y))

    with pytest.raises(ArtifactRejected, match=r"untrusted types: .*ForeignClassifier"):
        load_classifier(artifact, ArtifactFormat.SKOPS)


def test_categorical_trees_stay_refused(data: tuple[Any, Any]) -> None:
    """Native categorical support stores callables (``functools.partial``): not trusted."""
    x, y = data
    x = x.copy()
    x[:, 0] = (x[:, 0] > 0).astype(float)
    model = HistGradientBoostingClassifier(
        max_iter=5, categorical_features=[0], random_state=3
    ).fit(x, y)

    with pytest.raises(ArtifactRejected, match="functools.partial"):
        load_classifier(skops.io.dumps(model), ArtifactFormat.SKOPS)
