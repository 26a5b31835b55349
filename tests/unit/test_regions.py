"""Residency settings and the regional stores' bookkeeping (no database needed)."""

from __future__ import annotations

from typing import cast

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ombud.config import PrivacySettings
from ombud.privacy.regions import MAIN, RegionalStores, RegionStore

pytestmark = pytest.mark.anyio


def _store(name: str, *regions: str) -> RegionStore:
    return RegionStore(
        name, regions, cast(AsyncEngine, None), cast("async_sessionmaker[AsyncSession]", None)
    )


def test_region_databases_must_name_configured_regions() -> None:
    with pytest.raises(ValidationError, match="not in regions"):
        PrivacySettings(regions=["eu"], region_databases={"us": SecretStr("sqlite:///x.db")})
    with pytest.raises(ValidationError, match="each once"):
        PrivacySettings(regions=["eu", "eu"])
    with pytest.raises(ValidationError, match="at least one"):
        PrivacySettings(regions=[])


def test_each_region_maps_to_its_store() -> None:
    us = _store("us", "us")
    stores = RegionalStores(_store(MAIN, "eu", "uk"), {"us": us})
    assert stores.regions == ("eu", "uk", "us")
    assert stores.for_region("us") is us
    assert stores.for_region("uk") is stores.main
    assert [s.name for s in stores.stores] == [MAIN, "us"]
    assert stores.store(MAIN) is stores.main
    assert stores.store("us") is us
    with pytest.raises(ValueError, match="not configured"):
        stores.for_region("apac")


async def test_remembered_subjects_need_no_lookup_and_the_memory_is_bounded() -> None:
    us = _store("us", "us")
    stores = RegionalStores(_store(MAIN, "eu"), {"us": us}, cache_size=2)
    stores.remember("sub_a", "us", "ten_a")
    stores.remember("sub_b", "eu", "ten_a")
    # The stores have no sessions: a lookup that reached them would fail.
    assert await stores.home("sub_a") is us
    assert await stores.homes(["sub_a", "sub_b", "sub_a"]) == {
        "us": ["sub_a", "sub_a"],
        MAIN: ["sub_b"],
    }
    stores.remember("sub_c", "us", "ten_b")  # evicts the least recently used (sub_b)
    assert await stores.region_of("sub_c") == "us"
    assert await stores.locate("sub_c") == ("us", "ten_b")
    stores.forget("sub_c")
    with pytest.raises(TypeError):
        await stores.region_of("sub_b")
