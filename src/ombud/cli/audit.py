"""``ombud audit verify | export | checkpoint``: the tamper-evident audit trail."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ombud.audit.chain import Checkpoint, format_time
from ombud.audit.checkpoints import CheckpointSigner
from ombud.audit.repository import AuditFilter
from ombud.audit.verify import ExportFormatError, VerifyReport, export_lines, verify_database
from ombud.audit.verify import verify_export as verify_export_lines
from ombud.cli.runtime import with_container
from ombud.container import Container
from ombud.crypto import CryptoError

app = typer.Typer(
    help="Audit trail: verify the hash chain, export it, sign checkpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

MAX_LISTED = 20


@app.command()
def verify(
    export: Annotated[
        Path | None,
        typer.Option("--export", exists=True, dir_okay=False, help="Verify this export file "
                     "offline instead of the database."),
    ] = None,
    trusted_key: Annotated[
        list[str] | None,
        typer.Option("--trusted-key", help="Fingerprint of a signing key to believe "
                     "(repeatable); checkpoints signed by any other key count as broken."),
    ] = None,
) -> None:  # fmt: skip
    """Recompute the chain and check every checkpoint; exit 1 on any problem."""
    trusted = set(trusted_key) if trusted_key else None
    if export is not None:
        try:
            with export.open(encoding="utf-8") as lines:
                report = verify_export_lines(lines, trusted=trusted)
        except ExportFormatError as exc:
            typer.echo(f"error: {export} is not a valid export: {exc}", err=True)
            raise typer.Exit(1) from exc
    else:

        async def run(container: Container) -> VerifyReport:
            return await verify_database(container.sessions, trusted=trusted)

        report = with_container(run)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: VerifyReport) -> None:
    if report.ok:
        head = f" up to seq {report.head.seq}" if report.head is not None else ""
        typer.echo(
            f"audit chain OK: {report.events} events{head}, {report.checkpoints} checkpoints"
        )
        return
    first = report.problems[0]
    typer.echo(f"audit chain BROKEN: {first.message}", err=True)
    for problem in report.problems[1:MAX_LISTED]:
        typer.echo(f"  also: {problem.message}", err=True)
    if len(report.problems) > MAX_LISTED:
        typer.echo(f"  ... and {len(report.problems) - MAX_LISTED} more", err=True)


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}") from exc
    if moment.tzinfo is None:
        raise typer.BadParameter(f"give a time zone (e.g. Z or +00:00): {value!r}")
    return moment


@app.command("export")
def export_command(
    output: Annotated[Path, typer.Option("-o", "--output", dir_okay=False, help="File to write.")],
    since: Annotated[str | None, typer.Option(help="Events at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Events before (ISO 8601).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
) -> None:
    """Write the chain as JSON Lines: events, checkpoints and public keys, verifiable offline."""
    selection = AuditFilter(tenant_id=tenant, since=_when(since), until=_when(until))

    async def run(container: Container) -> int:
        count = 0
        with output.open("w", encoding="utf-8") as sink:
            lines = export_lines(container.sessions, selection, exported_at=container.clock.now())
            async for line in lines:
                sink.write(line)
                count += '"type": "event"' in line
        return count

    count = with_container(run)
    typer.echo(f"exported {count} events to {output}")


@app.command()
def checkpoint() -> None:
    """Sign the current chain head and store the checkpoint."""

    async def run(container: Container) -> Checkpoint | None:
        signer = CheckpointSigner(
            container.sessions, container.keys, container.clock, container.metrics
        )
        async with container.sessions.begin() as session:
            return await signer.checkpoint(session)

    try:
        written = with_container(run)
    except CryptoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if written is None:
        typer.echo("the audit chain is empty: nothing to sign")
        return
    when = format_time(written.signed_at)
    typer.echo(f"checkpoint at seq {written.seq} ({written.hash[:16]}...) signed {when}")
