"""Key management on every backend: nothing readable at rest, rotation, shredding, races."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from ombud.container import Container
from ombud.core.clock import Clock, FrozenClock, SystemClock
from ombud.crypto import (
    DecryptionFailed,
    KeyDestroyed,
    KeyManager,
    LocalKeyring,
    RotationReport,
    WrappedKey,
)
from ombud.crypto.provider import KeyProvider
from ombud.crypto.tables import DataKeyRow
from ombud.predictions.records import PredictionRecord
from ombud.predictions.repository import PredictionRepository
from ombud.storage.tables import metadata

pytestmark = pytest.mark.anyio

SUBJECT = "subject"
PLAINTEXTS = {
    "sub_anna": b"Anna Schmidt, anna.schmidt@example.org, DE89370400440532013000",
    "sub_ben": b"Ben Okafor, +44 20 7946 0958, 12 Baker Street",
    "sub_chen": b"Chen Wei, passport E12345678, born 1984-02-29",
}


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    LocalKeyring(path, create=True)
    return path


def _manager(
    container: Container,
    keyring_path: Path,
    *,
    clock: Clock | None = None,
    provider: KeyProvider | None = None,
    cache_size: int = 1024,
) -> KeyManager:
    """A manager of its own, like another replica, with its own keyring reader and cache."""
    return KeyManager(
        container.sessions,
        provider or LocalKeyring(keyring_path),
        clock or SystemClock(),
        cache_size,
        300.0,
    )


async def _data_keys(container: Container) -> list[DataKeyRow]:
    async with container.sessions() as session:
        return list(await session.scalars(select(DataKeyRow).order_by(DataKeyRow.owner)))


async def _dump(container: Container) -> list[object]:
    """Every value of every column of every table."""
    values: list[object] = []
    async with container.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                values.extend(row)
    return values


def _contains(values: Sequence[object], secret: bytes) -> bool:
    needles = (secret.decode("latin-1"), secret.hex())
    for value in values:
        if isinstance(value, bytes | bytearray | memoryview) and secret in bytes(value):
            return True
        if any(needle in str(value) for needle in needles):
            return True
    return False


def _sqlite_files(container: Container) -> bytes:
    url = make_url(container.settings.database.url.get_secret_value())
    if url.get_backend_name() != "sqlite" or not url.database:
        return b""
    files = [Path(url.database), Path(url.database + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def _aad(subject: str) -> bytes:
    return b"predictions/inputs/" + subject.encode()


async def test_nothing_readable_is_stored(container: Container, keyring_path: Path) -> None:
    manager = _manager(container, keyring_path)
    ciphertexts = {
        subject: await manager.encrypt(text, scope=SUBJECT, owner=subject, aad=_aad(subject))
        for subject, text in PLAINTEXTS.items()
    }
    records = [
        PredictionRecord(
            id=f"pred_{subject}", request_id="req_1", tenant_id="ten_1", principal_id="prn_1",
            model_name="m", model_version=1, inputs={"applicant": ciphertext.hex()},
            outputs={"score": 0.5}, latency_ms=1.0, created_at=datetime.now(UTC),
            subject=subject,
        )
        for subject, ciphertext in ciphertexts.items()
    ]  # fmt: skip
    async with container.sessions.begin() as session:
        await PredictionRepository(session).add(records)

    dump = await _dump(container)
    raw = _sqlite_files(container)
    assert _contains(dump, ciphertexts["sub_anna"]), "the dump must see the stored ciphertext"
    keyring = LocalKeyring(keyring_path)
    rows = await _data_keys(container)
    assert [r.owner for r in rows] == sorted(PLAINTEXTS)
    for row in rows:
        assert row.wrapped_key is not None
        material = await keyring.unwrap(WrappedKey(row.kek_version, row.wrapped_key))
        assert not _contains(dump, material)
        assert material not in raw
    for subject, text in PLAINTEXTS.items():
        assert not _contains(dump, text)
        for fragment in text.split(b", "):
            assert not _contains(dump, fragment)
            assert fragment not in raw
        stored = bytes.fromhex(next(r.inputs["applicant"] for r in records if r.subject == subject))
        assert await manager.decrypt(stored, aad=_aad(subject)) == text


async def test_decrypt_checks_aad_owner_and_key(container: Container, keyring_path: Path) -> None:
    manager = _manager(container, keyring_path)
    ciphertext = await manager.encrypt(b"secret", scope=SUBJECT, owner="sub_a", aad=b"row:1")
    assert (
        await manager.decrypt(ciphertext, aad=b"row:1", scope=SUBJECT, owner="sub_a") == b"secret"
    )
    with pytest.raises(DecryptionFailed):
        await manager.decrypt(ciphertext, aad=b"row:2")
    with pytest.raises(DecryptionFailed):
        await manager.decrypt(ciphertext, aad=b"row:1", owner="sub_b")
    with pytest.raises(DecryptionFailed):
        await manager.decrypt(ciphertext, aad=b"row:1", scope="system")
    unknown = ciphertext[:1] + bytes(16) + ciphertext[17:]
    with pytest.raises(DecryptionFailed):
        await manager.decrypt(unknown, aad=b"row:1")
    with pytest.raises(ValueError, match="key scope"):
        await manager.encrypt(b"x", scope="Not A Scope", owner="sub_a")
    with pytest.raises(ValueError, match="key owner"):
        await manager.encrypt(b"x", scope=SUBJECT, owner="")


@pytest.mark.parametrize("size", [0, 1, 64 * 1024 + 1, 1024 * 1024])
async def test_round_trip_of_small_and_large_values(
    container: Container, keyring_path: Path, size: int
) -> None:
    manager = _manager(container, keyring_path)
    plaintext = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    ciphertext = await manager.encrypt(plaintext, scope="system", owner="provider-secrets")
    assert await _manager(container, keyring_path).decrypt(ciphertext) == plaintext


async def test_rotation_rewraps_every_live_key(container: Container, keyring_path: Path) -> None:
    manager = _manager(container, keyring_path)
    owners = [f"sub_{n}" for n in range(7)]
    ciphertexts = {o: await manager.encrypt(o.encode(), scope=SUBJECT, owner=o) for o in owners}
    before = {row.id: row.wrapped_key for row in await _data_keys(container)}

    report = await manager.rotate(batch_size=3)

    assert report == RotationReport(kek_version=2, rewrapped=7, skipped=0, failed=0, batches=3)
    rows = await _data_keys(container)
    assert {row.kek_version for row in rows} == {2}
    assert all(before[row.id] != row.wrapped_key for row in rows)
    assert await manager.live_keys_by_kek_version() == {2: 7}
    cold = _manager(container, keyring_path)
    for owner, ciphertext in ciphertexts.items():
        assert await cold.decrypt(ciphertext) == owner.encode()
        assert await manager.decrypt(ciphertext) == owner.encode()
    assert (await manager.rotate()).rewrapped == 7
    assert await cold.live_keys_by_kek_version() == {3: 7}


class _SignallingKeyring(LocalKeyring):
    """Lets a test start its traffic right after the rotation has added its KEK version."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.version_added = anyio.Event()

    async def add_version(self) -> int:
        version = await super().add_version()
        self.version_added.set()
        return version


