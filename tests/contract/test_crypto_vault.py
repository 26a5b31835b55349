"""Key management with the Vault transit provider, on every backend, against a fake Vault.

The same behaviour as with the local keyring (``test_crypto.py``): nothing readable at rest,
online rotation, crypto-shredding, one key per owner under races. On top: what a Vault outage
does to each of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from pydantic import SecretStr

from ombud.container import Container
from ombud.core.clock import Clock, FrozenClock, SystemClock
from ombud.crypto import KeyDestroyed, KeyManager, RotationReport, WrappedKey
from ombud.crypto.errors import KeyProviderUnavailable, KeyringError
from ombud.crypto.vault import VaultTransitProvider
from tests.contract.test_crypto import (
    PLAINTEXTS,
    SUBJECT,
    _aad,
    _contains,
    _data_keys,
    _dump,
    _sqlite_files,
)
from tests.fakes.vault_transit import FakeVaultTransit

pytestmark = pytest.mark.anyio

KEY = "ombud"


@pytest.fixture
def vault() -> Iterator[FakeVaultTransit]:
    with FakeVaultTransit() as fake:
        fake.create_key(KEY)
        yield fake


def _provider(vault: FakeVaultTransit) -> VaultTransitProvider:
    return VaultTransitProvider(
        vault.url, SecretStr(vault.token), key_name=KEY, timeout_s=10.0, allow_plain_http=True
    )


def _manager(
    container: Container,
    vault: FakeVaultTransit,
    *,
    clock: Clock | None = None,
    cache_size: int = 1024,
) -> KeyManager:
    """A manager of its own, like another replica: its own Vault client and key cache."""
    return KeyManager(
        container.sessions, _provider(vault), clock or SystemClock(), cache_size, 300.0
    )


async def test_nothing_readable_is_stored(container: Container, vault: FakeVaultTransit) -> None:
    manager = _manager(container, vault)
    ciphertexts = {
        subject: await manager.encrypt(text, scope=SUBJECT, owner=subject, aad=_aad(subject))
        for subject, text in PLAINTEXTS.items()
    }
    dump = await _dump(container)
    raw = _sqlite_files(container)
    rows = await _data_keys(container)
    assert [r.owner for r in rows] == sorted(PLAINTEXTS)
    for row in rows:
        assert row.kek_version == 1
        assert row.wrapped_key is not None
        assert row.wrapped_key.startswith(b"vault:v1:")
        material = await _provider(vault).unwrap(WrappedKey(row.kek_version, row.wrapped_key))
        assert not _contains(dump, material)
        assert material not in raw
    for text in PLAINTEXTS.values():
        assert not _contains(dump, text)
    cold = _manager(container, vault)
    for subject, ciphertext in ciphertexts.items():
        assert await cold.decrypt(ciphertext, aad=_aad(subject)) == PLAINTEXTS[subject]


async def test_rotation_rewraps_under_the_new_transit_version(
    container: Container, vault: FakeVaultTransit
) -> None:
    manager = _manager(container, vault)
    owners = [f"sub_{n}" for n in range(7)]
    ciphertexts = {o: await manager.encrypt(o.encode(), scope=SUBJECT, owner=o) for o in owners}

    report = await manager.rotate(batch_size=3)

    assert report == RotationReport(kek_version=2, rewrapped=7, skipped=0, failed=0, batches=3)
    assert vault.latest_version(KEY) == 2
    rows = await _data_keys(container)
    assert {row.kek_version for row in rows} == {2}
    assert all(row.wrapped_key and row.wrapped_key.startswith(b"vault:v2:") for row in rows)
    # Nothing depends on version 1 any more: Vault may now refuse to decrypt with it.
    vault.set_min_decryption_version(KEY, 2)
    cold = _manager(container, vault)
    for owner, ciphertext in ciphertexts.items():
        assert await cold.decrypt(ciphertext) == owner.encode()
    assert (await manager.rotate()).rewrapped == 7
    assert await cold.live_keys_by_kek_version() == {3: 7}


async def test_encrypt_and_decrypt_keep_working_during_rotation(
    container: Container, vault: FakeVaultTransit
) -> None:
    rotator = _manager(container, vault)
    traffic = _manager(container, vault, cache_size=0)
    existing = {f"sub_{n}": f"value {n}".encode() for n in range(12)}
    ciphertexts = {o: await traffic.encrypt(v, scope=SUBJECT, owner=o) for o, v in existing.items()}
    created: dict[str, bytes] = {}

    async def rotate() -> None:
        await rotator.rotate(batch_size=1)

    async def use(n: int) -> None:
        # Start once Vault has the new version, so every new key is wrapped under it or re-wrapped.
        while vault.latest_version(KEY) < 2:
            await anyio.sleep(0.001)
        for owner, plaintext in list(existing.items())[n::4]:
            assert await traffic.decrypt(ciphertexts[owner]) == plaintext
            created[f"new_{owner}"] = await traffic.encrypt(
                plaintext, scope=SUBJECT, owner=f"new_{owner}"
            )

    async with anyio.create_task_group() as group:
        group.start_soon(rotate)
        for n in range(4):
            group.start_soon(use, n)

    # Keys created before the rotation's scan were re-wrapped, those after were wrapped under v2.
    assert await traffic.live_keys_by_kek_version() == {2: 24}
    cold = _manager(container, vault)
    for owner, ciphertext in ciphertexts.items():
        assert await cold.decrypt(ciphertext) == existing[owner]
    for new_owner, ciphertext in created.items():
        assert await cold.decrypt(ciphertext) == existing[new_owner.removeprefix("new_")]


async def test_a_rotation_cut_short_by_an_outage_can_be_run_again(
    container: Container, vault: FakeVaultTransit
) -> None:
    manager = _manager(container, vault)
    owners = [f"sub_{n}" for n in range(6)]
    ciphertexts = {o: await manager.encrypt(o.encode(), scope=SUBJECT, owner=o) for o in owners}
    # rotate, read the key, then decrypt+encrypt of two keys (one batch): then Vault goes down.
    vault.fail_next(50, "unavailable", after=6)

    with pytest.raises(KeyProviderUnavailable, match="Vault is sealed"):
        await manager.rotate(batch_size=2)

    assert await manager.live_keys_by_kek_version() == {1: 4, 2: 2}
    vault.fail_next(0)
    cold = _manager(container, vault)
    for owner, ciphertext in ciphertexts.items():
        assert await cold.decrypt(ciphertext) == owner.encode()
    report = await manager.rotate(batch_size=2)
    assert (report.kek_version, report.rewrapped, report.failed) == (3, 6, 0)
    assert await manager.live_keys_by_kek_version() == {3: 6}


async def test_an_outage_spares_cached_keys_only(
    container: Container, vault: FakeVaultTransit
) -> None:
    warm = _manager(container, vault)
    ciphertext = await warm.encrypt(b"anna's data", scope=SUBJECT, owner="sub_anna")
    vault.fail_next(1000, "unavailable")

    assert await warm.decrypt(ciphertext) == b"anna's data"
    with pytest.raises(KeyProviderUnavailable):
        await _manager(container, vault).decrypt(ciphertext)
    with pytest.raises(KeyProviderUnavailable):
        await warm.encrypt(b"ben's data", scope=SUBJECT, owner="sub_ben")
    assert [row.owner for row in await _data_keys(container)] == ["sub_anna"]

    vault.fail_next(0)
    assert await _manager(container, vault).decrypt(ciphertext) == b"anna's data"


async def test_destroy_shreds_one_owner(container: Container, vault: FakeVaultTransit) -> None:
    clock = FrozenClock()
    manager = _manager(container, vault, clock=clock)
    anna = await manager.encrypt(b"anna's data", scope=SUBJECT, owner="sub_anna")
    ben = await manager.encrypt(b"ben's data", scope=SUBJECT, owner="sub_ben")
    wrapped_anna = next(r.wrapped_key for r in await _data_keys(container) if r.owner == "sub_anna")

    assert await manager.destroy(scope=SUBJECT, owner="sub_anna") is True

    with pytest.raises(KeyDestroyed, match="sub_anna"):
        await manager.decrypt(anna)
    with pytest.raises(KeyDestroyed):
        await manager.encrypt(b"more", scope=SUBJECT, owner="sub_anna")
    with pytest.raises(KeyDestroyed):
        await _manager(container, vault).decrypt(anna)
    assert await manager.decrypt(ben) == b"ben's data"
    rows = {row.owner: row for row in await _data_keys(container)}
    assert rows["sub_anna"].wrapped_key is None
    assert rows["sub_anna"].destroyed_at == clock.now()

    report = await manager.rotate()
    assert (report.rewrapped, report.failed) == (1, 0)
    with pytest.raises(KeyDestroyed):
        await _manager(container, vault).decrypt(anna)
    # A backup taken before the destroy still holds Anna's wrapped key; once Vault refuses the
    # version that wrapped it, that copy is useless too.
    assert wrapped_anna is not None
    vault.set_min_decryption_version(KEY, 2)
    with pytest.raises(KeyringError, match="disallowed by policy"):
        await _provider(vault).unwrap(WrappedKey(1, wrapped_anna))
    assert await _manager(container, vault).decrypt(ben) == b"ben's data"


async def test_concurrent_first_use_creates_one_key(
    container: Container, vault: FakeVaultTransit
) -> None:
    managers = [_manager(container, vault) for _ in range(8)]
    ciphertexts: list[bytes] = []

    async def encrypt(n: int) -> None:
        manager = managers[n % len(managers)]
        ciphertexts.append(await manager.encrypt(b"%d" % n, scope=SUBJECT, owner="sub_race"))

    async with anyio.create_task_group() as group:
        for n in range(16):
            group.start_soon(encrypt, n)

    rows = await _data_keys(container)
    assert [row.owner for row in rows] == ["sub_race"]
    reader = _manager(container, vault)
    assert sorted([await reader.decrypt(c) for c in ciphertexts], key=int) == [
        b"%d" % n for n in range(16)
    ]
