"""``ombud registry list|show|submit|approve|reject|card|check|golden|gate``.

Workflow steps act as a named principal (``--by``, a principal id from the database) and go
through the same approval service, policy and audit trail as ``/v1/registry``. ``check`` reads
no database: it validates the model files declared in the repository.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.authz import Resource
from ombud.cli.runtime import load_settings, with_container
from ombud.container import Container
from ombud.core.errors import NotFound, Problem
from ombud.core.ids import new_id
from ombud.features.declarations import FeatureDeclarationError, load_views
from ombud.identity.principal import Principal, PrincipalKind
from ombud.identity.tables import PrincipalRow, TenantRow
from ombud.registry.approvals import ApprovalService
from ombud.registry.cards import build_card, render_markdown
from ombud.registry.declared import DeclarationError, load_declared
from ombud.registry.lifecycle import APPROVE, Action
from ombud.registry.promotion import build_gate
from ombud.registry.promotion_repository import PromotionRepository
from ombud.registry.promotion_schemas import GoldenCreate, GoldenRead, PromotionReport
from ombud.registry.promotion_service import PromotionService
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelCard, ModelRead, VersionRead
from ombud.registry.service import RegistryService

T = TypeVar("T")
CLI_CREDENTIAL = "cli"
OPERATOR = "operator"
"""The actor of operator commands that take no ``--by`` (golden datasets, gate dry runs)."""

app = typer.Typer(
    help="Read the model registry and take versions through review.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Name = Annotated[str, typer.Argument(help="Model name.")]
Version = Annotated[int, typer.Argument(help="Version number.", min=1)]
By = Annotated[str, typer.Option("--by", help="Id of the principal taking the step.")]
Reason = Annotated[str, typer.Option(help="Why (kept with the decision and in the audit trail).")]


def _registry(container: Container, session: AsyncSession) -> RegistryService:
    return RegistryService(RegistryRepository(session), container.clock)


async def load_principal(session: AsyncSession, principal_id: str) -> Principal:
    """The principal ``principal_id`` with its roles and tenant, as a request would see it."""
    row = await session.get(PrincipalRow, principal_id)
    tenant = await session.get(TenantRow, row.tenant_id) if row is not None else None
    if row is None or tenant is None:
        raise NotFound(detail=f"no principal {principal_id!r}")
    return Principal(
        id=row.id, name=row.name, kind=PrincipalKind(row.kind), roles=frozenset(row.roles),
        tenant_id=tenant.id, tenant_slug=tenant.slug, tenant_tier=tenant.tier,
        credential_id=CLI_CREDENTIAL,
    )  # fmt: skip


@app.command("list")
def list_models() -> None:
    """List registered models with their approved and newest versions."""

    async def run(container: Container) -> list[ModelRead]:
        async with container.sessions.begin() as session:
            return await _registry(container, session).list_models()

    for model in _guard(run):
        approved = f"v{model.approved_version}" if model.approved_version else "-"
        latest = f"v{model.latest_version}" if model.latest_version else "-"
        typer.echo(f"{model.name:<32} approved {approved:<6} latest {latest:<6} {model.owner}")


@app.command()
def show(
    name: Name,
    version: Annotated[int | None, typer.Option(help="One version (default: all).", min=1)] = None,
) -> None:
    """Print a model's versions (or one version) as JSON, one object per line."""

    async def run(container: Container) -> list[VersionRead]:
        async with container.sessions.begin() as session:
            registry = _registry(container, session)
            if version is None:
                return await registry.list_versions(name)
            return [await registry.get_version(name, version)]

    for read in _guard(run):
        typer.echo(read.model_dump_json())


def _step(name: str, version: int, action: Action, by: str, reason: str | None) -> VersionRead:
    async def run(container: Container) -> VersionRead:
        async with container.sessions.begin() as session:
            principal = await load_principal(session, by)
            approvals = ApprovalService(
                session, container.clock, container.records, container.authorizer,
                gate=build_gate(container),
            )  # fmt: skip
            return await approvals.transition(principal, name, version, action, reason)

    read = _guard(run)
    typer.echo(f"{name} v{version}: {read.approval.status.value}")
    return read


@app.command()
def submit(name: Name, version: Version, by: By) -> None:
    """Submit a draft version for review."""
    _step(name, version, Action.SUBMIT, by, None)


@app.command()
def approve(name: Name, version: Version, by: By, reason: Reason) -> None:
    """Approve a version under review (it then serves the model name)."""
    _step(name, version, Action.APPROVE, by, reason)


@app.command()
def reject(name: Name, version: Version, by: By, reason: Reason) -> None:
    """Reject a version under review."""
    _step(name, version, Action.REJECT, by, reason)


