"""The online store across regions: each entity's features in its home store.

With the database online store, every regional database (:mod:`ombud.privacy.regions`) has its
own ``online_features`` table, and :class:`RegionalOnlineStore` sends each entity's reads and
writes to its home store's table. With Redis there is one store for every region (one Redis
per deployment; a region that must keep its online features apart runs a gateway with a Redis
of its own), and the wrapper adds nothing: no home lookup is made.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from ombud.config import FeatureSettings
from ombud.features.online import DatabaseOnlineStore, OnlineRecord, OnlineStore, RedisOnlineStore
from ombud.privacy.regions import RegionalStores

log = logging.getLogger(__name__)


class RegionalOnlineStore:
    """An :class:`~ombud.features.online.OnlineStore` over one store per database.

    Args:
        stores: The online store of each regional store, by store name (``main`` included).
        regions: Where each entity lives.
    """

    def __init__(self, stores: Mapping[str, OnlineStore], regions: RegionalStores) -> None:
        self._stores = dict(stores)
        self._regions = regions
        distinct = {id(store) for store in self._stores.values()}
        self._single = next(iter(self._stores.values())) if len(distinct) == 1 else None
        self.name = next(iter(self._stores.values())).name

    def store(self, name: str) -> OnlineStore:
        """The online store of the regional store ``name``."""
        return self._stores[name]

    async def write(
        self, tenant_id: str, view_id: str, records: Mapping[str, OnlineRecord]
    ) -> None:
        if self._single is not None:
            await self._single.write(tenant_id, view_id, records)
            return
        for name, members in (await self._regions.homes(records, tenant_id=tenant_id)).items():
            part = {entity: records[entity] for entity in members}
            await self._stores[name].write(tenant_id, view_id, part)

    async def read(
        self, tenant_id: str, view_id: str, entity_ids: Sequence[str]
    ) -> dict[str, OnlineRecord]:
        if self._single is not None:
            return await self._single.read(tenant_id, view_id, entity_ids)
        found: dict[str, OnlineRecord] = {}
        grouped = await self._regions.homes(dict.fromkeys(entity_ids), tenant_id=tenant_id)
        for name, members in grouped.items():
            found |= await self._stores[name].read(tenant_id, view_id, members)
        return found

    async def delete(self, tenant_id: str, entity_ids: Sequence[str]) -> int:
        """Remove the entities' features from every distinct store, not only their homes: an
        entity whose subject row is already gone (an erasure retried) has no home to find."""
        distinct = {id(store): store for store in self._stores.values()}
        return sum([await store.delete(tenant_id, entity_ids) for store in distinct.values()])


def build_regional_online_store(
    settings: FeatureSettings, *, redis: Redis | None, regions: RegionalStores
) -> RegionalOnlineStore:
    """The adapter ``OMBUD_FEATURES__ONLINE_STORE`` chooses (``auto``: Redis when
    ``OMBUD_REDIS__URL`` is set, else the database), for every regional store.

    Raises:
        ValueError: ``redis`` is asked for without a Redis URL (a startup error).
    """
    if settings.online_store == "database" or (settings.online_store == "auto" and redis is None):
        stores: dict[str, OnlineStore] = {
            s.name: DatabaseOnlineStore(s.sessions) for s in regions.stores
        }
        return RegionalOnlineStore(stores, regions)
    if redis is None:
        raise ValueError("OMBUD_FEATURES__ONLINE_STORE=redis needs OMBUD_REDIS__URL")
    if len(regions.stores) > 1:
        log.warning(
            "online features of every region go to the one Redis (OMBUD_FEATURES__ONLINE_STORE "
            "resolves to redis while regions have databases of their own); run a gateway per "
            "region, or use the database online store, to keep them in their region"
        )
    shared = RedisOnlineStore(redis)
    return RegionalOnlineStore({s.name: shared for s in regions.stores}, regions)
