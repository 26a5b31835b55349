"""The local keyring: file handling, permissions, wrapping, versions. No database."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ombud.crypto import KeyringError, LocalKeyring, WrappedKey
from ombud.crypto.envelope import new_data_key
from ombud.crypto.errors import DecryptionFailed

pytestmark = pytest.mark.anyio


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "keyring.json"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_missing_keyring_is_created_only_when_asked(path: Path) -> None:
    with pytest.raises(KeyringError, match="no keyring"):
        LocalKeyring(path)
    assert not path.exists()
    keyring = LocalKeyring(path, create=True)
    assert await keyring.current_version() == 1
    assert _mode(path) == 0o600
    document = json.loads(path.read_text())
    assert document["current"] == 1
    assert list(document["keys"]) == ["1"]


async def test_create_never_replaces_an_existing_keyring(path: Path) -> None:
    first = LocalKeyring(path, create=True)
    wrapped = await first.wrap(b"k" * 32)
    before = path.read_bytes()
    second = LocalKeyring(path, create=True)
    assert path.read_bytes() == before
    assert await second.unwrap(wrapped) == b"k" * 32


async def test_wrap_and_unwrap(path: Path) -> None:
    keyring = LocalKeyring(path, create=True)
    data_key = new_data_key()
    wrapped = await keyring.wrap(data_key)
    assert wrapped.kek_version == 1
    assert data_key not in wrapped.ciphertext
    assert await keyring.unwrap(wrapped) == data_key
    assert await LocalKeyring(path).unwrap(wrapped) == data_key
    assert wrapped.ciphertext.hex() not in repr(wrapped)


async def test_old_versions_still_unwrap_after_add_version(path: Path) -> None:
    keyring = LocalKeyring(path, create=True)
    data_key = new_data_key()
    old = await keyring.wrap(data_key)
    assert await keyring.add_version() == 2
    assert await keyring.add_version() == 3
    new = await keyring.wrap(data_key)
    assert new.kek_version == 3
    assert await keyring.unwrap(old) == data_key
    assert await keyring.unwrap(new) == data_key
    assert _mode(path) == 0o600
    assert sorted(json.loads(path.read_text())["keys"]) == ["1", "2", "3"]
    assert [p.name for p in path.parent.iterdir()] == ["keyring.json"]


async def test_a_wrapped_key_cannot_be_relabelled_or_altered(path: Path) -> None:
    keyring = LocalKeyring(path, create=True)
    wrapped = await keyring.wrap(new_data_key())
    await keyring.add_version()
    with pytest.raises(DecryptionFailed):
        await keyring.unwrap(WrappedKey(2, wrapped.ciphertext))
    for index in range(len(wrapped.ciphertext)):
        tampered = bytearray(wrapped.ciphertext)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionFailed):
            await keyring.unwrap(WrappedKey(1, bytes(tampered)))
    with pytest.raises(DecryptionFailed):
        await keyring.unwrap(WrappedKey(1, wrapped.ciphertext[:10]))


async def test_an_unknown_version_is_a_keyring_error(path: Path) -> None:
    keyring = LocalKeyring(path, create=True)
    wrapped = await keyring.wrap(new_data_key())
    with pytest.raises(KeyringError, match="KEK version 7"):
        await keyring.unwrap(WrappedKey(7, wrapped.ciphertext))


async def test_a_rotation_by_another_process_is_picked_up(path: Path) -> None:
    server = LocalKeyring(path, create=True)
    await server.wrap(new_data_key())
    admin = LocalKeyring(path)
    data_key = new_data_key()
    await admin.add_version()
    rewrapped = await admin.wrap(data_key)
    assert rewrapped.kek_version == 2
    assert await server.unwrap(rewrapped) == data_key
    assert (await server.wrap(data_key)).kek_version == 2
    # The server adds on top of the admin's version instead of overwriting it.
    assert await server.add_version() == 3
    assert await admin.unwrap(rewrapped) == data_key


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"format": 2, "current": 1, "keys": {}}',
        '{"format": 1, "current": 2, "keys": {"1": "AAAA"}}',
        '{"format": 1, "current": 1, "keys": {"1": "AAAA"}}',
        '{"format": 1, "current": 1, "keys": {"1": "!!"}}',
        '{"format": 1, "current": 1}',
        "[]",
    ],
)
async def test_a_malformed_keyring_is_refused(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(KeyringError):
        LocalKeyring(path, create=True)


async def test_a_keyring_readable_by_others_is_reported(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    LocalKeyring(path, create=True)
    os.chmod(path, 0o644)
    LocalKeyring(path)
    assert "readable by other users" in caplog.text
