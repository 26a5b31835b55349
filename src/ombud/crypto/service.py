"""Key management: envelope encryption under per-owner data keys, rotation, crypto-shredding.

Every (scope, owner) pair, such as ``("subject", "sub_7f...")`` or ``("system",
"provider-secrets")``, gets one random AES-256 data key on first use. The data key is stored only
wrapped by the key provider's current KEK; ciphertexts name their data key, so decrypting needs
nothing but the ciphertext (and the caller's AAD). Destroying an owner's data key makes all of
that owner's ciphertexts unreadable wherever they were copied to.

The manager runs its own short transactions instead of joining the caller's unit of work: a data
key must exist durably before any ciphertext under it is handed out, whatever the caller's
transaction does afterwards.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.core.clock import Clock
from ombud.crypto import envelope
from ombud.crypto._cache import DataKeyCache
from ombud.crypto.envelope import DataKey, KeyScope
from ombud.crypto.errors import CryptoError, DecryptionFailed, KeyDestroyed
from ombud.crypto.provider import KeyProvider, WrappedKey
from ombud.crypto.repository import DataKeyRepository
from ombud.crypto.tables import DataKeyRow

log = logging.getLogger(__name__)

OFFLOAD_BYTES = 64 * 1024
"""Inputs larger than this are encrypted in a worker thread, off the event loop."""
ROTATION_BATCH = 500

_SCOPE = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
_OWNER_MAX = 200


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What a rotation did.

    Attributes:
        kek_version: The KEK version every live data key is now wrapped under.
        rewrapped: Data keys re-wrapped under it.
        skipped: Data keys destroyed or re-wrapped by someone else while the rotation ran.
        failed: Data keys whose wrapped form could not be unwrapped (logged; left as they were).
        batches: Batches (transactions) it took.
    """

    kek_version: int
    rewrapped: int
    skipped: int
    failed: int
    batches: int


