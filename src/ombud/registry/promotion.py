"""The promotion gate: a candidate version is approved only if it holds up on the golden rows.

The gate scores the candidate and its baseline (the version serving most traffic now: the
stable version of the model's active deployment, else the newest other approved version) on the
model's golden dataset through the model runtime, computes their metrics
(:mod:`ombud.registry.promotion_metrics`), compares them under the model's promotion policy and
returns a report: passed or not, each breached threshold in words, and every number.

The gate fails closed. A baseline whose artifact is refused (altered, unsigned, unsafe) cannot
be what serves, so only the floors apply; a baseline that cannot be loaded for any other reason
(the artifact store is unavailable, the artifact is missing) refuses the evaluation with 503
rather than judge the candidate on floors alone. A failure inside scoring or the metrics is a
problem (500), never a bare exception, so an approval it stops is audited like any refusal.

Reports are records, like audit events: each is audited (``registry.promotion_gate``) and then
written in a transaction of its own, apart from the caller's unit of work, so the report a
refused approval names survives the refusal's rollback. The gate never holds the caller's write
lock while it waits (SQLite has one writer): it only reads through the caller's session.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.errors import InvalidRequest, ModelFailed, ModelUnavailable, PromotionRefused
from ombud.core.ids import new_id
from ombud.deployments.repository import DeploymentRepository
from ombud.records.writer import RecordWriter
from ombud.registry._views import resource_name, serving_view
from ombud.registry.golden import GoldenData, GoldenService
from ombud.registry.promotion_metrics import Scored, Verdict, judge
from ombud.registry.promotion_repository import PromotionRepository
from ombud.registry.promotion_schemas import PromotionPolicy, PromotionReport
from ombud.registry.promotion_tables import PromotionPolicyRow, PromotionReportRow
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion
from ombud.registry.service import RegistryService
from ombud.registry.tables import ModelVersionRow, RegisteredModelRow
from ombud.serving.artifacts import (
    BAD_SIGNATURE,
    SHA256_MISMATCH,
    UNSIGNED,
    ArtifactIntegrityError,
    ArtifactStore,
)
from ombud.serving.loader import ArtifactRejected
from ombud.serving.runtime import LoadedModel, ModelRuntime

if TYPE_CHECKING:
    from ombud.container import Container

log = logging.getLogger(__name__)

AUDIT_ACTION = "registry.promotion_gate"
REFUSED_ARTIFACT = frozenset({SHA256_MISMATCH, UNSIGNED, BAD_SIGNATURE})
"""Why a stored artifact is refused for good (altered, unsigned, untrusted), as opposed to
being unreachable for now: only such a baseline is judged without (floors only)."""


def build_gate(container: Container) -> PromotionGate:
    """The gate over the container's database, record writer, artifact store and in-process
    runtime: it needs the estimators themselves, whichever runtime serves predictions."""
    return PromotionGate(
        container.sessions, container.clock, container.records, container.local_runtime,
        container.artifacts,
    )  # fmt: skip


def policy_of(row: PromotionPolicyRow | None) -> PromotionPolicy:
    """The stored policy, or the defaults when the model has none."""
    if row is None:
        return PromotionPolicy()
    return PromotionPolicy.model_validate(
        {
            "max_metric_drop": row.max_metric_drop,
            "min_metrics": row.min_metrics,
            "max_score_change": row.max_score_change,
            "max_decision_change_fraction": row.max_decision_change_fraction,
        }
    )


@dataclass(frozen=True)
class _Case:
    """Everything the gate reads before it scores: what is judged, on what, against what."""

    candidate: ModelVersion
    baseline: ModelVersion | None
    golden: GoldenData
    policy: PromotionPolicy


class PromotionGate:
    """Evaluates candidates; see the module docstring for what it writes and when."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        records: RecordWriter,
        runtime: ModelRuntime,
        artifacts: ArtifactStore,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._records = records
        self._runtime = runtime
        self._artifacts = artifacts

    async def evaluate(
        self,
        session: AsyncSession,
        actor: str,
        model: str,
        version: int,
        *,
        dry_run: bool,
        tenant_id: str | None = None,
        request_id: str | None = None,
    ) -> PromotionReport:
        """Judge ``model`` v``version``; store and audit the report.

        Raises:
            NotFound: unknown model or version.
            PromotionRefused: the model has no golden dataset.
            ModelUnavailable: a version cannot be loaded now (store unavailable, artifact
                missing): nothing is judged, nothing stored; try again.
            ModelFailed: scoring or the metrics failed unexpectedly.
        """
        case = await self._case(session, model, version)
        verdict = await self._verdict(case)
        report = PromotionReport(
            id=new_id("prr"), model=model, version=version,
            baseline_version=case.baseline.version if case.baseline else None,
            passed=verdict.passed, reasons=verdict.reasons, notes=verdict.notes,
            metrics=verdict.metrics, score_change=verdict.score_change,
            decision_change_fraction=verdict.decision_change_fraction,
            threshold=case.candidate.serving.threshold, golden_sha256=case.golden.sha256,
            golden_rows=len(case.golden.rows), golden_created_by=case.golden.created_by,
            policy=case.policy, dry_run=dry_run, created_by=actor, created_at=self._clock.now(),
        )  # fmt: skip
        await self._records.write([_event(report, tenant_id, request_id)])
        async with self._sessions.begin() as own:
            await PromotionRepository(own).save(_row(report, case))
        return report

    async def require_pass(
        self,
        session: AsyncSession,
        actor: str,
        model: str,
        version: int,
        *,
        tenant_id: str | None = None,
        request_id: str | None = None,
    ) -> PromotionReport:
        """Evaluate for approval; :class:`PromotionRefused` naming the reasons unless it passed."""
        report = await self.evaluate(
            session, actor, model, version, dry_run=False, tenant_id=tenant_id,
            request_id=request_id,
        )  # fmt: skip
        if not report.passed:
            raise PromotionRefused(
                detail=f"{model} v{version} failed the promotion gate (report {report.id}): "
                + "; ".join(report.reasons)
            )
        return report

    async def _case(self, session: AsyncSession, model: str, version: int) -> _Case:
        registry = RegistryService(RegistryRepository(session), self._clock)
        model_row, row = await registry.version_rows(model, version)
        repo = PromotionRepository(session)
        golden_row = await repo.golden(model_row.id)
        if golden_row is None:
            raise PromotionRefused(
                detail=f"model {model!r} has no golden dataset, so no version can pass the "
                f"promotion gate; register one first (PUT /v1/registry/models/{model}/golden)"
            )
        golden = await GoldenService(repo, self._artifacts, self._clock).load(golden_row)
        baseline = await _baseline(session, repo, model_row, row)
        return _Case(
            candidate=serving_view(model_row, row),
            baseline=serving_view(model_row, baseline) if baseline else None,
            golden=golden,
            policy=policy_of(await repo.policy(model_row.id)),
        )

    async def _verdict(self, case: _Case) -> Verdict:
        try:
            candidate = await self._score(case.candidate, case.golden)
        except (ModelUnavailable, InvalidRequest, ModelFailed) as exc:
            if isinstance(exc, ModelUnavailable) and not _refused(exc):
                raise _unavailable("candidate", case.candidate, exc) from exc
            reason = f"v{case.candidate.version} cannot be scored on the golden rows: {exc.detail}"
            return Verdict([reason], {}, None, None)
        notes: list[str] = []
        baseline: Scored | None = None
        if case.baseline is None:
            notes.append("no approved version to compare with: only the floors were checked")
        else:
            try:
                baseline = await self._score(case.baseline, case.golden)
            except ModelUnavailable as exc:
                if not _refused(exc):
                    raise _unavailable("baseline", case.baseline, exc) from exc
                notes.append(_floors_only(case.baseline, exc.detail))
            except InvalidRequest as exc:
                notes.append(_floors_only(case.baseline, exc.detail))
            except ModelFailed as exc:
                raise ModelFailed(
                    detail=f"the baseline cannot be compared with: {exc.detail}"
                ) from exc
        verdict = await _judge(case, candidate, baseline)
        return Verdict(
            verdict.reasons, verdict.metrics, verdict.score_change,
            verdict.decision_change_fraction, notes,
        )  # fmt: skip

    async def _score(self, version: ModelVersion, golden: GoldenData) -> Scored:
        """``version``'s scores on the golden rows (validated against its own inputs).

        Raises:
            ModelUnavailable: the artifact cannot be loaded (see :func:`_refused` for why).
            InvalidRequest: the golden rows do not fit the version's inputs.
            ModelFailed: the model raised on the rows, or gave scores that are not numbers.
        """
        loaded = await self._load(version)
        try:
            rows = [loaded.validate(row.features) for row in golden.rows]
        except InvalidRequest as exc:
            fields = ", ".join(sorted({str(e.loc[-1]) for e in exc.errors}))
            raise InvalidRequest(detail=f"golden rows do not fit its inputs ({fields})") from exc
        try:
            scores = await anyio.to_thread.run_sync(loaded.score_many, rows)
        except Exception as exc:  # noqa: BLE001 - any model fault becomes a problem to audit
            log.warning("%s v%s raised on the golden rows", version.model, version.version,
                        exc_info=True)  # fmt: skip
            raise ModelFailed(
                detail=f"v{version.version} raised on the golden rows: {type(exc).__name__}: {exc}"
            ) from exc
        bad = sum(1 for score in scores if not math.isfinite(score))
        if bad:
            raise ModelFailed(
                detail=f"v{version.version} gave {bad} scores that are not finite numbers "
                f"on the {len(scores)} golden rows"
            )
        return Scored(version=version.version, scores=scores, threshold=version.serving.threshold)

    async def _load(self, version: ModelVersion) -> LoadedModel:
        """The loaded version; a failure that is no :class:`ModelUnavailable` becomes one, with
        no refusal reason, so the gate treats it as "cannot be loaded now"."""
        try:
            return await self._runtime.get(version)
        except ModelUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any load fault must refuse, never crash bare
            log.warning("cannot load %s v%s for the promotion gate", version.model,
                        version.version, exc_info=True)  # fmt: skip
            raise ModelUnavailable(
                detail=f"{version.model} v{version.version} cannot be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


async def _baseline(
    session: AsyncSession, repo: PromotionRepository, model: RegisteredModelRow,
    candidate: ModelVersionRow,
) -> ModelVersionRow | None:  # fmt: skip
    """The version serving most traffic now, other than the candidate: the stable version of
    the model's active deployment, else its newest approved version."""
    deployment = await DeploymentRepository(session).active_for_model(model.name)
    if deployment is not None and deployment.stable_version_id != candidate.id:
        stable = await repo.version(deployment.stable_version_id)
        if stable is not None:
            return stable
    others = [r for r in await repo.approved_versions(model.id) if r.id != candidate.id]
    return others[0] if others else None


async def _judge(case: _Case, candidate: Scored, baseline: Scored | None) -> Verdict:
    """:func:`judge` off the event loop; anything it raises becomes :class:`ModelFailed`."""
    try:
        return await anyio.to_thread.run_sync(
            judge, case.golden.labels, candidate, baseline, case.policy
        )
    except Exception as exc:  # noqa: BLE001 - an arithmetic fault must refuse, audited
        log.exception("promotion gate metrics failed for %s v%s", case.candidate.model,
                      case.candidate.version)  # fmt: skip
        raise ModelFailed(
            detail=f"the promotion gate could not compute the metrics of "
            f"v{case.candidate.version} on the golden rows: {type(exc).__name__}: {exc}"
        ) from exc


def _refused(exc: ModelUnavailable) -> bool:
    """Whether the artifact was refused for good (altered, unsigned, unsafe), rather than
    unreachable for now (the store unavailable, the artifact missing, any other fault)."""
    cause = exc.__cause__
    if isinstance(cause, ArtifactRejected):
        return True
    return isinstance(cause, ArtifactIntegrityError) and cause.reason in REFUSED_ARTIFACT


def _unavailable(role: str, version: ModelVersion, exc: ModelUnavailable) -> ModelUnavailable:
    return ModelUnavailable(
        detail=f"the promotion gate cannot load the {role} v{version.version} now "
        f"({exc.detail}), so it cannot judge the candidate; nothing was approved, try again"
    )


def _floors_only(baseline: ModelVersion, why: str) -> str:
    return (
        f"baseline v{baseline.version} cannot be scored on the golden rows ({why}): "
        "only the floors were checked"
    )


def _event(report: PromotionReport, tenant_id: str | None, request_id: str | None) -> AuditEvent:
    detail: dict[str, Any] = {
        "report_id": report.id, "passed": report.passed, "dry_run": report.dry_run,
        "baseline_version": report.baseline_version, "golden_sha256": report.golden_sha256,
        "golden_created_by": report.golden_created_by, "reasons": report.reasons,
    }  # fmt: skip
    return AuditEvent(
        event_id=new_id("evt"), occurred_at=report.created_at, actor=report.created_by,
        action=AUDIT_ACTION, resource=resource_name(report.model, report.version),
        outcome=Outcome.SUCCESS if report.passed else Outcome.REJECTED,
        tenant_id=tenant_id, request_id=request_id,
        reason=None if report.passed else "promotion_refused", detail=detail,
    )  # fmt: skip


def _row(report: PromotionReport, case: _Case) -> PromotionReportRow:
    return PromotionReportRow(
        id=report.id, version_id=case.candidate.id,
        baseline_version_id=case.baseline.id if case.baseline else None,
        golden_sha256=report.golden_sha256, passed=report.passed, dry_run=report.dry_run,
        report=report.model_dump(mode="json"), created_by=report.created_by,
        created_at=report.created_at,
    )  # fmt: skip
