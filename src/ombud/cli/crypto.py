"""``ombud crypto rotate``."""

from __future__ import annotations

from typing import Annotated

import typer

from ombud.cli.runtime import with_container
from ombud.container import Container
from ombud.crypto import CryptoError, RotationReport, build_key_manager
from ombud.crypto.service import ROTATION_BATCH

app = typer.Typer(
    help="Key management: rotate the key-encryption key.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def rotate(
    batch_size: Annotated[
        int, typer.Option(min=1, help="Data keys re-wrapped per transaction.")
    ] = ROTATION_BATCH,
) -> None:
    """Add a KEK version and re-wrap every live data key under it. Safe while ombud serves."""

    async def run(container: Container) -> RotationReport:
        manager = build_key_manager(container.settings, container.sessions, container.clock)
        return await manager.rotate(batch_size=batch_size)

    try:
        report = with_container(run)
    except CryptoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"KEK version {report.kek_version} is current")
    typer.echo(f"re-wrapped {report.rewrapped} data keys")
    if report.skipped:
        typer.echo(f"skipped {report.skipped} data keys destroyed or re-wrapped meanwhile")
    if report.failed:
        typer.echo(f"error: {report.failed} data keys could not be unwrapped (see log)", err=True)
        raise typer.Exit(1)
