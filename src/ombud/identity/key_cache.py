"""Recently verified API keys, so a hot key does not cost a database lookup per call.

Off by default (``OMBUD_SECURITY__API_KEY_CACHE_TTL_S=0``): every call then looks its key up, and
a revoked key fails on the very next call everywhere. With a TTL, a verified key's principal is
reused for up to that many seconds: a revocation made in this process (the API, or any
:class:`~ombud.identity.service.IdentityService` here) empties the cache at once, while a
revocation made elsewhere (another replica, the CLI) reaches this process within the TTL.
Only successful API-key checks are kept, under a digest of the presented key, never the key.
The container owns the one cache and hands :meth:`ApiKeyCache.forget_all` to the identity
service as its revocation hook.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from ombud.core.clock import Clock
from ombud.identity.principal import Principal


class ApiKeyCache:
    def __init__(self, clock: Clock, *, ttl_s: float, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    def get(self, token: str) -> Principal | None:
        key = _digest(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, principal = entry
        if expires <= self._clock.monotonic():
            del self._entries[key]
            return None
        return principal

    def put(self, token: str, principal: Principal) -> None:
        key = _digest(token)
        self._entries[key] = (self._clock.monotonic() + self._ttl, principal)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget_all(self) -> None:
        """A key was revoked in this process: nothing cached may be trusted any more."""
        self._entries.clear()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
