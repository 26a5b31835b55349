"""Building key management from settings; the composition root and the CLI call this."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.config import CryptoSettings, Settings
from ombud.core.clock import Clock
from ombud.crypto.errors import KeyringError
from ombud.crypto.keyring import LocalKeyring
from ombud.crypto.provider import KeyProvider
from ombud.crypto.service import KeyManager


def build_key_provider(settings: CryptoSettings, *, create: bool, dev: bool = False) -> KeyProvider:
    """The configured key provider (``OMBUD_CRYPTO__PROVIDER``).

    Args:
        settings: The ``crypto`` settings group.
        create: Whether a missing local keyring or Vault transit key may be created (dev only).
        dev: Dev mode: plain http is then accepted for a Vault on a loopback address.

    Raises:
        KeyringError: The keyring is missing or unreadable, or the Vault settings are unusable.
    """
    match settings.provider:
        case "local":
            return LocalKeyring(settings.keyring_path, create=create)
        case "vault":
            if not settings.vault_url or settings.vault_token is None:
                raise KeyringError(
                    "OMBUD_CRYPTO__PROVIDER=vault needs OMBUD_CRYPTO__VAULT_URL and "
                    "OMBUD_CRYPTO__VAULT_TOKEN"
                )
            # Imported here: hvac costs ~0.1 s to import, and only Vault deployments need it.
            from ombud.crypto.vault import VaultTransitProvider

            # No request is made here: Vault being down must not stop the process from starting.
            return VaultTransitProvider(
                settings.vault_url,
                settings.vault_token,
                mount=settings.vault_mount,
                key_name=settings.vault_key_name,
                namespace=settings.vault_namespace,
                ca_bundle=settings.vault_ca_bundle,
                timeout_s=settings.vault_timeout_s,
                create=create,
                allow_plain_http=dev,
            )


def build_key_manager(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> KeyManager:
    """The process's :class:`KeyManager`. Outside dev mode a missing keyring is an error.

    Raises:
        KeyringError: The keyring is missing (outside dev mode) or unreadable, or the Vault
            settings are unusable (e.g. plain http outside dev mode).
    """
    crypto = settings.crypto
    return KeyManager(
        sessions,
        build_key_provider(crypto, create=settings.is_dev, dev=settings.is_dev),
        clock,
        crypto.data_key_cache_size,
        crypto.data_key_cache_ttl_s,
    )