@app.command()
def deprecate(name: Name, version: Version, by: By, reason: Reason) -> None:
    """Retire an approved version: it no longer serves the model name."""
    _step(name, version, Action.DEPRECATE, by, reason)


@app.command()
def revise(name: Name, version: Version, by: By) -> None:
    """Return a rejected version to draft, so it can be changed and submitted again."""
    _step(name, version, Action.REVISE, by, None)


@app.command()
def card(
    name: Name,
    version: Version,
    output: Annotated[
        Literal["md", "json"], typer.Option("--format", help="Markdown or JSON.")
    ] = "md",
) -> None:
    """Print a version's model card."""

    async def run(container: Container) -> ModelCard:
        async with container.sessions.begin() as session:
            registry = _registry(container, session)
            model, _ = await registry.version_rows(name, version)
            read = await registry.get_version(name, version)
            history = await registry.history(read.id)
            return build_card(read, model.owner, model.description, history)

    built = _guard(run)
    if output == "json":
        typer.echo(json.dumps(built.model_dump(mode="json"), indent=2))
    else:
        typer.echo(render_markdown(built), nl=False)


@app.command()
def check(
    directory: Annotated[
        Path, typer.Argument(help="Directory of model files (<name>.yaml).")
    ] = Path("models"),
) -> None:
    """Validate the declared model files; print each problem and exit 1 if there is any.

    Regions a version may serve (``serving.regions``) must be among ``OMBUD_PRIVACY__REGIONS``;
    a feature view a version reads inputs from (``serving.feature_view``) must be declared in
    ``OMBUD_FEATURES__VIEWS_DIR`` and fit the version's inputs.
    """
    settings = load_settings()
    try:
        views = load_views(settings.features.views_dir)
    except FeatureDeclarationError as exc:
        for message in exc.problems:
            typer.echo(f"{settings.features.views_dir}: {message}")
        raise typer.Exit(1) from exc
    try:
        models = load_declared(directory, settings.privacy.regions, views)
    except DeclarationError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        raise typer.Exit(1) from exc
    versions = sum(len(model.versions) for model in models)
    typer.echo(f"ok: {len(models)} models, {versions} versions")


@app.command()
def golden(
    name: Name,
    file: Annotated[
        Path, typer.Argument(help='JSON file: {"rows": [{"features": {...}, "label": 0|1}]}.')
    ],
    by: Annotated[
        str | None,
        typer.Option("--by", help="Id of the approver setting it (default: the operator)."),
    ] = None,
) -> None:
    """Set a model's golden dataset (the rows every candidate version is judged on).

    With ``--by``, the principal must hold ``registry.approve``, as over HTTP: the approver side
    owns the bar, not the authors it judges.
    """
    try:
        body = GoldenCreate.model_validate_json(file.read_bytes())
    except (OSError, ValidationError) as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(1) from exc

    async def run(container: Container) -> GoldenRead:
        async with container.sessions.begin() as session:
            actor = OPERATOR
            if by is not None:
                principal = await load_principal(session, by)
                container.authorizer.authorize(principal, APPROVE, Resource(kind="registry"))
                actor = principal.id
            promotion = _promotion(container, session)
            prepared = await promotion.prepare_golden(name, body, actor=actor)
            await container.records.write([_operator_event(container, name, prepared)])
            return await promotion.save_golden(prepared)

    stored = _guard(run)
    typer.echo(f"{name}: golden dataset of {stored.rows} rows, sha256 {stored.sha256}")


@app.command()
def gate(name: Name, version: Version) -> None:
    """Run the promotion gate on a version without approving it; print the report as JSON.

    Exits 0 when the version passes, 2 when it does not.
    """

    async def run(container: Container) -> PromotionReport:
        async with container.sessions.begin() as session:
            return await build_gate(container).evaluate(
                session, OPERATOR, name, version, dry_run=True
            )

    report = _guard(run)
    typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    if not report.passed:
        raise typer.Exit(2)


def _promotion(container: Container, session: AsyncSession) -> PromotionService:
    return PromotionService(
        PromotionRepository(session), RegistryRepository(session), container.artifacts,
        container.clock,
    )  # fmt: skip


def _operator_event(container: Container, name: str, golden: GoldenRead) -> AuditEvent:
    return AuditEvent(
        event_id=new_id("evt"), occurred_at=container.clock.now(), actor=golden.created_by,
        action="registry.golden.put", resource=f"model:{name}", outcome=Outcome.SUCCESS,
        detail={"sha256": golden.sha256, "rows": golden.rows},
    )  # fmt: skip


def _guard(work: Callable[[Container], Awaitable[T]]) -> T:
    try:
        return with_container(work)
    except Problem as exc:
        typer.echo(f"error: {exc.detail or exc.title}", err=True)
        raise typer.Exit(1) from exc