async def test_encrypt_and_decrypt_keep_working_during_rotation(
    container: Container, keyring_path: Path
) -> None:
    rotating = _SignallingKeyring(keyring_path)
    rotator = _manager(container, keyring_path, provider=rotating)
    # No cache: every operation goes to the database and the keyring while keys are re-wrapped.
    traffic = _manager(container, keyring_path, cache_size=0)
    existing = {f"sub_{n}": f"value {n}".encode() for n in range(12)}
    ciphertexts = {o: await traffic.encrypt(v, scope=SUBJECT, owner=o) for o, v in existing.items()}
    created: dict[str, bytes] = {}
    reports: list[RotationReport] = []
    overlapped = 0

    async def rotate() -> None:
        reports.append(await rotator.rotate(batch_size=1))

    async def use(n: int) -> None:
        nonlocal overlapped
        await rotating.version_added.wait()
        for owner, plaintext in list(existing.items())[n::4]:
            assert await traffic.decrypt(ciphertexts[owner]) == plaintext
            assert (
                await traffic.decrypt(await traffic.encrypt(plaintext, scope=SUBJECT, owner=owner))
                == plaintext
            )
            new_owner = f"new_{owner}"
            created[new_owner] = await traffic.encrypt(plaintext, scope=SUBJECT, owner=new_owner)
            overlapped += not reports

    async with anyio.create_task_group() as group:
        group.start_soon(rotate)
        for n in range(4):
            group.start_soon(use, n)

    assert overlapped > 0, "no operation ran while the rotation was in progress"
    assert reports[0].rewrapped + reports[0].skipped <= len(existing)
    assert await traffic.live_keys_by_kek_version() == {2: 24}
    cold = _manager(container, keyring_path)
    for owner, ciphertext in ciphertexts.items():
        assert await cold.decrypt(ciphertext) == existing[owner]
    for new_owner, ciphertext in created.items():
        assert await cold.decrypt(ciphertext) == existing[new_owner.removeprefix("new_")]


