"""``authenticate``: the presented API key or JWT becomes a principal (or the call ends in 401)."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.core.clock import Clock
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome
from ombud.identity.key_cache import ApiKeyCache
from ombud.identity.oidc import TokenVerifier, looks_like_jwt
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService


class Authenticate:
    """Looks the key (or a JWT's tenant) up in a short read transaction of its own, so no
    connection is held while the rest of the call runs. JWTs are accepted when ``tokens`` is
    set; the session connects lazily, so none is held while a token's key set is fetched."""

    name = "authenticate"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pepper: bytes,
        clock: Clock,
        tokens: TokenVerifier | None = None,
        cache: ApiKeyCache | None = None,
    ) -> None:
        self._cache = cache if cache is not None and cache.enabled else None
        self._sessions = sessions
        self._pepper = pepper
        self._clock = clock
        self._tokens = tokens

    async def __call__(self, call: Call) -> Outcome:
        token = call.credentials.token()
        cached = self._cache.get(token) if self._cache is not None else None
        if cached is not None:
            call.principal = cached
        else:
            async with self._sessions() as session:
                identity = IdentityService(
                    IdentityRepository(session), self._pepper, self._clock, tokens=self._tokens
                )
                call.principal = await identity.authenticate(token)
            if self._cache is not None and not looks_like_jwt(token):
                self._cache.put(token, call.principal)
        structlog.contextvars.bind_contextvars(
            tenant=call.principal.tenant_slug, principal=call.principal.id
        )
        return None
