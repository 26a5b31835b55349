"""Recording ground truth against a prediction: once, idempotently, corrections on the record.

One outcome per prediction. Sending the same label again changes nothing and answers what is
recorded (a client may retry safely). A different label is a correction: it must say so, with
a reason, and the value it replaces stays in the outcome's history. Each recording, repeat and
correction is audited before anything is written (the record writer commits on connections of
its own and must not wait on this unit of work's write lock; SQLite has one writer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.errors import Conflict, FieldError, InvalidRequest, NotFound
from ombud.core.ids import new_id
from ombud.identity.principal import Principal
from ombud.observability.metrics import Metrics
from ombud.outcomes.repository import OutcomeRepository
from ombud.outcomes.schemas import OutcomeCreate, OutcomeRead, OutcomeRevision
from ombud.outcomes.tables import PredictionOutcomeRow
from ombud.predictions.records import PredictionRecord
from ombud.records.writer import RecordWriter

ACTION = "prediction.outcome"
Result = Literal["recorded", "unchanged", "corrected"]


@dataclass(frozen=True, slots=True)
class Recorded:
    outcome: OutcomeRead
    result: Result

    @property
    def created(self) -> bool:
        return self.result == "recorded"


class OutcomeService:
    """Outcomes over one session (the request's unit of work; nothing here commits it).

    Args:
        session: The caller's unit of work.
        clock: Default observation time, recording and correction times.
        records: Where audit events go (the group-commit record writer).
        metrics: Counts outcomes received.
    """

    def __init__(
        self, session: AsyncSession, clock: Clock, records: RecordWriter, metrics: Metrics
    ) -> None:
        self._repository = OutcomeRepository(session)
        self._clock = clock
        self._records = records
        self._metrics = metrics

    async def read(self, prediction: PredictionRecord) -> OutcomeRead:
        """The outcome of ``prediction``.

        Raises:
            NotFound: none was recorded yet.
        """
        row = await self._repository.get(prediction.id)
        if row is None:
            raise NotFound(detail=f"no outcome recorded for {prediction.id!r}")
        return outcome_read(row)

    async def record(
        self,
        principal: Principal,
        prediction: PredictionRecord,
        body: OutcomeCreate,
        *,
        request_id: str | None,
    ) -> Recorded:
        """Record, repeat or correct the outcome of ``prediction`` (already authorized).

        Raises:
            InvalidRequest: ``observed_at`` is in the future; or the prediction has no score.
            Conflict: a different label without ``correction``; or a concurrent recording or
                correction of the same prediction won (read it again, then retry).
        """
        now = self._clock.now()
        observed_at = self._observed_at(body, now)
        score, threshold = _scored(prediction)
        row = await self._repository.get(prediction.id)
        if row is None:
            created = PredictionOutcomeRow(
                prediction_id=prediction.id, tenant_id=prediction.tenant_id,
                model_name=prediction.model_name, model_version=prediction.model_version,
                arm=prediction.arm, score=score, threshold=threshold,
                predicted_at=prediction.created_at, label=body.label, observed_at=observed_at,
                source=body.source, recorded_by=principal.id, recorded_at=now, revision=1,
                history=[],
            )  # fmt: skip
            await self._audit(principal, created, "recorded", request_id, body, previous=None)
            if not await self._repository.add(created):
                raise Conflict(detail="another outcome of this prediction was recorded at once")
            return self._done(created.model_name, outcome_read(created), "recorded")
        if row.label == body.label:
            await self._audit(principal, row, "unchanged", request_id, body, previous=row.label)
            return self._done(row.model_name, outcome_read(row), "unchanged")
        if not body.correction:
            raise Conflict(
                detail=f"the outcome of {prediction.id!r} is recorded as {row.label}; to change "
                'it, send "correction": true with a "reason"'
            )
        return await self._correct(principal, row, body, observed_at, request_id)

    async def _correct(
        self,
        principal: Principal,
        row: PredictionOutcomeRow,
        body: OutcomeCreate,
        observed_at: datetime,
        request_id: str | None,
    ) -> Recorded:
        now = self._clock.now()
        replaced = OutcomeRevision(
            label=row.label, observed_at=row.observed_at, source=row.source,
            recorded_by=row.recorded_by, recorded_at=row.recorded_at, replaced_at=now,
            replaced_by=principal.id, reason=body.reason or "",
        )  # fmt: skip
        values: dict[str, Any] = {
            "label": body.label, "observed_at": observed_at, "source": body.source,
            "recorded_by": principal.id, "recorded_at": now, "revision": row.revision + 1,
            "history": [*row.history, replaced.model_dump(mode="json")],
        }  # fmt: skip
        await self._audit(principal, row, "corrected", request_id, body, previous=row.label)
        if not await self._repository.replace(row.prediction_id, row.revision, values):
            raise Conflict(detail="the outcome was corrected at the same time; read it again")
        before = outcome_read(row)
        # The row object keeps what was read; the answer shows what was written.
        after = before.model_copy(update={**values, "history": [*before.history, replaced]})
        return self._done(row.model_name, after, "corrected")

    def _observed_at(self, body: OutcomeCreate, now: datetime) -> datetime:
        if body.observed_at is None:
            return now
        if body.observed_at > now:
            message = "an outcome cannot be observed in the future"
            raise InvalidRequest(
                detail=message,
                errors=[FieldError(("body", "observed_at"), message, "value_error")],
            )
        return body.observed_at

    def _done(self, model: str, outcome: OutcomeRead, result: Result) -> Recorded:
        self._metrics.outcomes_received.labels(model=model, result=result).inc()
        return Recorded(outcome, result)

    async def _audit(
        self,
        principal: Principal,
        row: PredictionOutcomeRow,
        result: Result,
        request_id: str | None,
        body: OutcomeCreate,
        *,
        previous: int | None,
    ) -> None:
        detail: dict[str, Any] = {
            "result": result, "label": body.label, "previous": previous,
            "source": body.source, "model": row.model_name, "version": row.model_version,
        }  # fmt: skip
        await self._records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(), actor=principal.id,
                action=ACTION, resource=f"prediction:{row.prediction_id}",
                outcome=Outcome.SUCCESS, tenant_id=principal.tenant_id, request_id=request_id,
                reason=body.reason if result == "corrected" else None, detail=detail,
            )
        ])  # fmt: skip


def outcome_read(row: PredictionOutcomeRow) -> OutcomeRead:
    return OutcomeRead(
        prediction_id=row.prediction_id,
        model=row.model_name,
        model_version=row.model_version,
        arm=row.arm,
        label=row.label,
        observed_at=row.observed_at,
        source=row.source,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
        revision=row.revision,
        history=[OutcomeRevision.model_validate(h) for h in row.history],
    )


def _scored(prediction: PredictionRecord) -> tuple[float, float]:
    """The prediction's score and the threshold it was decided at."""
    outputs = prediction.outputs
    try:
        return float(outputs["score"]), float(outputs["threshold"])
    except (KeyError, TypeError, ValueError):
        message = f"{prediction.id!r} has no score and threshold to hold an outcome against"
        raise InvalidRequest(
            detail=message, errors=[FieldError(("path", "prediction_id"), message, "value_error")]
        ) from None
