"""Turning verified artifact bytes into an estimator, in safe formats only (never raw pickle)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ombud.registry.schemas import ArtifactFormat

# Types outside skops' own trusted set that ombud accepts in an artifact. Anything else must be
# reviewed and added here deliberately, by its exact dotted name.
EXTRA_TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # The fitted trees of HistGradientBoostingClassifier (numeric features): scikit-learn's
        # own class, restored from plain numpy arrays (nodes, bitsets) with no callable in its
        # state, so loading it runs no code from the artifact. Models with native categorical
        # features also carry ``functools.partial`` and ``check_array``: callables, still refused.
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


class ArtifactRejected(Exception):
    """The artifact is in a format ombud will not load, or holds untrusted types."""


class Classifier(Protocol):
    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]: ...


def load_classifier(
    data: bytes, artifact_format: ArtifactFormat, input_names: Sequence[str] = ()
) -> Classifier:
    """The estimator in ``data``: skops (types on an allow-list) or an ONNX graph.

    ``input_names`` are the version's input features in declared order; an ONNX graph with one
    input per feature is fed by these names.
    """
    if artifact_format is ArtifactFormat.ONNX:
        return _load_onnx(data, input_names)
    return _load_skops(data)


def _load_onnx(data: bytes, input_names: Sequence[str]) -> Classifier:
    from ombud.serving.onnx_model import OnnxClassifier, OnnxRejected

    try:
        return OnnxClassifier(data, input_names)
    except OnnxRejected as exc:
        raise ArtifactRejected(str(exc)) from exc


def _load_skops(data: bytes) -> Classifier:
    import skops.io  # deferred: importing skops costs over a second, only needed to load

    try:
        untrusted = set(skops.io.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a valid artifact"
        raise ArtifactRejected(f"unreadable skops artifact: {exc}") from exc
    unexpected = untrusted - EXTRA_TRUSTED_TYPES
    if unexpected:
        raise ArtifactRejected(f"artifact holds untrusted types: {sorted(unexpected)}")
    model = skops.io.loads(data, trusted=sorted(untrusted))
    if not callable(getattr(model, "predict_proba", None)):
        raise ArtifactRejected("artifact is not a probabilistic classifier")
    return model  # type: ignore[no-any-return]
