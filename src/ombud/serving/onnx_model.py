"""ONNX classifiers, run by ONNX Runtime behind the same ``predict_proba`` as scikit-learn.

An ONNX file is a computation graph, not code: ONNX Runtime executes only its own operators, and
a graph that needs a custom operator library does not load. Two input layouts are accepted, the
two that converters such as skl2onnx produce for tabular models:

- one 2-D numeric tensor ``[batch, n]``: the version's input features, in declared order;
- one tensor per input feature, named after it, ``[batch, 1]`` each (mixed types: strings for
  categories, numbers for the rest), which is how a whole preprocessing pipeline converts.

The probabilities are taken from the output that holds them: a ``[batch, 2]`` tensor, or the
per-row ``{class: probability}`` maps of a ZipMap. Only binary classifiers load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

_NUMERIC: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}
_STRING = "tensor(string)"


class OnnxRejected(Exception):
    """The graph does not load, or its inputs or outputs are not those of a binary classifier."""


class OnnxClassifier:
    """A loaded ONNX binary classifier. ``predict_proba`` takes the same object matrix (rows of
    the declared inputs, in order) the runtime gives scikit-learn models. Thread-safe: ONNX
    Runtime sessions may be run concurrently."""

    def __init__(self, data: bytes, input_names: Sequence[str]) -> None:
        import onnxruntime  # deferred: only processes that serve ONNX models pay for it

        options = onnxruntime.SessionOptions()
        # Inference threads are the runtime's to size; one graph run stays on one core.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - any load failure means "not a usable graph"
            raise OnnxRejected(f"unreadable ONNX graph: {exc}") from exc
        self._names = tuple(input_names)
        self._inputs = [(i.name, i.type) for i in self._session.get_inputs()]
        self._check_inputs()
        self._output = self._probability_output()

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        matrix = np.asarray(x, dtype=object)
        if matrix.ndim != 2:
            raise ValueError("expected a 2-D matrix of rows")
        results = self._session.run([self._output], self._feed(matrix))[0]
        return _probabilities(results)

    def _feed(self, matrix: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        if len(self._inputs) == 1 and self._inputs[0][1] in _NUMERIC:
            name, kind = self._inputs[0]
            return {name: matrix.astype(_NUMERIC[kind])}
        columns = {name: i for i, name in enumerate(self._names)}
        feed: dict[str, npt.NDArray[Any]] = {}
        for name, kind in self._inputs:
            column = matrix[:, columns[name]].reshape(-1, 1)
            feed[name] = column.astype(str) if kind == _STRING else column.astype(_NUMERIC[kind])
        return feed

    def _check_inputs(self) -> None:
        if len(self._inputs) == 1 and self._inputs[0][1] in _NUMERIC:
            return
        # Without the names (an artifact checked before it is registered), only types can be.
        unknown = [name for name, _ in self._inputs if self._names and name not in self._names]
        if unknown:
            raise OnnxRejected(
                f"graph inputs {unknown} are not the version's input features "
                f"(expected one numeric matrix, or one input per feature named after it)"
            )
        odd = [f"{name}: {kind}" for name, kind in self._inputs if kind not in (*_NUMERIC, _STRING)]
        if odd:
            raise OnnxRejected(f"unsupported graph input types: {odd}")

    def _probability_output(self) -> str:
        outputs: list[tuple[str, str]] = [
            (str(o.name), str(o.type)) for o in self._session.get_outputs()
        ]
        for name, kind in outputs:
            if kind.startswith("seq(map(") or ("prob" in name.lower() and kind in _NUMERIC):
                return name
        numeric = [name for name, kind in outputs if kind in ("tensor(float)", "tensor(double)")]
        if len(numeric) == 1:
            return numeric[0]
        raise OnnxRejected(f"no probability output among {outputs}")


def _probabilities(results: Any) -> npt.NDArray[np.float64]:
    """``[batch, 2]`` probabilities from a tensor or from ZipMap's per-row dictionaries."""
    if isinstance(results, list):  # ZipMap: one {class: probability} per row
        if results and len(results[0]) != 2:
            raise ValueError("not a binary classifier")
        return np.array([[row[k] for k in sorted(row)] for row in results], dtype=np.float64)
    probabilities = np.asarray(results, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != 2:
        raise ValueError(f"probabilities of shape {probabilities.shape}: not a binary classifier")
    return probabilities
