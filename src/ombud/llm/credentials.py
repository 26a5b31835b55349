"""Provider credentials: stored sealed with key management, kept apart from the adapters.

A secret is encrypted under the data key ``("provider", <name>)`` with its name as associated
data, so a ciphertext cannot be moved to another provider's row. Adapters never see the store:
the router resolves a provider's secret into the :class:`~ombud.llm.types.Target` of one attempt.
Secrets are never logged, never returned by any route, and kept in memory only as long as the
cache TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import LargeBinary, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from ombud.core.clock import Clock
from ombud.crypto.service import KeyManager
from ombud.storage.base import Base, UTCDateTime

SCOPE = "provider"


class ProviderCredentialRow(Base):
    """One provider secret, sealed; ``fingerprint`` is the last four characters, for humans."""

    __tablename__ = "provider_credentials"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    name: str
    fingerprint: str
    updated_at: datetime


class CredentialNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no stored credential named {name!r} (ombud providers set-secret)")
        self.name = name


class ProviderCredentials:
    """Store, list, remove and resolve provider secrets."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: KeyManager,
        clock: Clock,
        *,
        cache_ttl_s: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._clock = clock
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[float, str]] = {}

    async def put(self, name: str, secret: str) -> CredentialInfo:
        if not secret:
            raise ValueError("the secret is empty")
        sealed = await self._keys.encrypt(
            secret.encode(), scope=SCOPE, owner=name, aad=name.encode()
        )
        now = self._clock.now()
        fingerprint = "…" + secret[-4:] if len(secret) >= 12 else "…"
        async with self._sessions.begin() as session:
            row = await session.get(ProviderCredentialRow, name)
            if row is None:
                session.add(
                    ProviderCredentialRow(
                        name=name, ciphertext=sealed, fingerprint=fingerprint, updated_at=now
                    )
                )
            else:
                row.ciphertext, row.fingerprint, row.updated_at = sealed, fingerprint, now
        self._cache.pop(name, None)
        return CredentialInfo(name, fingerprint, now)

    async def list(self) -> list[CredentialInfo]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(ProviderCredentialRow))).all()
        return [CredentialInfo(r.name, r.fingerprint, r.updated_at) for r in rows]

    async def remove(self, name: str) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(ProviderCredentialRow).where(ProviderCredentialRow.name == name)
            )
        self._cache.pop(name, None)
        await self._keys.destroy(scope=SCOPE, owner=name)
        return bool(getattr(result, "rowcount", 0))

    async def secret(self, name: str) -> str:
        """The secret in clear, for one upstream attempt (cached for ``cache_ttl_s``)."""
        now = self._clock.monotonic()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessions() as session:
            row = await session.get(ProviderCredentialRow, name)
        if row is None:
            raise CredentialNotFound(name)
        secret = (await self._keys.decrypt(row.ciphertext, aad=name.encode())).decode()
        self._cache[name] = (now + self._ttl, secret)
        return secret
