"""The ciphertext format of envelope encryption. Pure functions: no I/O, no key lookup.

A ciphertext is::

    version (1 byte, 0x01) | data key id (16 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext+tag

The header names the data key, so a ciphertext carries everything needed to find its key. The
associated data authenticates the header, the data key's scope and owner and the caller's AAD
(each length-prefixed, so no two different inputs encode alike): a ciphertext only decrypts for
the same owner and the same caller context it was sealed for, so it cannot be moved to another
subject's record unnoticed.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ombud.crypto.errors import DecryptionFailed

FORMAT_VERSION = 1
DATA_KEY_BYTES = 32
KEY_ID_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + KEY_ID_BYTES
OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES
"""Bytes a ciphertext has beyond its plaintext."""

_KEY_ID_PREFIX = "dk_"
_KEY_ID = re.compile(r"^dk_[0-9a-f]{32}$")
_AAD_DOMAIN = b"ombud/envelope/v1"


@dataclass(frozen=True, slots=True)
class KeyScope:
    """Whom a data key belongs to: a ``scope`` (``subject``, ``system``) and an ``owner`` in it."""

    scope: str
    owner: str


@dataclass(frozen=True, slots=True)
class DataKey:
    """An unwrapped data key: its id, whom it belongs to, and the 32 key bytes."""

    key_id: str
    owner: KeyScope
    material: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed ciphertext."""

    key_id: str
    nonce: bytes
    sealed: bytes
    header: bytes


def new_data_key() -> bytes:
    """A fresh random AES-256 data key."""
    return os.urandom(DATA_KEY_BYTES)


def new_key_id() -> str:
    """A fresh data key id, ``dk_`` and 32 hex digits (the 16 bytes a ciphertext carries)."""
    return _KEY_ID_PREFIX + secrets.token_hex(KEY_ID_BYTES)


def seal(key: DataKey, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt ``plaintext`` under a data key into the ciphertext format.

    Args:
        key: The data key; its id goes into the header, its scope and owner into the AAD.
        plaintext: What to encrypt.
        aad: Caller context that must be presented again to decrypt (e.g. a record id).

    Returns:
        The ciphertext: header, nonce, and AES-GCM output.
    """
    if not _KEY_ID.match(key.key_id):
        raise ValueError(f"malformed data key id {key.key_id!r}")
    header = bytes([FORMAT_VERSION]) + bytes.fromhex(key.key_id.removeprefix(_KEY_ID_PREFIX))
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.material).encrypt(nonce, plaintext, _associated(header, key.owner, aad))
    return header + nonce + sealed


def parse(ciphertext: bytes) -> Envelope:
    """Split a ciphertext into its parts, checking only its shape.

    Raises:
        DecryptionFailed: It is too short or of an unknown format version.
    """
    if len(ciphertext) < OVERHEAD or ciphertext[0] != FORMAT_VERSION:
        raise DecryptionFailed("not an ombud ciphertext (wrong length or format version)")
    key_id = _KEY_ID_PREFIX + ciphertext[1:HEADER_BYTES].hex()
    nonce = ciphertext[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    sealed = ciphertext[HEADER_BYTES + NONCE_BYTES :]
    return Envelope(key_id=key_id, nonce=nonce, sealed=sealed, header=ciphertext[:HEADER_BYTES])


def open_envelope(key: DataKey, envelope: Envelope, aad: bytes = b"") -> bytes:
    """Decrypt a parsed ciphertext with the data key its header names.

    Raises:
        DecryptionFailed: Any byte was altered, or the key, owner or AAD differ from sealing.
    """
    if key.key_id != envelope.key_id:
        raise DecryptionFailed("the ciphertext was sealed under another data key")
    associated = _associated(envelope.header, key.owner, aad)
    try:
        return AESGCM(key.material).decrypt(envelope.nonce, envelope.sealed, associated)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed("the ciphertext cannot be decrypted with this key and AAD") from exc


def _associated(header: bytes, owner: KeyScope, aad: bytes) -> bytes:
    parts = (_AAD_DOMAIN, header, owner.scope.encode(), owner.owner.encode(), aad)
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)
