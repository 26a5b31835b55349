"""Stages for own models: resolve the version, validate the features, invoke, record."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import anyio
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.errors import FieldError, InvalidRequest, ModelFailed, Problem, RegionNotAllowed
from ombud.core.ids import new_id
from ombud.crypto.service import KeyManager
from ombud.deployments.failures import FailureWatch
from ombud.deployments.routing import ActiveDeployment, DeploymentRouting, PinnedVersion
from ombud.deployments.schemas import Arm, DeploymentMode
from ombud.gateway.call import Call
from ombud.gateway.outcome_records import call_resource
from ombud.gateway.outcomes import Outcome as StageOutcome
from ombud.observability.metrics import Metrics
from ombud.predictions.explanations import ExplanationRecord, sealed_record
from ombud.predictions.records import PredictionRecord
from ombud.predictions.sealing import seal
from ombud.records.writer import Record, RecordWriter
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion
from ombud.registry.service import RegistryService
from ombud.serving.ports import AnyRuntime
from ombud.serving.schemas import PredictionRead, PredictRequest

log = logging.getLogger(__name__)


def record_digest(record: PredictionRecord | ExplanationRecord) -> str:
    """SHA-256 of a record's canonical JSON (a prediction, or its explanation)."""
    fields = dataclasses.asdict(record)
    fields["created_at"] = record.created_at.isoformat()
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


VERSION_HEADER = "X-Ombud-Model-Version"


class ResolveModel:
    """``model.resolve``: the version that serves this call, loaded and verified.

    With an active deployment for the model (``deployments``), the deployment's routing picks
    the call's arm and version (sticky per subject, see :mod:`ombud.deployments.routing`) and a
    :class:`~ombud.deployments.failures.FailureWatch` counts the call if that version fails.
    After a deployment ended, the version it ended on serves until another is approved;
    otherwise the model's newest approved version serves. The name → version lookup is cached
    for ``ttl_s`` (by the injected clock), so a hot model costs no query per call; an approval
    takes effect within that time (a deployment change within the deployments' own ttl).
    """

    name = "model.resolve"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        runtime: AnyRuntime,
        clock: Clock,
        ttl_s: float,
        *,
        deployments: DeploymentRouting | None = None,
        records: RecordWriter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._runtime = runtime
        self._clock = clock
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, ModelVersion]] = {}
        self._deployments = deployments
        self._records = records
        self._metrics = metrics

    async def __call__(self, call: Call) -> StageOutcome:
        name = call.target or ""
        routing = await self._deployments.routing(name) if self._deployments else None
        watch: FailureWatch | None = None
        if isinstance(routing, ActiveDeployment):
            version, watch = self._route(call, routing)
        elif isinstance(routing, PinnedVersion):
            version = routing.version
        else:
            version = await self._version(name)
        if not version.serving.serves(call.subject_region):
            raise RegionNotAllowed(
                detail=f"{version.model} v{version.version} may not serve subjects of region "
                f"{call.subject_region!r}"
            )
        await self._runtime.get(version)
        if watch is not None:
            watch.loaded = True
        call.model_version = version
        call.response_headers[VERSION_HEADER] = str(version.version)
        structlog.contextvars.bind_contextvars(model=version.model, model_version=version.version)
        return None

    def _route(
        self, call: Call, deployment: ActiveDeployment
    ) -> tuple[ModelVersion, FailureWatch | None]:
        """The call's arm in ``deployment``, by its subject (else the caller's own id)."""
        arm, version = deployment.route(call.subject or call.require_principal().id)
        if arm.is_candidate and not version.serving.serves(call.subject_region):
            # Residency: a candidate not allowed in the subject's region never serves it.
            arm = Arm.A if deployment.mode is DeploymentMode.AB else Arm.STABLE
            version = deployment.stable
        call.deployment_id, call.arm = deployment.id, arm.value
        if self._metrics is not None:
            self._metrics.deployment_routed.labels(deployment.model, arm.value).inc()
        if self._records is None:
            return version, None
        watch = FailureWatch(self._records, self._clock, call, deployment.id, arm.value)
        call.exit_stack.push_async_exit(watch.on_exit)
        return version, watch

    async def _version(self, name: str) -> ModelVersion:
        now = self._clock.monotonic()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessions() as session:
            registry = RegistryService(RegistryRepository(session), self._clock)
            version = await registry.serving_version(name)
        if self._ttl_s > 0:
            self._cache[name] = (now + self._ttl_s, version)
        return version


