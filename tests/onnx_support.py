"""Small ONNX classifiers for tests, converted from scikit-learn with skl2onnx (fixed seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

FEATURES = ("plan", "tenure")


def frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {"plan": rng.choice(["basic", "pro"], n), "tenure": rng.integers(0, 48, n).astype(float)}
    )
    labels = ((data.tenure < 20) & (data.plan == "basic")).astype(int)
    return data, labels


def pipeline_model(*, zipmap: bool = False) -> tuple[Pipeline, bytes]:
    """A one-hot + scaling pipeline: the graph takes one input per feature, named after it."""
    data, labels = frame()
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
         ("num", StandardScaler(), ["tenure"])]
    )  # fmt: skip
    pipeline = Pipeline([("encode", encode), ("classify", LogisticRegression())]).fit(data, labels)
    inputs = [("plan", StringTensorType([None, 1])), ("tenure", FloatTensorType([None, 1]))]
    graph = to_onnx(pipeline, initial_types=inputs, options={"zipmap": zipmap})
    return pipeline, graph.SerializeToString()


def matrix_model(*, zipmap: bool = True) -> tuple[LogisticRegression, bytes]:
    """A bare logistic regression over three numbers: one ``[batch, 3]`` float input."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    graph = to_onnx(model, x[:1], options={"zipmap": zipmap})
    return model, graph.SerializeToString()
