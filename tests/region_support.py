"""Two regions for the residency and data-subject-rights tests, and a search of a database for
a value."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ombud.config import FeatureSettings, PrivacySettings, Settings
from ombud.storage.tables import metadata

VIEWS_DIR = Path(__file__).resolve().parents[1] / "features"


def two_regions(
    settings: Settings,
    regional_database: str,
    *,
    online_store: Literal["auto", "redis", "database"] = "database",
) -> Settings:
    """``settings`` with regions ``eu`` (the main database) and ``us`` (``regional_database``),
    and the shipped feature views."""
    privacy = PrivacySettings(
        regions=["eu", "us"], region_databases={"us": SecretStr(regional_database)}
    )
    features = FeatureSettings(views_dir=VIEWS_DIR, online_store=online_store)
    return settings.model_copy(update={"privacy": privacy, "features": features})


async def tables_naming(engine: AsyncEngine, needle: str) -> set[str]:
    """Every table of ``engine``'s database (from the schema metadata) with a row any column of
    which contains ``needle``, as text (bytes read as Latin-1)."""
    found: set[str] = set()
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                if any(needle in as_text(value) for value in row):
                    found.add(table.name)
                    break
    return found


def as_text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)
