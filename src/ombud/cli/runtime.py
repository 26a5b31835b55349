"""Running a CLI command against the configured database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from pydantic import ValidationError

from ombud.config import Settings
from ombud.container import Container

T = TypeVar("T")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"invalid configuration:\n{exc}", err=True)
        raise typer.Exit(2) from exc


def with_container(work: Callable[[Container], Awaitable[T]]) -> T:
    """Build the container, run ``work`` in an event loop, close everything."""

    async def run() -> T:
        container = Container.create(load_settings())
        try:
            return await work(container)
        finally:
            await container.aclose()

    return asyncio.run(run())
