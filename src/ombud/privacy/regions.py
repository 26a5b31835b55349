"""Residency: each data subject's data lives in the store of the subject's region.

A region is either served by a database of its own (``OMBUD_PRIVACY__REGION_DATABASES``, region
→ URL) or, when not listed there, by the main database. Every store carries the whole schema
(the same migrations run on each), but a store holds only its regions' subjects: their
``data_subjects`` row, vault, consents, preferences, access history, feature events and
embedded online features. The control plane (keys, registry, rollouts, policy, the audit trail
and the prediction log, which name subjects only by pseudonymous id and hold their personal
values sealed under the subject's key) stays in the main database.

:meth:`RegionalStores.home` finds the store holding a subject: it asks every store at once
(one query per store for a whole batch of ids) and remembers where the row was found (a
subject's store never changes), so the lookup costs nothing afterwards. With no regional
database nothing is asked. Ids that cannot be subjects' are not looked up. A subject not found
anywhere belongs to the main store: data about an unregistered entity stays where it always
was. When a store cannot be reached, a subject found in another store is still served; one
found nowhere is refused (503 ``store_unavailable``), since it may live in the missing store.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ombud.config import DatabaseSettings, PrivacySettings
from ombud.core.errors import StoreUnavailable
from ombud.privacy.tables import DataSubjectRow
from ombud.storage import migrate
from ombud.storage.database import create_engine, create_sessionmaker, database_url

MAIN = "main"
"""The name of the main database as a store."""
_SUBJECT_ID = re.compile(r"sub_[0-9a-f]{32}")

log = logging.getLogger(__name__)


async def _lookup(store: RegionStore, subject_ids: list[str]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    async with store.sessions() as session:
        for start in range(0, len(subject_ids), 500):
            chunk = subject_ids[start : start + 500]
            stmt = select(DataSubjectRow.id, DataSubjectRow.region, DataSubjectRow.tenant_id)
            result = await session.execute(stmt.where(DataSubjectRow.id.in_(chunk)))
            rows += [(str(i), str(r), str(t)) for i, r, t in result]
    return rows


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
        self._cache: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        """Subject id → (region, tenant id, name of the store holding it)."""
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
        targets = [database_url(database.url.get_secret_value())]
        for region, url in settings.region_databases.items():
            target = database_url(url.get_secret_value())
            if target in targets:
                raise ValueError(
                    f"privacy.region_databases: region {region!r} names the main database or "
                    "another region's: each region with a database of its own needs its own"
                )
            targets.append(target)
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

    def remember(
        self, subject_id: str, region: str, tenant_id: str, store: str | None = None
    ) -> None:
        """Note where a subject lives, whose it is and which store holds it (called when it is
        created, and by every lookup that finds it)."""
        held = store if store is not None else self._store_name(region)
        self._cache[subject_id] = (region, tenant_id, held)
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
        found = (await self._find([subject_id])).get(subject_id)
        return None if found is None else (found[0], found[1])

    async def home(self, subject_id: str, *, tenant_id: str | None = None) -> RegionStore:
        """The store holding ``subject_id``'s data (where its row was found), or the main one
        for a subject no store knows (an unregistered entity, one already erased) or, with
        ``tenant_id``, a subject of another tenant (whose region has no say over the caller's
        data)."""
        name = (await self.homes([subject_id], tenant_id=tenant_id)).popitem()[0]
        return self.store(name)

    async def homes(
        self, subject_ids: Iterable[str], *, tenant_id: str | None = None
    ) -> dict[str, list[str]]:
        """``subject_ids`` grouped by the name of the store that holds each (as :meth:`home`),
        in the order given; one query per store for those not remembered."""
        wanted = list(subject_ids)
        if not self._regional:
            return {MAIN: wanted} if wanted else {}
        found = await self._find(wanted)
        grouped: dict[str, list[str]] = {}
        for subject_id in wanted:
            known = found.get(subject_id)
            mine = known is not None and (tenant_id is None or known[1] == tenant_id)
            name = known[2] if known is not None and mine else MAIN
            grouped.setdefault(name, []).append(subject_id)
        return grouped

    async def _find(self, subject_ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """(region, tenant, store name) of each of ``subject_ids`` that some store holds: from
        memory, else one query per store, all stores at once. Ids that cannot be subjects'
        (``sub_`` and 32 hex digits) are not looked up.

        Raises:
            StoreUnavailable: a store failed and an id was found in none of the others.
        """
        found: dict[str, tuple[str, str, str]] = {}
        missing: list[str] = []
        for subject_id in dict.fromkeys(subject_ids):
            known = self._cache.get(subject_id)
            if known is not None:
                self._cache.move_to_end(subject_id)
                found[subject_id] = known
            elif _SUBJECT_ID.fullmatch(subject_id):
                missing.append(subject_id)
        if not missing:
            return found
        stores = self.stores
        answers = await asyncio.gather(
            *(_lookup(store, missing) for store in stores), return_exceptions=True
        )
        failed: list[str] = []
        for store, answer in zip(stores, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning("subject lookup in store %s failed: %r", store.name, answer)
                failed.append(store.name)
                continue
            for subject_id, region, tenant in answer:
                self.remember(subject_id, region, tenant, store.name)
                found[subject_id] = (region, tenant, store.name)
        if failed and any(s not in found for s in missing):
            raise StoreUnavailable(
                detail=f"the subject store of {', '.join(failed)} cannot be reached"
            )
        return found

    def _store_name(self, region: str) -> str:
        try:
            return self.for_region(region).name
        except ValueError:
            return MAIN

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
