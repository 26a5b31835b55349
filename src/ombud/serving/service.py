"""The prediction use case: resolve the serving version, validate, score off-loop, record."""

from __future__ import annotations

from typing import Any

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.context import CallContext
from ombud.core.ids import new_id
from ombud.identity.principal import Principal
from ombud.predictions.records import PredictionRecord
from ombud.records.writer import RecordWriter
from ombud.registry.service import RegistryService
from ombud.serving.runtime import ModelRuntime
from ombud.serving.schemas import PredictionRead

ACTION_PREDICT = "model.predict"


class PredictionService:
    def __init__(
        self, registry: RegistryService, runtime: ModelRuntime, records: RecordWriter, clock: Clock
    ) -> None:
        self._registry = registry
        self._runtime = runtime
        self._records = records
        self._clock = clock

    async def predict(
        self, principal: Principal, context: CallContext, model: str, features: dict[str, Any]
    ) -> PredictionRead:
        """Score ``features`` with the approved version of ``model``.

        Returns once the prediction record and its audit event are committed. Failures raise a
        :class:`~ombud.core.errors.Problem`, which the HTTP edge audits.
        """
        version = await self._registry.serving_version(model)
        loaded = await self._runtime.get(version)
        clean = loaded.validate(features)
        started = self._clock.monotonic()
        score = await self._runtime.score(loaded, clean)
        latency_ms = (self._clock.monotonic() - started) * 1000.0
        serving = version.serving
        decision = (
            serving.positive_decision if score >= serving.threshold else serving.negative_decision
        )
        now = self._clock.now()
        result = PredictionRead(
            prediction_id=new_id("pred"),
            model=version.model,
            model_version=version.version,
            score=score,
            decision=decision,
            threshold=serving.threshold,
            created_at=now,
        )
        record = PredictionRecord(
            id=result.prediction_id,
            request_id=context.request_id,
            tenant_id=principal.tenant_id,
            principal_id=principal.id,
            model_name=version.model,
            model_version=version.version,
            inputs=clean,
            outputs={"score": score, "decision": decision, "threshold": serving.threshold},
            latency_ms=latency_ms,
            created_at=now,
            subject=context.subject,
            purpose=context.purpose,
        )
        event = AuditEvent(
            event_id=new_id("evt"),
            occurred_at=now,
            actor=principal.id,
            action=ACTION_PREDICT,
            resource=f"model:{version.model}:v{version.version}",
            outcome=Outcome.SUCCESS,
            tenant_id=principal.tenant_id,
            request_id=context.request_id,
            purpose=context.purpose,
            subject=context.subject,
            detail={"prediction_id": result.prediction_id, "decision": decision},
        )
        await self._records.write([record, event])
        return result