async def test_destroy_shreds_one_owner_even_with_warm_caches(
    container: Container, keyring_path: Path
) -> None:
    clock = FrozenClock()
    manager = _manager(container, keyring_path, clock=clock)
    replica = _manager(container, keyring_path, clock=clock)
    anna = await manager.encrypt(b"anna's data", scope=SUBJECT, owner="sub_anna")
    ben = await manager.encrypt(b"ben's data", scope=SUBJECT, owner="sub_ben")
    for reader in (manager, replica):
        assert await reader.decrypt(anna) == b"anna's data"
        assert await reader.decrypt(ben) == b"ben's data"

    assert await manager.destroy(scope=SUBJECT, owner="sub_anna") is True

    with pytest.raises(KeyDestroyed, match="sub_anna"):
        await manager.decrypt(anna)
    with pytest.raises(KeyDestroyed):
        await manager.encrypt(b"more", scope=SUBJECT, owner="sub_anna")
    assert await manager.decrypt(ben) == b"ben's data"
    assert await manager.destroy(scope=SUBJECT, owner="sub_anna") is False
    assert await manager.destroy(scope=SUBJECT, owner="sub_nobody") is False
    with pytest.raises(KeyDestroyed):
        await _manager(container, keyring_path).decrypt(anna)
    rows = {row.owner: row for row in await _data_keys(container)}
    assert rows["sub_anna"].wrapped_key is None
    assert rows["sub_anna"].destroyed_at == clock.now()

    # Another process learns of the destroy when its cached key expires.
    assert await replica.decrypt(anna) == b"anna's data"
    clock.advance(300)
    with pytest.raises(KeyDestroyed):
        await replica.decrypt(anna)
    assert await replica.decrypt(ben) == b"ben's data"

    report = await manager.rotate()
    assert (report.rewrapped, report.failed) == (1, 0)
    with pytest.raises(KeyDestroyed):
        await _manager(container, keyring_path).decrypt(anna)


async def test_concurrent_first_use_creates_one_key(
    container: Container, keyring_path: Path
) -> None:
    managers = [_manager(container, keyring_path) for _ in range(8)]
    ciphertexts: list[bytes] = []

    async def encrypt(n: int) -> None:
        manager = managers[n % len(managers)]
        ciphertexts.append(await manager.encrypt(b"%d" % n, scope=SUBJECT, owner="sub_race"))

    async with anyio.create_task_group() as group:
        for n in range(16):
            group.start_soon(encrypt, n)

    rows = await _data_keys(container)
    assert [row.owner for row in rows] == ["sub_race"]
    assert {c[1:17].hex() for c in ciphertexts} == {rows[0].id.removeprefix("dk_")}
    reader = _manager(container, keyring_path)
    assert sorted([await reader.decrypt(c) for c in ciphertexts], key=int) == [
        b"%d" % n for n in range(16)
    ]
