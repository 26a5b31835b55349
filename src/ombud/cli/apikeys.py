"""``ombud apikeys create|list|revoke``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.cli.runtime import with_container
from ombud.container import Container
from ombud.core.errors import Problem
from ombud.identity.repository import IdentityRepository
from ombud.identity.schemas import ApiKeyCreated, ApiKeyRead
from ombud.identity.service import IdentityService

T = TypeVar("T")

app = typer.Typer(
    help="Create, list and revoke API keys.", no_args_is_help=True, pretty_exceptions_enable=False
)


def _identity(container: Container, session: AsyncSession) -> IdentityService:
    return IdentityService(IdentityRepository(session), container.api_key_pepper, container.clock)


@app.command()
def create(
    tenant: Annotated[str, typer.Option(help="Tenant slug; created if new.")],
    role: Annotated[list[str], typer.Option(help="Role of the key's principal (repeatable).")],
    principal: Annotated[
        str | None, typer.Option(help="Principal name; default: a new one per key.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
) -> None:
    """Issue a key. The key is printed once; only its digest is stored."""

    async def run(container: Container) -> ApiKeyCreated:
        async with container.sessions.begin() as session:
            return await _identity(container, session).create_api_key(
                tenant=tenant, roles=role, principal=principal, name=name
            )

    created = _guard(run)
    roles = ", ".join(created.roles)
    typer.echo(
        f"created key {created.prefix} for {created.principal}@{created.tenant} (roles: {roles})",
        err=True,
    )
    typer.echo(created.token)


@app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List keys (prefixes only; keys themselves are never stored)."""

    async def run(container: Container) -> list[ApiKeyRead]:
        async with container.sessions.begin() as session:
            return await _identity(container, session).list_api_keys(tenant)

    for key in _guard(run):
        if as_json:
            typer.echo(key.model_dump_json())
        else:
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            roles = ",".join(key.roles)
            typer.echo(f"{key.prefix}  {key.tenant:<16} {key.principal:<24} {roles:<24} {state}")


@app.command()
def revoke(key: Annotated[str, typer.Argument(help="Key prefix or id.")]) -> None:
    """Revoke a key; it stops working on the next request."""

    async def run(container: Container) -> None:
        async with container.sessions.begin() as session:
            await _identity(container, session).revoke_api_key(key)

    _guard(run)
    typer.echo(f"revoked {key}")


def _guard(work: Callable[[Container], Awaitable[T]]) -> T:
    try:
        return with_container(work)
    except Problem as exc:
        typer.echo(f"error: {exc.detail or exc.title}", err=True)
        raise typer.Exit(1) from exc
