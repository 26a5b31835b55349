"""Signed checkpoints of the audit chain, and the signing key they are made with.

The Ed25519 signing key is generated on first use; its private half is stored only encrypted
by the key manager (scope ``system``, owner ``audit-signing``), its public half in clear so
that exports can carry it. A checkpoint signs (seq, hash, time) of the chain head: anyone with
the public key can later tell whether the chain up to that seq is still the one signed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.chain import Checkpoint, sign_checkpoint
from ombud.audit.repository import AuditRepository
from ombud.audit.tables import AuditSigningKeyRow
from ombud.config import Settings
from ombud.core.clock import Clock
from ombud.core.ids import new_id
from ombud.crypto.factory import build_key_manager
from ombud.crypto.service import KeyManager
from ombud.jobs.registry import JobContext
from ombud.observability.metrics import Metrics

log = logging.getLogger(__name__)

KEY_SCOPE = "system"
KEY_OWNER = "audit-signing"
CHECKPOINT_JOB = "audit.checkpoint"
"""Job kind: signs the current chain head."""
CHECKPOINT_SCHEDULE = "audit.checkpoint.every-5-minutes"
CHECKPOINT_CRON = "*/5 * * * *"


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A checkpoint verification key as exports carry it."""

    key_id: str
    public_key: str
    """Hex of the raw 32-byte Ed25519 public key."""

    def load(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw public key, hex: what a verifier pins (``--trusted-key``)."""
        return hashlib.sha256(bytes.fromhex(self.public_key)).hexdigest()


def _aad(key_id: str) -> bytes:
    # Binds the ciphertext to its row: a private key copied under another id will not decrypt.
    return f"audit_signing_keys:{key_id}".encode()


class CheckpointSigner:
    """Writes signed checkpoints of the chain head.

    Args:
        sessions: Where the signing keys are kept.
        keys: Encrypts and decrypts the private signing key.
        clock: The time a checkpoint states.
        metrics: When given, the checkpoint time and chain length are exported.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: KeyManager,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._clock = clock
        self._metrics = metrics

    async def checkpoint(self, session: AsyncSession) -> Checkpoint | None:
        """Sign the committed chain head in ``session``'s transaction; None for an empty chain.

        The caller commits ``session``.
        """
        key_id, private_key = await self._signing_key()
        repository = AuditRepository(session)
        head = await repository.head()
        if head.seq == 0:
            return None
        checkpoint = sign_checkpoint(private_key, key_id, head.seq, head.hash, self._clock.now())
        await repository.add_checkpoint(new_id("ckpt"), checkpoint)
        if self._metrics is not None:
            self._metrics.audit_chain_length.set(head.seq)
            self._metrics.audit_checkpoint_timestamp.set(checkpoint.signed_at.timestamp())
        log.info("audit checkpoint at seq %d", head.seq)
        return checkpoint

    async def _signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        async with self._sessions() as session:
            rows = await AuditRepository(session).signing_keys()
        if rows:
            row = rows[-1]
            raw = await self._keys.decrypt(
                row.private_key, aad=_aad(row.key_id), scope=KEY_SCOPE, owner=KEY_OWNER
            )
            return row.key_id, Ed25519PrivateKey.from_private_bytes(raw)
        return await self._create_key()

    async def _create_key(self) -> tuple[str, Ed25519PrivateKey]:
        private_key = Ed25519PrivateKey.generate()
        raw = private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        key_id = new_id("ask")
        ciphertext = await self._keys.encrypt(
            raw, scope=KEY_SCOPE, owner=KEY_OWNER, aad=_aad(key_id)
        )
        # Two processes creating a key at once each get their own: checkpoints name their key
        # and exports carry every public key, so both stay verifiable.
        async with self._sessions.begin() as session:
            await AuditRepository(session).add_signing_key(
                AuditSigningKeyRow(
                    key_id=key_id, public_key=public.hex(), private_key=ciphertext,
                    created_at=self._clock.now(),
                )
            )  # fmt: skip
        log.info("created audit signing key %s", key_id)
        return key_id, private_key


async def public_keys(session: AsyncSession) -> list[PublicKey]:
    """Every checkpoint verification key, oldest first."""
    rows = await AuditRepository(session).signing_keys()
    return [PublicKey(row.key_id, row.public_key) for row in rows]


async def checkpoint_job(context: JobContext) -> None:
    """Job ``audit.checkpoint``: sign the chain head, in the job's transaction."""
    engine = context.session.bind
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    # The job context carries no settings: the worker process's own configuration names the
    # key provider, exactly as it does for the process that runs the worker.
    keys = build_key_manager(Settings(), sessions, context.clock)
    await CheckpointSigner(sessions, keys, context.clock).checkpoint(context.session)
