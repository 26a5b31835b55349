"""Residency: each data subject's data lives in the store of the subject's region.

A region is either served by a database of its own (``OMBUD_PRIVACY__REGION_DATABASES``, region
→ URL) or, when not listed there, by the main database. Every store carries the whole schema
(the same migrations run on each), but a store holds only its regions' subjects: their
``data_subjects`` row, vault, consents, preferences, access history, feature events and
embedded online features. The control plane (keys, registry, rollouts, policy, the audit trail
and the prediction log, which name subjects only by pseudonymous id and hold their personal
values sealed under the subject's key) stays in the main database.

:meth:`RegionalStores.home` finds the store holding a subject: it asks each store in turn and
remembers the answer (a subject's region never changes), so the lookup costs one primary-key
read per store the first time and nothing afterwards. A subject not found anywhere belongs to
the main store: data about an unregistered entity stays where it always was.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ombud.config import DatabaseSettings, PrivacySettings
from ombud.privacy.tables import DataSubjectRow
from ombud.storage import migrate
from ombud.storage.database import create_engine, create_sessionmaker

MAIN = "main"
"""The name of the main database as a store."""


@dataclass(frozen=True, slots=True)
class RegionStore:
    """One database and the regions whose subjects' data it holds."""

    name: str
    """``main``, or the region a database of its own serves."""
    regions: tuple[str, ...]
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


class RegionalStores:
    """The stores of every configured region, and which one holds a given subject.

    Args:
        main: The main database: the store of every region without a database of its own.
        regional: Stores of the regions that have one, by region.
        cache_size: Subjects whose region is remembered (least recently used go first).
    """

    def __init__(
        self, main: RegionStore, regional: dict[str, RegionStore], *, cache_size: int = 100_000
    ) -> None:
        self._main = main
        self._regional = dict(regional)
        self._cache: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def build(
        cls,
        settings: PrivacySettings,
        database: DatabaseSettings,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
    ) -> RegionalStores:
        """The main store over ``engine``, and an engine of its own for every region listed in
        ``settings.region_databases`` (pool settings as the main database's). Connections open
        lazily."""
        own = set(settings.region_databases)
        main = RegionStore(
            MAIN, tuple(r for r in settings.regions if r not in own), engine, sessions
        )
        regional: dict[str, RegionStore] = {}
        for region, url in settings.region_databases.items():
            regional_engine = create_engine(_with_url(database, url))
            regional[region] = RegionStore(
                region, (region,), regional_engine, create_sessionmaker(regional_engine)
            )
        return cls(main, regional)

    @property
    def main(self) -> RegionStore:
        return self._main

    @property
    def stores(self) -> tuple[RegionStore, ...]:
        """Every distinct database: the main one first, then one per region that has its own."""
        return (self._main, *self._regional.values())

    @property
    def regions(self) -> tuple[str, ...]:
        """Every configured region."""
        return (*self._main.regions, *self._regional)

    def for_region(self, region: str) -> RegionStore:
        """The store of ``region``.

        Raises:
            ValueError: ``region`` is not configured.
        """
        store = self._regional.get(region)
        if store is not None:
            return store
        if region in self._main.regions:
            return self._main
        raise ValueError(f"region {region!r} is not configured (OMBUD_PRIVACY__REGIONS)")

    def remember(self, subject_id: str, region: str, tenant_id: str) -> None:
        """Note where a subject lives and whose it is (called when it is created)."""
        self._cache[subject_id] = (region, tenant_id)
        self._cache.move_to_end(subject_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self, subject_id: str) -> None:
        """Drop what is remembered of a subject (called when it is erased)."""
        self._cache.pop(subject_id, None)

    async def region_of(self, subject_id: str) -> str | None:
        """The region of ``subject_id``, or None when no store knows the subject."""
        found = await self.locate(subject_id)
        return None if found is None else found[0]

    async def locate(self, subject_id: str) -> tuple[str, str] | None:
        """The region and the tenant of ``subject_id``, or None when no store knows it."""
        known = self._cache.get(subject_id)
        if known is not None:
            self._cache.move_to_end(subject_id)
            return known
        for store in (*self._regional.values(), self._main):
            async with store.sessions() as session:
                row = (
                    await session.execute(
                        select(DataSubjectRow.region, DataSubjectRow.tenant_id).where(
                            DataSubjectRow.id == subject_id
                        )
                    )
                ).first()
            if row is not None:
                self.remember(subject_id, row[0], row[1])
                return row[0], row[1]
        return None

    async def home(self, subject_id: str) -> RegionStore:
        """The store holding ``subject_id``'s data: its region's, or the main one for a subject
        no store knows (an unregistered entity, or one already erased)."""
        region = await self.region_of(subject_id)
        if region is None:
            return self._main
        try:
            return self.for_region(region)
        except ValueError:
            # A region dropped from the configuration: its subjects stay where they are found.
            return self._main

    async def homes(self, subject_ids: Iterable[str]) -> dict[str, list[str]]:
        """``subject_ids`` grouped by the name of the store that holds each."""
        grouped: dict[str, list[str]] = {}
        for subject_id in subject_ids:
            grouped.setdefault((await self.home(subject_id)).name, []).append(subject_id)
        return grouped

    def store(self, name: str) -> RegionStore:
        """A store by its name (as :meth:`homes` groups)."""
        if name == MAIN:
            return self._main
        return self._regional[name]

    async def upgrade(self) -> None:
        """Bring every regional database's schema up to date (the main one is migrated apart)."""
        for store in self._regional.values():
            await migrate.upgrade(store.engine)

    async def aclose(self) -> None:
        """Close the regional engines (not the main one, which the container owns)."""
        for store in self._regional.values():
            await store.engine.dispose()


def _with_url(database: DatabaseSettings, url: SecretStr) -> DatabaseSettings:
    return database.model_copy(update={"url": url})
