"""Per-prediction explanations: how much each declared input moved a model's output (SHAP).

Linear models (logistic regression, alone or after a scikit-learn preprocessing pipeline) are
explained with ``shap.LinearExplainer`` in log-odds against a small background sample the
version carries; tree ensembles with ``shap.TreeExplainer`` in the model's own margin (log-odds
for gradient boosting, probability for forests and single trees). Contributions of derived
columns (one-hot indicators, scaled numbers) are summed back to the input they came from, so an
explanation speaks of the inputs the version declares, never of internal columns.

SHAP values are additive: ``base_value + sum(contributions) == model_output`` in the stated
output space. Every explanation carries that identity's error so a reader can check it.

Everything here is blocking and CPU-bound: call it through :meth:`ModelRuntime.explain`. The
``shap`` import (over a second) is paid when a version's explainer is first built, at model
warm-up, not by a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from ombud.core.errors import FieldError, InvalidRequest
from ombud.registry.schemas import VersionCreate
from ombud.serving.artifacts import ArtifactIntegrityError, ArtifactStore
from ombud.serving.loader import ArtifactRejected, load_classifier

if TYPE_CHECKING:
    from ombud.serving.runtime import LoadedModel

Method = Literal["linear", "tree"]
OutputSpace = Literal["log-odds", "probability"]

MAX_BACKGROUND_ROWS = 100
"""At most this many background rows: enough for a stable baseline, cheap to carry and load."""

_LINEAR = frozenset({"LogisticRegression", "LogisticRegressionCV"})
_BOOSTED = frozenset({"GradientBoostingClassifier", "HistGradientBoostingClassifier"})
_FORESTS = frozenset(
    {"RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier",
     "ExtraTreeClassifier"}
)  # fmt: skip


class NotExplainable(Exception):
    """The version's model is of a kind ombud cannot explain (or lacks what explaining needs)."""


class Contribution(BaseModel):
    """One declared input: its value in the call and how far it moved the output."""

    feature: str
    value: Any
    contribution: float


class Explanation(BaseModel):
    """SHAP attribution of one prediction, in ``output_space``; plain JSON when dumped."""

    method: Method
    output_space: OutputSpace
    base_value: float
    """The model's expected output over the background (linear) or the training data (trees)."""
    model_output: float
    """The model's output for this call in ``output_space`` (not the probability, for log-odds)."""
    contributions: list[Contribution]
    """Largest absolute contribution first."""
    additivity_error: float
    """``|base_value + sum(contributions) - model_output|``: zero up to rounding."""


