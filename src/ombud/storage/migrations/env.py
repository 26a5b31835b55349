"""Alembic environment. ombud runs migrations through ``ombud migrate``, which passes its own
connection; run standalone (``alembic revision --autogenerate``), it builds one from Settings."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from ombud.storage.base import UTCDateTime
from ombud.storage.tables import metadata


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render ombud's column types as plain SQLAlchemy types, so migrations stand alone."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    from ombud.config import Settings
    from ombud.storage.database import create_engine

    engine = create_engine(Settings().database)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


_shared = context.config.attributes.get("connection")
if _shared is not None:
    _run(_shared)
else:
    asyncio.run(_run_standalone())
