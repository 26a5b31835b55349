"""``ombud providers set-secret | list | remove | check``: provider credentials and the catalog."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from ombud.cli.runtime import with_container
from ombud.config import environment
from ombud.container import Container
from ombud.llm.catalog import load_catalog
from ombud.llm.credentials import CredentialInfo, ProviderCredentials

app = typer.Typer(
    help="LLM providers: stored credentials and the catalog of deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _store(container: Container) -> ProviderCredentials:
    return ProviderCredentials(container.sessions, container.keys, container.clock)


@app.command("set-secret")
def set_secret(
    name: Annotated[
        str, typer.Argument(help="Credential name, as the catalog's providers use it.")
    ],
    from_env: Annotated[
        str | None, typer.Option(help="Read the secret from this environment variable.")
    ] = None,
) -> None:
    """Store a provider's API key, encrypted with key management. Read from stdin by default
    (never from the command line, where it would land in shell history)."""
    secret = environment().get(from_env, "") if from_env else sys.stdin.readline().strip()
    if not secret:
        typer.echo("error: the secret is empty", err=True)
        raise typer.Exit(2)

    async def run(container: Container) -> CredentialInfo:
        return await _store(container).put(name, secret)

    info = with_container(run)
    typer.echo(f"stored credential {info.name} ({info.fingerprint})")


@app.command("list")
def list_secrets() -> None:
    """Stored credentials: names and fingerprints only, never the secrets."""

    async def run(container: Container) -> list[CredentialInfo]:
        return await _store(container).list()

    for info in with_container(run):
        typer.echo(f"{info.name}\t{info.fingerprint}\t{info.updated_at.isoformat()}")


@app.command()
def remove(name: str) -> None:
    """Delete a stored credential and crypto-shred its key."""

    async def run(container: Container) -> bool:
        return await _store(container).remove(name)

    if not with_container(run):
        typer.echo(f"error: no credential named {name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed credential {name}")


@app.command()
def check(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Validate a catalog file (providers, deployments, aliases, routing) without serving it."""
    try:
        catalog = load_catalog(path)
    except (ValidationError, ValueError) as exc:
        typer.echo(f"error: {path}: {exc}", err=True)
        raise typer.Exit(1) from exc
    names = sorted({a for d in catalog.deployments for a in [d.id, *d.aliases]})
    typer.echo(f"{path}: {len(catalog.deployments)} deployments, callable as: {', '.join(names)}")