@dataclass(frozen=True)
class Explainer:
    """A built SHAP explainer for one loaded version, and how to reach its input space."""

    method: Method
    output_space: OutputSpace
    input_names: tuple[str, ...]
    preprocess: Any
    """The pipeline's transformers before the estimator, or None for a bare estimator."""
    estimator: Any
    shap_explainer: Any
    owners: tuple[int, ...]
    """For each column the estimator sees, the index of the declared input it derives from."""

    def explain(self, row: dict[str, Any]) -> Explanation:
        """Blocking: one row's explanation."""
        return self.explain_many([row])[0]

    def explain_many(self, rows: Sequence[dict[str, Any]]) -> list[Explanation]:
        """Blocking: one explanation per row, from one vectorized pass over the batch.

        Preprocessing, the SHAP attribution and the model output each run once for the whole
        batch: their fixed per-call cost is what makes single-row explanations expensive.
        """
        columns = self._columns(rows)
        attribution = self.shap_explainer(columns)
        values = np.asarray(attribution.values, dtype=float)
        base = np.asarray(attribution.base_values, dtype=float)
        if values.ndim == 3:  # one slice per class (forests): keep the positive class
            values, base = values[..., 1], base[..., 1]
        owners = np.asarray(self.owners, dtype=int)
        sums = np.zeros((len(rows), len(self.input_names)))
        for i in range(len(rows)):
            np.add.at(sums[i], owners, values[i])
        outputs = self._outputs(columns)
        bases = np.broadcast_to(np.ravel(base), (len(rows),))
        return [
            self._explanation(row, float(bases[i]), float(outputs[i]), sums[i])
            for i, row in enumerate(rows)
        ]

    def _explanation(
        self, row: dict[str, Any], base_value: float, output: float, sums: npt.NDArray[Any]
    ) -> Explanation:
        contributions = [
            Contribution(feature=name, value=row.get(name), contribution=float(sums[i]))
            for i, name in enumerate(self.input_names)
        ]
        contributions.sort(key=lambda c: abs(c.contribution), reverse=True)
        return Explanation(
            method=self.method,
            output_space=self.output_space,
            base_value=base_value,
            model_output=output,
            contributions=contributions,
            additivity_error=abs(base_value + float(sums.sum()) - output),
        )

    def _columns(self, rows: Sequence[dict[str, Any]]) -> npt.NDArray[np.float64]:
        matrix = _matrix(rows, self.input_names)
        if self.preprocess is None:
            return _numeric(matrix)
        return _dense(self.preprocess.transform(matrix))

    def _outputs(self, columns: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self.output_space == "log-odds":
            return np.ravel(self.estimator.decision_function(columns)).astype(float)
        return np.asarray(self.estimator.predict_proba(columns)[:, 1], dtype=float)


def explain(loaded: LoadedModel, row: dict[str, Any]) -> Explanation:
    """The explanation of ``row``'s prediction by ``loaded``. Blocking.

    Raises:
        NotExplainable: the model is not of a kind ombud explains.
    """
    return loaded.explainer.explain(row)


def build_explainer(
    model: Any, input_names: Sequence[str], background: Sequence[dict[str, Any]] | None
) -> Explainer:
    """The explainer for ``model`` (an estimator or a Pipeline ending in one). Blocking, slow.

    Raises:
        NotExplainable: an unsupported estimator or preprocessing step, a multi-class model, or
            a linear model without background rows.
    """
    preprocess, estimator = _split(model)
    kind = type(estimator).__name__
    classes = getattr(estimator, "classes_", ())
    if len(classes) != 2:
        raise NotExplainable(f"{kind}: only binary classifiers are explained")
    names = tuple(input_names)
    owners = (
        tuple(_owners(preprocess, names)) if preprocess is not None else tuple(range(len(names)))
    )
    import shap  # deferred: over a second to import, paid once per explaining version

    if kind in _LINEAR:
        if not background:
            raise NotExplainable(f"{kind}: a linear model needs explanation_background rows")
        matrix = _matrix(background, names)
        columns = _numeric(matrix) if preprocess is None else _dense(preprocess.transform(matrix))
        return Explainer(
            "linear", "log-odds", names, preprocess, estimator,
            shap.LinearExplainer(estimator, columns), owners,
        )  # fmt: skip
    if kind in _BOOSTED or kind in _FORESTS:
        space: OutputSpace = "log-odds" if kind in _BOOSTED else "probability"
        try:
            tree = shap.TreeExplainer(estimator)
        except Exception as exc:  # noqa: BLE001 - shap signals unsupported trees in many ways
            raise NotExplainable(f"{kind}: {exc}") from exc
        return Explainer("tree", space, names, preprocess, estimator, tree, owners)
    raise NotExplainable(f"{kind} is not an explainable model type (linear or tree ensembles)")


def ensure_explainable(
    model: Any, input_names: Sequence[str], background: Sequence[dict[str, Any]] | None
) -> None:
    """Refuse (422) a version that asks for explanations its model cannot give. Blocking.

    Builds the explainer and explains the first background row (or none), so a version is
    refused at registration rather than failing at its first call.
    """
    try:
        explainer = build_explainer(model, input_names, background)
        if background:
            explainer.explain(background[0])
    except NotExplainable as exc:
        raise InvalidRequest(
            detail=f"this version cannot explain its predictions: {exc}",
            errors=[FieldError(("body", "serving_config", "explain"), str(exc), "not_explainable")],
        ) from None


def verify_explainable(store: ArtifactStore, version: VersionCreate) -> None:
    """Refuse (422) a new version with ``serving_config.explain`` that could not explain.

    Reads and loads the version's artifact (verified, safe formats only) and builds its
    explainer. Blocking: call it off the event loop, at registration.
    """
    if not version.serving_config.explain:
        return
    try:
        data = store.read_verified(version.artifact_uri, version.sha256)
        names = [spec.name for spec in version.input_schema if spec.role == "input"]
        model = load_classifier(data, version.format, names)
    except (ArtifactIntegrityError, ArtifactRejected) as exc:
        raise InvalidRequest(
            detail=f"explanations need a loadable artifact to check: {exc}",
            errors=[FieldError(("body", "artifact_uri"), str(exc), "artifact_unreadable")],
        ) from None
    names = [spec.name for spec in version.input_schema if spec.role == "input"]
    ensure_explainable(model, names, version.serving_config.explanation_background)


def _split(model: Any) -> tuple[Any, Any]:
    """(preprocessing or None, final estimator) of a Pipeline or a bare estimator."""
    steps = getattr(model, "steps", None)
    if steps is None:
        return None, model
    if len(steps) == 1:
        return None, steps[-1][1]
    return model[:-1], steps[-1][1]


def _owners(transformer: Any, names: Sequence[str]) -> list[int]:
    """For each output column of ``transformer``, the index in ``names`` of its source input."""
    if transformer is None or transformer == "passthrough":
        return list(range(len(names)))
    if hasattr(transformer, "transformers_"):
        return _column_transformer_owners(transformer, names)
    if hasattr(transformer, "steps"):
        owners = list(range(len(names)))
        current = list(names)
        for _, step in transformer.steps:
            owners = [owners[i] for i in _owners(step, current)]
            current = _names_out(step, current)
        return owners
    return [_source(out, names) for out in _names_out(transformer, names)]


def _column_transformer_owners(transformer: Any, names: Sequence[str]) -> list[int]:
    width = sum(s.stop - s.start for s in transformer.output_indices_.values())
    owners = [-1] * width
    for label, step, columns in transformer.transformers_:
        if step == "drop":
            continue
        selected = _selected(columns, names)
        inner = _owners(step, [names[i] for i in selected])
        where = transformer.output_indices_[label]
        for offset, owner in enumerate(inner):
            owners[where.start + offset] = selected[owner]
    if -1 in owners:
        raise NotExplainable("some preprocessed columns cannot be traced to an input")
    return owners


def _selected(columns: Any, names: Sequence[str]) -> list[int]:
    """Indices in ``names`` of a ColumnTransformer's column selection."""
    if isinstance(columns, slice):
        return list(range(len(names)))[columns]
    items = list(np.ravel(np.asarray(columns, dtype=object)))
    if items and isinstance(items[0], bool | np.bool_):
        return [i for i, keep in enumerate(items) if keep]
    return [int(c) if not isinstance(c, str) else list(names).index(c) for c in items]


def _names_out(step: Any, names: Sequence[str]) -> list[str]:
    if step is None or step == "passthrough":
        return list(names)
    try:
        return [str(n) for n in step.get_feature_names_out(list(names))]
    except (AttributeError, ValueError, TypeError) as exc:
        raise NotExplainable(f"{type(step).__name__} does not name its output columns") from exc


def _source(column: str, names: Sequence[str]) -> int:
    """The input a derived column comes from: the same name, else the longest ``<input>_``
    prefix (``checking_status_lt_0`` comes from ``checking_status``)."""
    best = -1
    for i, name in enumerate(names):
        if column == name:
            return i
        if column.startswith(f"{name}_") and (best < 0 or len(name) > len(names[best])):
            best = i
    if best < 0:
        raise NotExplainable(f"column {column!r} cannot be traced to an input")
    return best


def _matrix(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> npt.NDArray[Any]:
    return np.array([[row.get(name) for name in names] for row in rows], dtype=object)


def _numeric(matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """A bare estimator's input as floats; a missing optional input becomes NaN."""
    return np.array(
        [[np.nan if v is None else float(v) for v in row] for row in matrix], dtype=float
    ).reshape(matrix.shape)


def _dense(columns: Any) -> npt.NDArray[np.float64]:
    dense = columns.toarray() if hasattr(columns, "toarray") else columns
    return np.asarray(dense, dtype=float)
