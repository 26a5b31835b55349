"""SHAP explanations: additive in the stated output space, spoken in the declared inputs."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from ombud.core.errors import InvalidRequest
from ombud.demo import credit_model
from ombud.demo.german_credit import load
from ombud.gateway.call import Call
from ombud.predictions.explanation_service import ContributionRead, summarize
from ombud.registry.schemas import (
    ArtifactFormat,
    FeatureSpec,
    ModelVersion,
    ServingConfig,
    VersionCreate,
    VersionStatus,
)
from ombud.serving.artifacts import LocalArtifactStore
from ombud.serving.explain import NotExplainable, ensure_explainable, explain, verify_explainable
from ombud.serving.explain_stage import ExplainPrediction
from ombud.serving.features import build_validator
from ombud.serving.ports import AnyRuntime
from ombud.serving.runtime import LoadedModel

TOLERANCE = 1e-6
NUMERIC = [FeatureSpec(name=f"x{i}", type="number") for i in range(4)]


def loaded_model(classifier: Any, specs: list[FeatureSpec], serving: ServingConfig) -> LoadedModel:
    version = ModelVersion(
        id="ver_1", model="m", version=1, status=VersionStatus.APPROVED,
        format=ArtifactFormat.SKOPS, artifact_uri="file:///none", sha256="0" * 64,
        features=specs, serving=serving,
    )  # fmt: skip
    return LoadedModel(version, classifier, build_validator("m", specs))


@pytest.fixture(scope="module")
def demo_pipeline() -> Pipeline:
    pipeline, _ = credit_model.train()
    return pipeline


@pytest.fixture(scope="module")
def demo(demo_pipeline: Pipeline) -> LoadedModel:
    serving = credit_model.explaining_serving_config()
    return loaded_model(demo_pipeline, credit_model.feature_specs(), serving)


def demo_rows(count: int) -> list[dict[str, Any]]:
    return [dict(row) for row in load().rows[-count:]]


def decision(pipeline: Any, row: dict[str, Any], names: tuple[str, ...]) -> float:
    matrix = np.array([[row.get(n) for n in names]], dtype=object)
    return float(pipeline.decision_function(matrix)[0])


def test_demo_pipeline_is_additive_in_log_odds(demo: LoadedModel, demo_pipeline: Pipeline) -> None:
    for row in demo_rows(20):
        explanation = explain(demo, row)
        total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
        expected = decision(demo_pipeline, row, demo.input_names)
        assert explanation.output_space == "log-odds"
        assert explanation.method == "linear"
        assert explanation.model_output == pytest.approx(expected, abs=TOLERANCE)
        assert total == pytest.approx(expected, abs=TOLERANCE)
        assert explanation.additivity_error < TOLERANCE
        score = demo.score(row)
        assert 1.0 / (1.0 + math.exp(-explanation.model_output)) == pytest.approx(score)


def test_demo_contributions_are_per_declared_input_and_sorted(demo: LoadedModel) -> None:
    row = {**credit_model.EXAMPLE_APPLICANT, "checking_status": "lt_0"}
    explanation = explain(demo, row)
    names = [c.feature for c in explanation.contributions]
    assert sorted(names) == sorted(credit_model.INPUTS)  # no one-hot column, no protected input
    sizes = [abs(c.contribution) for c in explanation.contributions]
    assert sizes == sorted(sizes, reverse=True)
    values = {c.feature: c.value for c in explanation.contributions}
    assert values["checking_status"] == "lt_0"
    assert values["credit_amount"] == 4500


def test_one_hot_columns_are_summed_back_to_their_input(
    demo: LoadedModel, demo_pipeline: Pipeline
) -> None:
    """A linear model's SHAP value is coef * (x - background mean), per transformed column."""
    names = demo.input_names
    encode, classify = demo_pipeline[:-1], demo_pipeline[-1]
    background = credit_model.explanation_background()
    matrix = np.array([[r[n] for n in names] for r in background], dtype=object)
    mean = np.asarray(encode.transform(matrix).toarray().mean(axis=0)).ravel()
    row = demo_rows(1)[0]
    columns = encode.transform(np.array([[row[n] for n in names]], dtype=object)).toarray()[0]
    per_column = classify.coef_[0] * (columns - mean)
    explanation = explain(demo, row)
    by_feature = {c.feature: c.contribution for c in explanation.contributions}
    encoder = encode[0]
    for label, _, selected in encoder.transformers_:
        if label == "remainder":
            continue
        where = encoder.output_indices_[label]
        step = encoder.named_transformers_[label]
        out = step.get_feature_names_out([names[i] for i in selected])
        for i in selected:
            mine = [where.start + j for j, n in enumerate(out) if n == names[i] or
                    n.startswith(names[i] + "_")]  # fmt: skip
            assert by_feature[names[i]] == pytest.approx(per_column[mine].sum(), abs=TOLERANCE)


