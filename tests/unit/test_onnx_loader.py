"""ONNX artifacts load through the same loader as skops ones and score like their source."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ombud.registry.schemas import ArtifactFormat
from ombud.serving.loader import ArtifactRejected, load_classifier
from tests import onnx_support


@pytest.mark.parametrize("zipmap", [False, True])
def test_a_converted_pipeline_scores_like_scikit_learn(zipmap: bool) -> None:
    pipeline, graph = onnx_support.pipeline_model(zipmap=zipmap)
    classifier = load_classifier(graph, ArtifactFormat.ONNX, onnx_support.FEATURES)
    rows = np.array([["basic", 3], ["pro", 40], ["basic", 47]], dtype=object)
    expected = pipeline.predict_proba(pd.DataFrame(rows, columns=["plan", "tenure"]))
    assert classifier.predict_proba(rows) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("zipmap", [False, True])
def test_a_single_matrix_input_takes_the_features_in_order(zipmap: bool) -> None:
    model, graph = onnx_support.matrix_model(zipmap=zipmap)
    classifier = load_classifier(graph, ArtifactFormat.ONNX, ("a", "b", "c"))
    rows = np.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]], dtype=object)
    expected = model.predict_proba(rows.astype(np.float32))
    assert classifier.predict_proba(rows) == pytest.approx(expected, abs=1e-5)


def test_graph_inputs_must_be_the_versions_features() -> None:
    _, graph = onnx_support.pipeline_model()
    with pytest.raises(ArtifactRejected, match="not the version's input features"):
        load_classifier(graph, ArtifactFormat.ONNX, ("plan", "months"))


def test_bytes_that_are_not_a_graph_are_refused() -> None:
    with pytest.raises(ArtifactRejected, match="unreadable ONNX graph"):
        load_classifier(b"\x08\x07not a graph", ArtifactFormat.ONNX, ("a",))
    # A skops artifact is not a graph either: the declared format decides the loader.
    with pytest.raises(ArtifactRejected):
        load_classifier(b"PK\x03\x04skops", ArtifactFormat.ONNX, ("a",))