class KeyManager:
    """The one owner of encryption: encrypt, decrypt, destroy (crypto-shred) and rotate.

    Args:
        sessions: Where data keys are stored (the ``data_keys`` table).
        provider: Wraps and unwraps data keys with the key-encryption key.
        clock: Measures the cache TTL.
        cache_size: How many unwrapped data keys to keep in memory (0: none).
        cache_ttl_s: How long an unwrapped key may be reused; also how long another process may
            go on decrypting after a destroy elsewhere.
        offload_bytes: Inputs above this size are processed in a worker thread.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        provider: KeyProvider,
        clock: Clock,
        cache_size: int,
        cache_ttl_s: float,
        *,
        offload_bytes: int = OFFLOAD_BYTES,
    ) -> None:
        self._sessions = sessions
        self._provider = provider
        self._clock = clock
        self._cache = DataKeyCache(clock, size=cache_size, ttl_s=cache_ttl_s)
        self._offload_bytes = offload_bytes

    async def encrypt(self, plaintext: bytes, *, scope: str, owner: str, aad: bytes = b"") -> bytes:
        """Encrypt under the data key of (``scope``, ``owner``), creating it on first use.

        Args:
            plaintext: What to encrypt.
            scope: The kind of owner, e.g. ``subject`` or ``system``.
            owner: Who the data belongs to within the scope, e.g. a pseudonymous subject id.
            aad: Context that must be given again to decrypt, e.g. the table and row it goes to.

        Raises:
            KeyDestroyed: The owner's data key was destroyed; erased owners get no new key.
        """
        key = await self._key_for_owner(_key_scope(scope, owner))
        return await self._run(functools.partial(envelope.seal, key, plaintext, aad), plaintext)

    async def decrypt(
        self,
        ciphertext: bytes,
        *,
        aad: bytes = b"",
        scope: str | None = None,
        owner: str | None = None,
    ) -> bytes:
        """Decrypt a ciphertext made by :meth:`encrypt`.

        Args:
            ciphertext: The ciphertext; it names its own data key.
            aad: The same AAD given to :meth:`encrypt`.
            scope: When given, the ciphertext must belong to this scope.
            owner: When given, the ciphertext must belong to this owner.

        Raises:
            KeyDestroyed: Its data key was destroyed.
            DecryptionFailed: It is malformed, altered, of an unknown key, or the AAD, scope or
                owner differ.
        """
        parsed = envelope.parse(ciphertext)
        key = await self._key_by_id(parsed.key_id)
        if (scope is not None and scope != key.owner.scope) or (
            owner is not None and owner != key.owner.owner
        ):
            raise DecryptionFailed("the ciphertext belongs to another key owner")
        work = functools.partial(envelope.open_envelope, key, parsed, aad)
        return await self._run(work, ciphertext)

    async def destroy(self, *, scope: str, owner: str) -> bool:
        """Crypto-shred (``scope``, ``owner``): erase its data key so nothing under it decrypts.

        Returns:
            True when a live key was destroyed, False when there was none (or it already was).
        """
        ref = _key_scope(scope, owner)
        try:
            async with self._sessions.begin() as session:
                key_id = await DataKeyRepository(session).destroy(scope, owner, self._clock.now())
        finally:
            self._cache.evict(ref)
        if key_id is not None:
            log.info("destroyed data key %s of %s/%s", key_id, scope, owner)
        return key_id is not None

    async def rotate(self, *, batch_size: int = ROTATION_BATCH) -> RotationReport:
        """Add a KEK version and re-wrap every live data key under it, ``batch_size`` at a time.

        Online: data keys themselves do not change, so ciphertexts and cached keys stay valid and
        encrypt/decrypt keep working throughout. Keys created meanwhile get the new version.
        """
        version = await self._provider.add_version()
        rewrapped = skipped = batches = 0
        failed: set[str] = set()
        while True:
            async with self._sessions() as session:
                rows = await DataKeyRepository(session).live_below(
                    version, limit=batch_size, exclude=failed
                )
            if not rows:
                break
            batches += 1
            done, lost = await self._rewrap(rows, failed)
            rewrapped += done
            skipped += lost
        report = RotationReport(version, rewrapped, skipped, len(failed), batches)
        log.info("rotation to KEK version %d: %s", version, report)
        return report

    async def live_keys_by_kek_version(self) -> dict[int, int]:
        """How many live data keys each KEK version wraps (all on one version after a rotation)."""
        async with self._sessions() as session:
            return await DataKeyRepository(session).count_live_by_version()

    async def _key_for_owner(self, ref: KeyScope) -> DataKey:
        cached = self._cache.by_owner(ref)
        if cached is not None:
            return cached
        generation = self._cache.generation
        async with self._sessions() as session:
            row = await DataKeyRepository(session).by_owner(ref.scope, ref.owner)
        if row is None:
            return await self._create(ref, generation)
        return await self._unwrap(row, generation)

    async def _key_by_id(self, key_id: str) -> DataKey:
        cached = self._cache.by_id(key_id)
        if cached is not None:
            return cached
        generation = self._cache.generation
        async with self._sessions() as session:
            row = await DataKeyRepository(session).by_id(key_id)
        if row is None:
            raise DecryptionFailed("the ciphertext names an unknown data key")
        return await self._unwrap(row, generation)

    async def _create(self, ref: KeyScope, generation: int) -> DataKey:
        candidate = DataKey(envelope.new_key_id(), ref, envelope.new_data_key())
        wrapped = await self._provider.wrap(candidate.material)
        # A transaction that starts by writing: on SQLite a read first could pin a snapshot that
        # a concurrent creator's commit makes stale, failing the write instead of waiting.
        async with self._sessions.begin() as session:
            repo = DataKeyRepository(session)
            inserted = await repo.insert_if_absent(
                key_id=candidate.key_id, scope=ref.scope, owner=ref.owner,
                wrapped=wrapped, at=self._clock.now(),
            )  # fmt: skip
            row = None if inserted else await repo.by_owner(ref.scope, ref.owner)
        if inserted:
            self._cache.put(candidate, generation=generation)
            return candidate
        if row is None:
            raise CryptoError(f"the data key of {ref.scope}/{ref.owner} vanished while created")
        # Another caller created the key first: use theirs, so the owner keeps a single key.
        return await self._unwrap(row, generation)

    async def _unwrap(self, row: DataKeyRow, generation: int) -> DataKey:
        if row.destroyed_at is not None or row.wrapped_key is None:
            raise KeyDestroyed(row.scope, row.owner)
        material = await self._provider.unwrap(WrappedKey(row.kek_version, row.wrapped_key))
        key = DataKey(row.id, KeyScope(row.scope, row.owner), material)
        self._cache.put(key, generation=generation)
        return key

    async def _rewrap(self, rows: list[DataKeyRow], failed: set[str]) -> tuple[int, int]:
        """Re-wrap one batch in one transaction; returns (re-wrapped, skipped)."""
        updates: list[tuple[str, int, WrappedKey]] = []
        for row in rows:
            try:
                if row.wrapped_key is None:
                    raise DecryptionFailed("a live data key has no wrapped key")
                material = await self._provider.unwrap(WrappedKey(row.kek_version, row.wrapped_key))
            except DecryptionFailed as exc:
                log.error("data key %s (KEK version %d): %s", row.id, row.kek_version, exc)
                failed.add(row.id)
                continue
            updates.append((row.id, row.kek_version, await self._provider.wrap(material)))
        done = 0
        # Reading and writing in separate transactions keeps SQLite writers from failing on a
        # stale snapshot; the conditional update makes a concurrent destroy win.
        async with self._sessions.begin() as session:
            repo = DataKeyRepository(session)
            for key_id, old_version, wrapped in updates:
                done += await repo.rewrap(key_id, from_version=old_version, wrapped=wrapped)
        return done, len(updates) - done

    async def _run(self, work: Callable[[], bytes], data: bytes) -> bytes:
        if len(data) > self._offload_bytes:
            return await anyio.to_thread.run_sync(work)
        return work()


def _key_scope(scope: str, owner: str) -> KeyScope:
    if not _SCOPE.match(scope):
        raise ValueError(f"key scope {scope!r} must match {_SCOPE.pattern}")
    if not owner or len(owner) > _OWNER_MAX:
        raise ValueError(f"key owner must be 1 to {_OWNER_MAX} characters")
    return KeyScope(scope, owner)