def to_skops(model: Any) -> bytes:
    import skops.io

    buffer = io.BytesIO()
    skops.io.dump(model, buffer)
    return buffer.getvalue()


def numeric_data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    return x, y


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingClassifier(max_iter=40, random_state=0),
        GradientBoostingClassifier(n_estimators=40, random_state=0),
    ],
    ids=["hist-gradient-boosting", "gradient-boosting"],
)
def test_boosted_trees_are_additive_in_their_margin(estimator: Any) -> None:
    x, y = numeric_data()
    estimator.fit(x, y)
    model = loaded_model(estimator, NUMERIC, ServingConfig(explain=True))
    for sample in x[:10]:
        row = {f"x{i}": float(v) for i, v in enumerate(sample)}
        explanation = explain(model, row)
        margin = float(estimator.decision_function(sample.reshape(1, -1))[0])
        total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
        assert (explanation.method, explanation.output_space) == ("tree", "log-odds")
        assert total == pytest.approx(margin, abs=TOLERANCE)
        assert explanation.model_output == pytest.approx(margin, abs=TOLERANCE)
    # x3 plays no part in the label: the model leans on the others.
    top = explain(model, {f"x{i}": 1.0 for i in range(4)}).contributions[0]
    assert top.feature != "x3"


def test_forests_are_additive_in_probability() -> None:
    x, y = numeric_data()
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)
    model = loaded_model(forest, NUMERIC, ServingConfig(explain=True))
    row = {f"x{i}": float(v) for i, v in enumerate(x[0])}
    explanation = explain(model, row)
    total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
    assert explanation.output_space == "probability"
    assert total == pytest.approx(forest.predict_proba(x[:1])[0, 1], abs=TOLERANCE)


def test_other_model_types_are_not_explainable() -> None:
    x, y = numeric_data()
    neighbours = KNeighborsClassifier().fit(x, y)
    model = loaded_model(neighbours, NUMERIC, ServingConfig(explain=True))
    with pytest.raises(NotExplainable, match="KNeighborsClassifier"):
        explain(model, {f"x{i}": 0.0 for i in range(4)})
    with pytest.raises(InvalidRequest) as refused:
        ensure_explainable(neighbours, [s.name for s in NUMERIC], None)
    assert refused.value.status == 422
    assert refused.value.errors[0].loc == ("body", "serving_config", "explain")


def test_multiclass_models_are_not_explainable() -> None:
    x, _ = numeric_data()
    labels = np.digitize(x[:, 0], [-0.5, 0.5])
    boosted = HistGradientBoostingClassifier(max_iter=5).fit(x, labels)
    with pytest.raises(InvalidRequest, match="binary"):
        ensure_explainable(boosted, [s.name for s in NUMERIC], None)


def test_a_linear_model_needs_background_rows(demo_pipeline: Pipeline) -> None:
    model = loaded_model(demo_pipeline, credit_model.feature_specs(), ServingConfig(explain=True))
    with pytest.raises(NotExplainable, match="explanation_background"):
        explain(model, credit_model.EXAMPLE_APPLICANT)
    ensure_explainable(  # with its background, the demo model passes
        demo_pipeline, credit_model.INPUTS, credit_model.explanation_background()
    )


def version_body(background: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "artifact_uri": "file:///m.skops", "sha256": "0" * 64, "format": "skops",
        "input_schema": [s.model_dump() for s in credit_model.feature_specs()],
        "serving_config": {"explain": True, "explanation_background": background},
    }  # fmt: skip


def test_background_rows_are_validated_against_the_inputs() -> None:
    good = credit_model.explanation_background(size=5)
    assert VersionCreate.model_validate(version_body(good)).serving_config.explain
    bad = [*good, {**good[0], "checking_status": "rich"}]
    with pytest.raises(ValidationError, match=r"explanation_background\[5\].*checking_status"):
        VersionCreate.model_validate(version_body(bad))
    with pytest.raises(ValidationError, match="sex"):  # protected inputs never reach the model
        VersionCreate.model_validate(version_body([{**good[0], "sex": "female"}]))
    with pytest.raises(ValidationError, match="100"):
        VersionCreate.model_validate(version_body(good * 21))


def test_summary_names_the_top_factors_each_way() -> None:
    contributions = [
        ContributionRead(feature="checking_status", value="lt_0", contribution=0.84,
                         direction="raises"),
        ContributionRead(feature="savings", value="ge_1000", contribution=-0.52,
                         direction="lowers"),
        ContributionRead(feature="duration_months", value=48, contribution=0.31,
                         direction="raises"),
    ]  # fmt: skip
    summary = summarize(contributions, -1.07, -0.44, "log-odds", 0.39)
    assert (
        "The largest factor raising the score was checking_status = lt_0 (+0.84 log-odds)."
        in summary
    )
    assert "Other factors raising it: duration_months = 48 (+0.31)." in summary
    assert (
        "The largest factor lowering the score was savings = ge_1000 (-0.52 log-odds)." in summary
    )
    none_lower = summarize(contributions[:1], 0.0, 0.84, "log-odds", 0.7)
    assert "No input lowered the score." in none_lower


