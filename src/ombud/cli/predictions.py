"""``ombud predictions replay ID``: prove that a recorded prediction reproduces.

A prediction record names the exact model version and its artifact's digest, and keeps the
inputs sealed under the subject's key. Replay unseals them, loads that version through the
local runtime (the artifact is verified as on any load), scores again and compares: the
decision must be the same and the score within :data:`SCORE_TOLERANCE` of the recorded one.
Scoring is deterministic up to floating-point rounding: a row scored inside a micro-batch can
differ in the last bits from the same row scored alone, so the report states exact (bit)
equality separately from the absolute difference. The report is printed as JSON; the attempt is
in the audit trail as ``prediction.replay``.

Exit status: 0 reproduced; 1 it differs, or the artifact changed or fails verification; 2 the
subject was erased (the inputs are gone for good); 3 the prediction cannot be replayed here
(unknown id, not allowed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeGuard

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.authz import Resource
from ombud.cli.registry import load_principal
from ombud.cli.runtime import with_container
from ombud.container import Container
from ombud.core.errors import InvalidRequest, ModelUnavailable, NotFound, Problem
from ombud.core.ids import new_id
from ombud.predictions.records import PredictionRecord
from ombud.predictions.repository import PredictionRepository
from ombud.predictions.sealing import unseal
from ombud.registry._views import serving_view
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion
from ombud.registry.service import RegistryService

ACTION_REPLAY = "prediction.replay"
OPERATOR = "operator"
"""The actor of a replay run without ``--by``: whoever operates the database."""

SCORE_TOLERANCE = 1e-9
"""Largest absolute score difference a replay still counts as equal. Batched and single-row
scoring of one row differ by floating-point rounding in the last bits (around 1e-16 for a
probability), far below this; a changed model or changed inputs differ by far more."""

EXIT_DIFFERS = 1
EXIT_ERASED = 2
EXIT_CANNOT_REPLAY = 3

app = typer.Typer(
    help="Recorded predictions: replay one to show it reproduces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

PredictionId = Annotated[str, typer.Argument(help="The prediction's id (pred_...).")]
By = Annotated[
    str | None,
    typer.Option("--by", help="Id of the principal replaying (needs prediction.replay)."),
]


class ReplayRefused(Exception):
    """The prediction was found but cannot be compared; ``reason`` goes to the audit trail."""

    def __init__(self, message: str, *, reason: str, exit_code: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.exit_code = exit_code


@dataclass
class Replay:
    """What one replay found, as printed and audited."""

    record: PredictionRecord
    actor: str
    version: ModelVersion | None = None
    replayed: dict[str, Any] = field(default_factory=dict)

    @property
    def abs_diff(self) -> float | None:
        """|replayed - recorded| score; None before scoring or without a recorded score."""
        recorded, replayed = self.record.outputs.get("score"), self.replayed.get("score")
        if _is_number(recorded) and _is_number(replayed):
            return abs(replayed - recorded)
        return None

    @property
    def bit_equal(self) -> bool:
        """The replayed score is the recorded one exactly, and so is the decision."""
        recorded = self.record.outputs
        return bool(self.replayed) and all(
            self.replayed[k] == recorded.get(k) for k in ("score", "decision")
        )

    @property
    def equal(self) -> bool:
        """The same decision, and a score within :data:`SCORE_TOLERANCE` of the recorded one."""
        diff = self.abs_diff
        return (
            diff is not None
            and diff <= SCORE_TOLERANCE
            and self.replayed.get("decision") == self.record.outputs.get("decision")
        )

    def report(self) -> dict[str, Any]:
        record = self.record
        return {
            "prediction_id": record.id,
            "model": record.model_name,
            "model_version": record.model_version,
            "model_version_id": self.version.id if self.version else record.model_version_id,
            "artifact_sha256": record.artifact_sha256,
            "recorded": {k: record.outputs.get(k) for k in ("score", "decision", "threshold")},
            "replayed": self.replayed,
            "equal": self.equal,
            "bit_equal": self.bit_equal,
            "abs_diff": self.abs_diff,
            "tolerance": SCORE_TOLERANCE,
            "feature_views": record.feature_views,
            "deployment_id": record.deployment_id,
            "arm": record.arm,
        }


@app.command()
def replay(prediction_id: PredictionId, by: By = None) -> None:
    """Re-score a recorded prediction with its exact model version and compare.

    Prints a JSON report (recorded vs replayed, ``equal``: the same decision and a score within
    1e-9; ``bit_equal`` and ``abs_diff`` for the score exactly; the feature views recorded).
    Exits 0 when equal, 1 when not (or the artifact changed), 2 when the subject was erased.
    """

    async def run(container: Container) -> Replay:
        return await replay_prediction(container, prediction_id, by=by)

    try:
        result = with_container(run)
    except ReplayRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from exc
    except Problem as exc:
        typer.echo(f"error: {exc.detail or exc.title}", err=True)
        raise typer.Exit(EXIT_CANNOT_REPLAY) from exc
    typer.echo(json.dumps(result.report(), indent=2, sort_keys=True, default=str))
    if not result.equal:
        raise typer.Exit(EXIT_DIFFERS)


async def replay_prediction(container: Container, prediction_id: str, *, by: str | None) -> Replay:
    """Replay ``prediction_id`` and audit the attempt, whatever its result.

    Raises:
        NotFound, Forbidden: the prediction is unknown, or ``by`` may not replay it.
        ReplayRefused: the subject was erased, or the recorded version cannot be run as it was.
    """
    async with container.sessions() as session:
        record = await PredictionRepository(session).get(prediction_id)
        if record is None:
            raise NotFound(detail=f"no prediction {prediction_id!r}")
        actor = await _authorized_actor(container, session, record, by)
        attempt = Replay(record=record, actor=actor)
        try:
            attempt.version = await _recorded_version(container, session, record)
        except Problem as exc:
            await _audit(container, attempt, "version_missing")
            raise ReplayRefused(str(exc.detail), reason="version_missing", exit_code=1) from exc
    try:
        await _rescore(container, attempt)
    except ReplayRefused as exc:
        await _audit(container, attempt, exc.reason)
        raise
    await _audit(container, attempt, None)
    return attempt


async def _authorized_actor(
    container: Container, session: AsyncSession, record: PredictionRecord, by: str | None
) -> str:
    if by is None:
        return OPERATOR
    principal = await load_principal(session, by)
    resource = Resource(kind="prediction", id=record.id, tenant_id=record.tenant_id)
    container.authorizer.authorize(principal, ACTION_REPLAY, resource)
    return principal.id


async def _recorded_version(
    container: Container, session: AsyncSession, record: PredictionRecord
) -> ModelVersion:
    """The exact version the prediction ran: by id, or (older records) by name and number."""
    if record.model_version_id is None:
        registry = RegistryService(RegistryRepository(session), container.clock)
        model, row = await registry.version_rows(record.model_name, record.model_version)
        return serving_view(model, row)
    found = await RegistryRepository(session).version_by_id(record.model_version_id)
    if found is None:
        raise NotFound(detail=f"model version {record.model_version_id} is no longer registered")
    return serving_view(*found)


async def _rescore(container: Container, attempt: Replay) -> None:
    record, version = attempt.record, attempt.version
    assert version is not None
    if record.artifact_sha256 is not None and version.sha256 != record.artifact_sha256:
        raise ReplayRefused(
            f"artifact changed: the prediction ran {record.artifact_sha256}, "
            f"the registry now says {version.sha256}",
            reason="artifact_changed", exit_code=EXIT_DIFFERS,
        )  # fmt: skip
    inputs = await unseal(container.keys, record.inputs, prediction_id=record.id)
    if inputs is None:
        raise ReplayRefused(
            "the prediction's subject was erased: its inputs cannot be read, so it cannot be "
            "replayed", reason="subject_erased", exit_code=EXIT_ERASED,
        )  # fmt: skip
    runtime = container.local_runtime
    try:
        loaded = await runtime.get(version)
        score = await runtime.score(loaded, loaded.validate(inputs))
    except ModelUnavailable as exc:
        raise ReplayRefused(
            f"artifact changed: {exc.detail}", reason="artifact_changed", exit_code=EXIT_DIFFERS
        ) from exc
    except InvalidRequest as exc:
        raise ReplayRefused(
            f"the recorded inputs no longer fit the version: {exc.detail}",
            reason="inputs_invalid", exit_code=EXIT_DIFFERS,
        ) from exc  # fmt: skip
    serving = version.serving
    decision = (
        serving.positive_decision if score >= serving.threshold else serving.negative_decision
    )
    attempt.replayed = {"score": score, "decision": decision, "threshold": serving.threshold}


async def _audit(container: Container, attempt: Replay, refused: str | None) -> None:
    record = attempt.record
    if refused is not None:
        outcome, reason = Outcome.ERROR, refused
    elif attempt.equal:
        outcome, reason = Outcome.SUCCESS, None
    else:
        outcome, reason = Outcome.ERROR, "replay_differs"
    report = attempt.report()
    kept = ("recorded", "replayed", "equal", "bit_equal", "abs_diff", "model_version_id")
    detail = {k: report[k] for k in kept}
    await container.records.write([
        AuditEvent(
            event_id=new_id("evt"), occurred_at=container.clock.now(), actor=attempt.actor,
            action=ACTION_REPLAY, resource=f"prediction:{record.id}", outcome=outcome,
            tenant_id=record.tenant_id, subject=record.subject, reason=reason,
            detail={**detail, "artifact_sha256": record.artifact_sha256},
        )
    ])  # fmt: skip
    await container.policy.flush()


def _is_number(value: object) -> TypeGuard[float]:
    """A finite int or float (not a bool): a NaN or a missing score never replays as equal."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
