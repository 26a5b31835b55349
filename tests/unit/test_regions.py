"""Residency settings and the regional stores' bookkeeping, over fake stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ombud.config import DatabaseSettings, PrivacySettings
from ombud.core.errors import StoreUnavailable
from ombud.privacy.regions import MAIN, RegionalStores, RegionStore

pytestmark = pytest.mark.anyio

A, B, C = ("sub_" + c * 32 for c in "abc")


class FakeStore:
    """A store that holds ``rows`` (id → (region, tenant)) and counts the queries it gets;
    ``down``: every query fails."""

    def __init__(self, rows: dict[str, tuple[str, str]], *, down: bool = False) -> None:
        self.rows, self.down, self.queries = rows, down, 0

    async def execute(self, statement: Any) -> list[tuple[str, str, str]]:
        self.queries += 1
        if self.down:
            raise ConnectionError("store down")
        wanted = statement.compile().params
        ids = next(v for v in wanted.values() if isinstance(v, list))
        return [(i, *self.rows[i]) for i in ids if i in self.rows]

    def sessions(self) -> async_sessionmaker[AsyncSession]:
        @asynccontextmanager
        async def opened() -> AsyncIterator[FakeStore]:
            yield self

        return cast("async_sessionmaker[AsyncSession]", opened)


def _store(name: str, fake: FakeStore | None, *regions: str) -> RegionStore:
    sessions = fake.sessions() if fake else cast("async_sessionmaker[AsyncSession]", None)
    return RegionStore(name, regions, cast(AsyncEngine, None), sessions)


def test_region_databases_must_name_configured_regions() -> None:
    with pytest.raises(ValidationError, match="not in regions"):
        PrivacySettings(regions=["eu"], region_databases={"us": SecretStr("sqlite:///x.db")})
    with pytest.raises(ValidationError, match="each once"):
        PrivacySettings(regions=["eu", "eu"])
    with pytest.raises(ValidationError, match="at least one"):
        PrivacySettings(regions=[])


def test_a_region_may_not_reuse_another_stores_database() -> None:
    main = DatabaseSettings(url=SecretStr("sqlite:///var/main.db"))
    for urls in ({"us": "sqlite:///var/main.db"}, {"us": "sqlite:///x.db", "uk": "sqlite:///x.db"}):
        settings = PrivacySettings(
            regions=["eu", "us", "uk"], region_databases={k: SecretStr(v) for k, v in urls.items()}
        )
        with pytest.raises(ValueError, match="needs its own"):
            RegionalStores.build(settings, main, cast(AsyncEngine, None), cast(Any, None))


def test_each_region_maps_to_its_store() -> None:
    us = _store("us", None, "us")
    stores = RegionalStores(_store(MAIN, None, "eu", "uk"), {"us": us})
    assert stores.regions == ("eu", "uk", "us")
    assert stores.for_region("us") is us
    assert stores.for_region("uk") is stores.main
    assert [s.name for s in stores.stores] == [MAIN, "us"]
    assert stores.store(MAIN) is stores.main
    assert stores.store("us") is us
    with pytest.raises(ValueError, match="not configured"):
        stores.for_region("apac")


async def test_lookups_are_batched_remembered_and_bounded() -> None:
    main, us = FakeStore({A: ("eu", "ten_a")}), FakeStore({B: ("us", "ten_a")})
    stores = RegionalStores(_store(MAIN, main, "eu"), {"us": _store("us", us, "us")}, cache_size=2)
    grouped = await stores.homes([A, B, "not-a-subject", A])
    assert grouped == {MAIN: [A, "not-a-subject", A], "us": [B]}
    assert (main.queries, us.queries) == (1, 1)  # one query per store for the whole batch
    assert await stores.locate(B) == ("us", "ten_a")
    assert (main.queries, us.queries) == (1, 1)  # remembered
    # Another tenant's subject has no say over where the caller's data goes.
    assert (await stores.home(B, tenant_id="ten_b")).name == MAIN
    stores.remember(C, "us", "ten_b")  # evicts the least recently used (A)
    await stores.locate(A)
    assert main.queries == 2


async def test_a_store_that_is_down_fails_only_what_it_may_hold() -> None:
    main, us = FakeStore({A: ("eu", "ten_a")}), FakeStore({}, down=True)
    stores = RegionalStores(_store(MAIN, main, "eu"), {"us": _store("us", us, "us")})
    assert (await stores.home(A)).name == MAIN
    with pytest.raises(StoreUnavailable):
        await stores.home(B)


async def test_without_regional_databases_nothing_is_asked_for_a_home() -> None:
    main = FakeStore({A: ("eu", "ten_a")})
    stores = RegionalStores(_store(MAIN, main, "eu"), {})
    assert (await stores.home(A)).name == MAIN
    assert main.queries == 0