def test_registration_refuses_a_version_that_cannot_explain(tmp_path: Path) -> None:
    x, y = numeric_data()
    store = LocalArtifactStore(tmp_path)
    bayes = store.put(to_skops(GaussianNB().fit(x, y)), "skops")
    body = {
        "artifact_uri": bayes.uri, "sha256": bayes.sha256, "format": "skops",
        "input_schema": [s.model_dump() for s in NUMERIC],
        "serving_config": {"explain": True},
    }  # fmt: skip
    with pytest.raises(InvalidRequest, match="GaussianNB"):
        verify_explainable(store, VersionCreate.model_validate(body))
    verify_explainable(  # the same version without explanations is none of its business
        store, VersionCreate.model_validate({**body, "serving_config": {"explain": False}})
    )
    missing = {**body, "sha256": "1" * 64}
    with pytest.raises(InvalidRequest, match="loadable artifact"):
        verify_explainable(store, VersionCreate.model_validate(missing))


def test_registration_accepts_the_demo_model(tmp_path: Path, demo_pipeline: Pipeline) -> None:
    store = LocalArtifactStore(tmp_path)
    stored = store.put(to_skops(demo_pipeline), "skops")
    serving = credit_model.explaining_serving_config().model_dump()
    body = {
        "artifact_uri": stored.uri, "sha256": stored.sha256, "format": "skops",
        "input_schema": [s.model_dump() for s in credit_model.feature_specs()],
        "serving_config": serving,
    }  # fmt: skip
    verify_explainable(store, VersionCreate.model_validate(body))


class FakeRuntime:
    """The two runtime methods the stage uses, over an in-memory loaded model."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.explained = 0

    async def get(self, version: ModelVersion) -> LoadedModel:
        return self.model

    async def explain(self, model: LoadedModel, features: dict[str, Any]) -> dict[str, Any]:
        self.explained += 1
        return explain(model, features).model_dump(mode="json")


def stage_call(model: LoadedModel, features: dict[str, Any]) -> Call:
    call = Call(route="model.predict", request_id="req_1", model_version=model.version)
    call.payload = features
    return call


@pytest.mark.anyio
async def test_the_stage_explains_only_versions_that_ask_for_it(demo: LoadedModel) -> None:
    runtime = FakeRuntime(demo)
    stage = ExplainPrediction(cast(AnyRuntime, runtime))
    call = stage_call(demo, dict(credit_model.EXAMPLE_APPLICANT))
    await stage(call)
    assert call.explanation is not None
    assert json.loads(json.dumps(call.explanation)) == call.explanation  # plain JSON
    assert {c["feature"] for c in call.explanation["contributions"]} == set(credit_model.INPUTS)

    silent = loaded_model(demo.classifier, credit_model.feature_specs(), ServingConfig())
    quiet_call = stage_call(silent, dict(credit_model.EXAMPLE_APPLICANT))
    await ExplainPrediction(cast(AnyRuntime, FakeRuntime(silent)))(quiet_call)
    assert quiet_call.explanation is None
    assert runtime.explained == 1


@pytest.mark.anyio
async def test_an_unexplainable_model_still_answers_with_a_finding() -> None:
    x, y = numeric_data()
    model = loaded_model(GaussianNB().fit(x, y), NUMERIC, ServingConfig(explain=True))
    call = stage_call(model, {f"x{i}": 0.0 for i in range(4)})
    await ExplainPrediction(cast(AnyRuntime, FakeRuntime(model)))(call)
    assert call.explanation is None
    assert [(f.stage, f.kind) for f in call.findings] == [("model.explain", "not_explainable")]


def test_a_batch_explains_each_row_as_it_would_alone(demo: LoadedModel) -> None:
    """Explanations are batched like scores: a row's explanation never depends on its batch."""
    rows = [dict(row) for row in load().rows[:12]]
    alone = [explain(demo, row).model_dump(mode="json") for row in rows]
    together = demo.explain_many(rows)
    assert len(together) == len(rows)
    for single, batched in zip(alone, together, strict=True):
        assert batched["model_output"] == pytest.approx(single["model_output"], abs=1e-9)
        assert [c["feature"] for c in batched["contributions"]] == [
            c["feature"] for c in single["contributions"]
        ]
        assert [c["contribution"] for c in batched["contributions"]] == pytest.approx(
            [c["contribution"] for c in single["contributions"]], abs=1e-9
        )
        assert batched["additivity_error"] < 1e-6
