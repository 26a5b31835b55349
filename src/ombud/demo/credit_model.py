"""Train the demo credit-risk classifier and describe its inputs.

A logistic regression over one-hot categories and scaled amounts: small, fast, explainable, and
deterministic for a given scikit-learn version. ``sex`` and ``age`` are declared as protected
attributes: recorded for fairness monitoring, never given to the estimator.
"""

from __future__ import annotations

import io
from typing import Any, Literal

import numpy as np
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ombud.demo.example import EXAMPLE_APPLICANT
from ombud.demo.german_credit import CATEGORIES, INTEGER_FEATURES, load
from ombud.registry.schemas import FeatureSpec, FeatureViewSource, ServingConfig

MODEL_NAME = "credit-risk"
PROTECTED = ("sex", "age")
INPUTS = (
    "checking_status", "duration_months", "credit_history", "purpose", "credit_amount",
    "savings", "employment_since", "installment_rate", "property", "housing",
)  # fmt: skip

__all__ = ["EXAMPLE_APPLICANT", "MODEL_NAME", "feature_specs", "serving_config", "train"]


def feature_specs() -> list[FeatureSpec]:
    """The model's input contract, in request order; protected attributes last."""
    specs = [_spec(name, role="input") for name in INPUTS]
    specs += [_spec(name, role="protected") for name in PROTECTED]
    return specs


def _spec(name: str, *, role: Literal["input", "protected"]) -> FeatureSpec:
    required = role == "input"
    if name in INTEGER_FEATURES:
        return FeatureSpec(name=name, type="integer", minimum=0, role=role, required=required)
    values = sorted(set(CATEGORIES[name].values()))
    return FeatureSpec(name=name, type="category", categories=values, role=role, required=required)


PROFILE_VIEW = FeatureViewSource(
    name="credit_applicant_profile",
    version=1,
    # The most common value of each in the training data: what an applicant who opted out of
    # personalization is scored with instead of their own standing data.
    fallback={
        "checking_status": "none", "credit_history": "existing_paid", "savings": "lt_100",
        "employment_since": "1_to_4y", "property": "car_other", "housing": "own",
    },
)  # fmt: skip
"""The applicant's standing data comes from this view (``features/credit_applicant_profile.yaml``)
when a call names the subject and leaves it out."""


def serving_config() -> ServingConfig:
    return ServingConfig(
        threshold=0.5,
        score_meaning="probability that the applicant is a bad credit risk",
        positive_decision="decline",
        negative_decision="approve",
        feature_view=PROFILE_VIEW,
    )


def explaining_serving_config() -> ServingConfig:
    """:func:`serving_config` with per-prediction explanations on: credit scoring is high-impact."""
    return serving_config().model_copy(
        update={"explain": True, "explanation_background": explanation_background()}
    )


def explanation_background(size: int = 100, random_state: int = 7) -> list[dict[str, Any]]:
    """``size`` training rows (inputs only), the same on every run: the explanations' baseline.

    The split repeats :func:`train`'s, so no held-out row is used; its training rows come in a
    shuffled order, so the first ``size`` are a random sample of them.
    """
    data = load()
    indices = np.arange(len(data.rows))
    train_indices, _ = train_test_split(
        indices, test_size=0.2, random_state=random_state, stratify=np.array(data.labels)
    )
    return [{name: data.rows[i][name] for name in INPUTS} for i in train_indices[:size]]


def golden_rows(random_state: int = 7) -> list[dict[str, Any]]:
    """The held-out 20% (200 rows) of :func:`train`'s split, inputs and true label, as the
    promotion gate's golden dataset: ``{"features": {...}, "label": 0|1}`` per row."""
    data = load()
    indices = np.arange(len(data.rows))
    _, test_indices = train_test_split(
        indices, test_size=0.2, random_state=random_state, stratify=np.array(data.labels)
    )
    return [
        {"features": {name: data.rows[i][name] for name in INPUTS}, "label": data.labels[i]}
        for i in test_indices
    ]


def train(random_state: int = 7) -> tuple[Pipeline, dict[str, float]]:
    """Fit on 80% of the rows; return the pipeline and its held-out accuracy and AUC."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    data = load()
    matrix = np.array([[row[name] for name in INPUTS] for row in data.rows], dtype=object)
    labels = np.array(data.labels)
    x_train, x_test, y_train, y_test = train_test_split(
        matrix, labels, test_size=0.2, random_state=random_state, stratify=labels
    )
    categorical = [i for i, name in enumerate(INPUTS) if name not in INTEGER_FEATURES]
    numeric = [i for i, name in enumerate(INPUTS) if name in INTEGER_FEATURES]
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
                        ("numbers", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=1000, C=0.5)),
        ]
    )
    pipeline.fit(x_train, y_train)
    scores = pipeline.predict_proba(x_test)[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(y_test, scores >= 0.5)),
        "roc_auc": float(roc_auc_score(y_test, scores)),
    }
    return pipeline, metrics


def to_skops(pipeline: Pipeline) -> bytes:
    """Serialize in the skops format (no pickle)."""
    buffer = io.BytesIO()
    skops.io.dump(pipeline, buffer)
    return buffer.getvalue()
