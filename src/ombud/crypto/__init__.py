"""Key management: envelope encryption, KEK rotation and crypto-shredding.

The one owner of encryption in ombud. Use :func:`build_key_manager` to get a
:class:`KeyManager`; see ``docs/key-management.md`` for the design.
"""

from ombud.crypto.errors import CryptoError, DecryptionFailed, KeyDestroyed, KeyringError
from ombud.crypto.factory import build_key_manager, build_key_provider
from ombud.crypto.keyring import LocalKeyring
from ombud.crypto.provider import KeyProvider, WrappedKey
from ombud.crypto.service import KeyManager, RotationReport

__all__ = [
    "CryptoError",
    "DecryptionFailed",
    "KeyDestroyed",
    "KeyManager",
    "KeyProvider",
    "KeyringError",
    "LocalKeyring",
    "RotationReport",
    "WrappedKey",
    "build_key_manager",
    "build_key_provider",
]
