"""The local key provider: a keyring file of key-encryption keys, wrapping with AES-256-GCM.

The file holds every KEK version (32 random bytes each, base64) and which one is current::

    {"format": 1, "current": 2, "keys": {"1": "...", "2": "..."}}

It is written atomically (temporary file, fsync, rename) with mode 0600, so a crash never leaves
half a keyring and no other local user can read it. Another process may rotate the keyring (the
``ombud crypto rotate`` command beside a running server): a changed file is re-read before
wrapping and whenever a wrapped key names a version this process has not seen.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ombud.crypto.errors import DecryptionFailed, KeyringError
from ombud.crypto.provider import WrappedKey

log = logging.getLogger(__name__)

KEK_BYTES = 32
NONCE_BYTES = 12
_FORMAT = 1
_AAD_PREFIX = b"ombud/kek/v"

# (inode, mtime, size): an atomic rename always changes the inode, an in-place edit the others.
_Stamp = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _State:
    current: int
    keys: dict[int, bytes]
    ciphers: dict[int, AESGCM]
    stamp: _Stamp | None


class LocalKeyring:
    """A :class:`~ombud.crypto.provider.KeyProvider` backed by a local keyring file.

    Args:
        path: The keyring file.
        create: Create the file with a first KEK version when it does not exist. Only dev mode
            should pass True: in production a missing keyring is an error, not a reason to start
            with a fresh key that cannot read any existing data.

    Raises:
        KeyringError: The file is missing (and ``create`` is False), unreadable or malformed.
    """

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self._path = path
        self._lock = threading.Lock()
        if create and not path.exists():
            _create(path)
        self._state = _load(path)

    @property
    def path(self) -> Path:
        return self._path

    async def current_version(self) -> int:
        return self._fresh().current

    async def wrap(self, data_key: bytes) -> WrappedKey:
        state = self._fresh()
        nonce = os.urandom(NONCE_BYTES)
        sealed = state.ciphers[state.current].encrypt(nonce, data_key, _aad(state.current))
        return WrappedKey(kek_version=state.current, ciphertext=nonce + sealed)

    async def unwrap(self, wrapped: WrappedKey) -> bytes:
        state = self._state
        if wrapped.kek_version not in state.ciphers:
            state = self._fresh()
        cipher = state.ciphers.get(wrapped.kek_version)
        if cipher is None:
            raise KeyringError(f"KEK version {wrapped.kek_version} is not in {self._path}")
        blob = wrapped.ciphertext
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(wrapped.kek_version))
        except (InvalidTag, ValueError) as exc:
            raise DecryptionFailed("the wrapped data key cannot be unwrapped") from exc

    async def add_version(self) -> int:
        return await anyio.to_thread.run_sync(self._add_version)

    def _add_version(self) -> int:
        with self._lock:
            # Start from the file, not memory, so a version added by another process survives.
            keys = dict(_load(self._path).keys)
            version = max(keys) + 1
            keys[version] = os.urandom(KEK_BYTES)
            _write(self._path, _document(version, keys))
            self._state = _load(self._path)
        log.info("keyring %s: KEK version %d is now current", self._path, version)
        return version

    def _fresh(self) -> _State:
        """The state, re-read first if the file changed since it was loaded."""
        try:
            stamp = _stamp(self._path.stat())
        except FileNotFoundError:
            log.warning("keyring %s has disappeared; using the keys already loaded", self._path)
            return self._state
        if stamp != self._state.stamp:
            with self._lock:
                self._state = _load(self._path)
        return self._state


def _aad(version: int) -> bytes:
    # Binding the version means a wrapped key cannot be relabelled as another version's.
    return _AAD_PREFIX + str(version).encode()


def _stamp(info: os.stat_result) -> _Stamp:
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _document(current: int, keys: dict[int, bytes]) -> dict[str, object]:
    encoded = {str(v): base64.b64encode(k).decode() for v, k in sorted(keys.items())}
    return {"format": _FORMAT, "current": current, "keys": encoded}


def _create(path: Path) -> None:
    """Write a keyring with one fresh KEK, never replacing a file that appeared meanwhile."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = _write_temp(path, _document(1, {1: os.urandom(KEK_BYTES)}))
    try:
        # link() refuses to overwrite: two processes starting at once keep the first keyring.
        os.link(temp, path)
        _fsync_dir(path.parent)
        log.warning("created a new keyring at %s (dev mode); back it up", path)
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)


def _write(path: Path, document: dict[str, object]) -> None:
    temp = _write_temp(path, document)
    try:
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _write_temp(path: Path, document: dict[str, object]) -> Path:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load(path: Path) -> _State:
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            raw = handle.read()
    except FileNotFoundError as exc:
        raise KeyringError(
            f"no keyring at {path}: restore it, or point OMBUD_CRYPTO__KEYRING_PATH at it "
            "(a new keyring is created automatically in dev mode only)"
        ) from exc
    except OSError as exc:
        raise KeyringError(f"cannot read the keyring {path}: {exc.strerror}") from exc
    if stat.S_IMODE(info.st_mode) & 0o077:
        log.warning("keyring %s is readable by other users; chmod 600 it", path)
    current, keys = _parse(raw, path)
    ciphers = {version: AESGCM(key) for version, key in keys.items()}
    return _State(current=current, keys=keys, ciphers=ciphers, stamp=_stamp(info))


def _parse(raw: bytes, path: Path) -> tuple[int, dict[int, bytes]]:
    try:
        document = json.loads(raw)
        if document["format"] != _FORMAT:
            raise ValueError(f"unsupported format {document['format']!r}")
        keys = {int(v): base64.b64decode(k, validate=True) for v, k in document["keys"].items()}
        current = int(document["current"])
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise KeyringError(f"the keyring {path} is malformed: {exc}") from exc
    if current not in keys:
        raise KeyringError(f"the keyring {path} has no key for its current version {current}")
    if any(len(key) != KEK_BYTES or version < 1 for version, key in keys.items()):
        raise KeyringError(f"the keyring {path} holds a key that is not {KEK_BYTES} bytes")
    return current, keys
