"""Reading a recorded explanation back, and saying it in plain sentences.

The numbers come from SHAP (:mod:`ombud.serving.explain`); the sentences name the inputs that
pushed the score up and down the most, so a person affected by a decision, or the analyst
answering them, can read why without knowing what SHAP is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.core.errors import NotFound, SubjectErased
from ombud.crypto.service import KeyManager
from ombud.predictions.explanations import ExplanationRepository, open_contributions
from ombud.predictions.records import PredictionRecord

Direction = Literal["raises", "lowers", "none"]
OTHERS_NAMED = 3
"""How many further factors each direction's second sentence names."""


class ContributionRead(BaseModel):
    feature: str
    value: bool | int | float | str | None
    """The input's value in the call (``null``: an optional input left out)."""
    contribution: float
    """How far the input moved the model's output, in the explanation's ``output_space``."""
    direction: Direction


class ExplanationRead(BaseModel):
    """Why a model gave a prediction: each input's contribution, and a plain summary."""

    prediction_id: str
    model: str
    model_version: int
    score: float
    decision: str
    method: Literal["linear", "tree"]
    output_space: Literal["log-odds", "probability"]
    """The scale of ``base_value``, ``model_output`` and every contribution."""
    base_value: float
    """The model's average output, before any input of this call is taken into account."""
    model_output: float
    """``base_value`` plus every contribution: the model's output for this call."""
    contributions: list[ContributionRead]
    """Largest absolute contribution first."""
    summary: list[str]
    created_at: datetime


async def read_explanation(
    session: AsyncSession, keys: KeyManager, prediction: PredictionRecord
) -> ExplanationRead:
    """The explanation recorded with ``prediction``.

    Raises:
        NotFound: no explanation was recorded (the version does not explain its predictions).
        SubjectErased: the subject was erased; the contributions cannot be read any more.
    """
    record = await ExplanationRepository(session).get(prediction.id)
    if record is None:
        raise NotFound(
            detail=f"{prediction.model_name} v{prediction.model_version} does not explain its "
            "predictions: no explanation was recorded for this one"
        )
    opened = await open_contributions(keys, record)
    if opened is None:
        raise SubjectErased(detail="the prediction's subject was erased; its explanation with it")
    contributions = [
        ContributionRead(
            feature=c["feature"], value=c["value"], contribution=c["contribution"],
            direction=_direction(c["contribution"]),
        )
        for c in opened
    ]  # fmt: skip
    score = float(prediction.outputs["score"])
    unit = record.output_space
    return ExplanationRead(
        prediction_id=prediction.id,
        model=prediction.model_name,
        model_version=prediction.model_version,
        score=score,
        decision=prediction.outputs["decision"],
        method=record.method,  # type: ignore[arg-type]
        output_space=unit,  # type: ignore[arg-type]
        base_value=record.base_value,
        model_output=record.model_output,
        contributions=contributions,
        summary=summarize(contributions, record.base_value, record.model_output, unit, score),
        created_at=record.created_at,
    )


def summarize(
    contributions: Sequence[ContributionRead],
    base_value: float,
    model_output: float,
    unit: str,
    score: float,
) -> list[str]:
    """Plain sentences: where the output started and ended, then the top factors each way."""
    sentences = [
        f"The score was {score:.3f}: from the model's baseline of {base_value:+.2f} {unit}, "
        f"this call's inputs moved its output to {model_output:+.2f} {unit}."
    ]
    for direction, verb, past in (
        ("raises", "raising", "raised"),
        ("lowers", "lowering", "lowered"),
    ):
        factors = [c for c in contributions if c.direction == direction]
        if not factors:
            sentences.append(f"No input {past} the score.")
            continue
        top, others = factors[0], factors[1 : 1 + OTHERS_NAMED]
        sentences.append(f"The largest factor {verb} the score was {_factor(top, unit)}.")
        if others:
            named = ", ".join(_factor(c, None) for c in others)
            sentences.append(f"Other factors {verb} it: {named}.")
    return sentences


def _factor(contribution: ContributionRead, unit: str | None) -> str:
    amount = f"{contribution.contribution:+.2f}" + (f" {unit}" if unit else "")
    return f"{contribution.feature} = {_value(contribution.value)} ({amount})"


def _value(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _direction(contribution: float) -> Direction:
    if contribution > 0:
        return "raises"
    return "lowers" if contribution < 0 else "none"
