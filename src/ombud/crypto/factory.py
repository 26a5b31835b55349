"""Building key management from settings; the composition root and the CLI call this."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.config import CryptoSettings, Settings
from ombud.core.clock import Clock
from ombud.crypto.keyring import LocalKeyring
from ombud.crypto.provider import KeyProvider
from ombud.crypto.service import KeyManager


def build_key_provider(settings: CryptoSettings, *, create: bool) -> KeyProvider:
    """The configured key provider.

    Args:
        settings: The ``crypto`` settings group.
        create: Whether a missing local keyring may be created (dev mode only).

    Raises:
        KeyringError: The keyring is missing or unreadable.
    """
    match settings.provider:
        case "local":
            return LocalKeyring(settings.keyring_path, create=create)


def build_key_manager(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> KeyManager:
    """The process's :class:`KeyManager`. Outside dev mode a missing keyring is an error.

    Raises:
        KeyringError: The keyring is missing (outside dev mode) or unreadable.
    """
    crypto = settings.crypto
    return KeyManager(
        sessions,
        build_key_provider(crypto, create=settings.is_dev),
        clock,
        crypto.data_key_cache_size,
        crypto.data_key_cache_ttl_s,
    )
