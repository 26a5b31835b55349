from __future__ import annotations

import pytest

from ombud.storage.database import database_url


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("sqlite:///var/ombud.db", "sqlite+aiosqlite"),
        ("postgresql://u@host/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@host/db", "postgresql+asyncpg"),
    ],
)
def test_async_drivers_are_chosen(raw: str, driver: str) -> None:
    assert database_url(raw).drivername == driver


def test_other_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        database_url("mysql://u@host/db")
