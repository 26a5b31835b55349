"""Recorded explanations: one row per explained prediction, its contributions sealed.

Contributions are derived personal data (each names an input's value and how it weighed on the
subject's score), so they are sealed exactly like the prediction's inputs, under the same key:
erasing the subject makes both unreadable at once. The associated data differs from the inputs'
(``<prediction id>/explanation``), so neither ciphertext can stand in for the other. What stays
in clear is the method, the output space, the model's baseline and its output for the call (the
score in another unit, stored in clear with the prediction anyway); the prediction's audit event
carries the record's digest, so a change to any of it is detectable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, String, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ombud.crypto.service import KeyManager
from ombud.predictions.sealing import seal, unseal
from ombud.storage.base import Base, JSONType, UTCDateTime


@dataclass(frozen=True, slots=True)
class ExplanationRecord:
    prediction_id: str
    tenant_id: str
    method: str
    output_space: str
    base_value: float
    model_output: float
    contributions: dict[str, Any]
    """Sealed: ``{"sealed": <envelope>, "scope": ...}`` around the list of contributions."""
    created_at: datetime


class PredictionExplanationRow(Base):
    __tablename__ = "prediction_explanations"

    prediction_id: Mapped[str] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    output_space: Mapped[str] = mapped_column(String(16))
    base_value: Mapped[float] = mapped_column(Float)
    model_output: Mapped[float] = mapped_column(Float)
    contributions: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExplanationRepository:
    """All SQL of recorded explanations."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, records: Sequence[ExplanationRecord]) -> None:
        if records:
            await self._session.execute(
                insert(PredictionExplanationRow), [asdict(r) for r in records]
            )

    async def get(self, prediction_id: str) -> ExplanationRecord | None:
        row = await self._session.get(PredictionExplanationRow, prediction_id)
        if row is None:
            return None
        return ExplanationRecord(
            **{f.name: getattr(row, f.name) for f in fields(ExplanationRecord)}
        )


def _aad(prediction_id: str) -> str:
    return f"{prediction_id}/explanation"


async def sealed_record(
    keys: KeyManager,
    explanation: dict[str, Any],
    *,
    prediction_id: str,
    tenant_id: str,
    subject: str | None,
    created_at: datetime,
) -> ExplanationRecord:
    """The record of ``explanation`` (a :class:`~ombud.serving.explain.Explanation` dump)."""
    contributions = await seal(
        keys, {"contributions": explanation["contributions"]}, prediction_id=_aad(prediction_id),
        tenant_id=tenant_id, subject=subject,
    )  # fmt: skip
    return ExplanationRecord(
        prediction_id=prediction_id,
        tenant_id=tenant_id,
        method=explanation["method"],
        output_space=explanation["output_space"],
        base_value=float(explanation["base_value"]),
        model_output=float(explanation["model_output"]),
        contributions=contributions,
        created_at=created_at,
    )


async def open_contributions(
    keys: KeyManager, record: ExplanationRecord
) -> list[dict[str, Any]] | None:
    """The contributions in clear; ``None`` once the subject was erased (its key destroyed)."""
    opened = await unseal(keys, record.contributions, prediction_id=_aad(record.prediction_id))
    if opened is None:
        return None
    contributions: list[dict[str, Any]] = opened["contributions"]
    return contributions