class ValidateFeatures:
    """``model.validate``: the body's envelope, then each feature against the version's schema."""

    name = "model.validate"

    def __init__(self, runtime: AnyRuntime) -> None:
        self._runtime = runtime

    async def __call__(self, call: Call) -> StageOutcome:
        try:
            request = PredictRequest.model_validate_json(call.body or b"null")
        except ValidationError as exc:
            errors = [
                FieldError(("body", *(str(p) for p in e["loc"])), e["msg"], e["type"])
                for e in exc.errors()
            ]
            raise InvalidRequest(detail="invalid request body", errors=errors) from None
        loaded = await self._runtime.get(call.require_model())
        call.payload = loaded.validate(request.features)
        return None


class InvokeModel:
    """``model.invoke``: score off the event loop and apply the version's decision threshold."""

    name = "model.invoke"

    def __init__(self, runtime: AnyRuntime, clock: Clock) -> None:
        self._runtime = runtime
        self._clock = clock

    async def __call__(self, call: Call) -> StageOutcome:
        version = call.require_model()
        loaded = await self._runtime.get(version)
        started = self._clock.monotonic()
        try:
            score = await self._runtime.score(loaded, call.payload)
        except Problem:
            raise
        except Exception as exc:  # noqa: BLE001 - a model's own error becomes a clear 500 problem
            log.exception("%s v%s failed to score", version.model, version.version)
            raise ModelFailed(
                detail=f"{version.model} v{version.version} failed to score this input"
            ) from exc
        serving = version.serving
        decision = (
            serving.positive_decision if score >= serving.threshold else serving.negative_decision
        )
        call.output = {
            "score": score,
            "decision": decision,
            "threshold": serving.threshold,
            "latency_ms": (self._clock.monotonic() - started) * 1000.0,
        }
        return None


class RecordPrediction:
    """``model.record``: the prediction record and its audit event, committed before answering.

    Shielded from cancellation: once a model has answered, its record is written even if the
    client goes away or the call's time runs out.
    """

    name = "model.record"

    def __init__(self, records: RecordWriter, clock: Clock, keys: KeyManager) -> None:
        self._records = records
        self._clock = clock
        self._keys = keys

    async def __call__(self, call: Call) -> StageOutcome:
        principal = call.require_principal()
        version = call.require_model()
        now = self._clock.now()
        output = {k: call.output[k] for k in ("score", "decision", "threshold")}
        prediction_id = new_id("pred")
        sealed = await seal(
            self._keys, call.payload, prediction_id=prediction_id,
            tenant_id=principal.tenant_id, subject=call.subject,
        )  # fmt: skip
        prediction = PredictionRecord(
            id=prediction_id,
            request_id=call.request_id,
            tenant_id=principal.tenant_id,
            principal_id=principal.id,
            model_name=version.model,
            model_version=version.version,
            inputs=sealed,
            outputs=output,
            latency_ms=call.output["latency_ms"],
            created_at=now,
            subject=call.subject,
            purpose=call.purpose,
            model_version_id=version.id,
            artifact_sha256=version.sha256,
            feature_views=dict(call.feature_views),
            deployment_id=call.deployment_id,
            arm=call.arm,
        )
        explanation = None
        if call.explanation is not None:
            explanation = await sealed_record(
                self._keys, call.explanation, prediction_id=prediction_id,
                tenant_id=principal.tenant_id, subject=call.subject, created_at=now,
            )  # fmt: skip
        detail: dict[str, object] = {
            "prediction_id": prediction.id,
            "decision": output["decision"],
            # The audit trail commits to the prediction (its sealed inputs included) and to its
            # explanation by digest only, so erasing the personal data never breaks the trail's
            # verification, while any change to either record is detectable.
            "record_digest": record_digest(prediction),
            "findings": [f"{f.stage}:{f.kind}" for f in call.findings],
        }
        if explanation is not None:
            detail["explanation_digest"] = record_digest(explanation)
        if call.subject_region is not None:
            detail["subject_region"] = call.subject_region  # what residency routing honoured
        event = AuditEvent(
            event_id=new_id("evt"),
            occurred_at=now,
            actor=principal.id,
            action=call.route,
            resource=call_resource(call),
            outcome=Outcome.SUCCESS,
            tenant_id=principal.tenant_id,
            request_id=call.request_id,
            purpose=call.purpose,
            subject=call.subject,
            detail=detail,
        )
        # Same batch, same transaction: a prediction is never recorded without its "why".
        records: list[Record] = (
            [prediction, event] if explanation is None else [prediction, explanation, event]
        )
        with anyio.CancelScope(shield=True):
            await self._records.write(records)
        call.result = PredictionRead(
            prediction_id=prediction.id,
            model=version.model,
            model_version=version.version,
            score=output["score"],
            decision=output["decision"],
            threshold=output["threshold"],
            created_at=now,
        )
        return None
