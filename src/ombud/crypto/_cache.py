"""A bounded LRU cache of unwrapped data keys, with a TTL measured on the injected clock."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ombud.core.clock import Clock
from ombud.crypto.envelope import DataKey, KeyScope


@dataclass(frozen=True, slots=True)
class _Entry:
    key: DataKey
    expires_at: float


class DataKeyCache:
    """Unwrapped data keys by id (for decrypt) and by owner (for encrypt).

    The TTL bounds how long a key destroyed by another process stays usable here. ``generation``
    grows on every eviction, so a lookup that started before a destroy cannot put the destroyed
    key back (see :meth:`put`). A size or TTL of 0 turns caching off.
    """

    def __init__(self, clock: Clock, *, size: int, ttl_s: float) -> None:
        self._clock = clock
        self._size = size
        self._ttl = ttl_s
        self._by_id: OrderedDict[str, _Entry] = OrderedDict()
        self._by_owner: dict[KeyScope, str] = {}
        self.generation = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def by_id(self, key_id: str) -> DataKey | None:
        entry = self._by_id.get(key_id)
        if entry is None:
            return None
        if entry.expires_at <= self._clock.monotonic():
            self._remove(key_id)
            return None
        self._by_id.move_to_end(key_id)
        return entry.key

    def by_owner(self, owner: KeyScope) -> DataKey | None:
        key_id = self._by_owner.get(owner)
        return None if key_id is None else self.by_id(key_id)

    def put(self, key: DataKey, *, generation: int) -> None:
        """Cache ``key`` unless an eviction happened since ``generation`` was read."""
        if self._size == 0 or self._ttl == 0 or generation != self.generation:
            return
        self._remove(key.key_id)
        self._by_id[key.key_id] = _Entry(key, self._clock.monotonic() + self._ttl)
        self._by_owner[key.owner] = key.key_id
        while len(self._by_id) > self._size:
            self._remove(next(iter(self._by_id)))

    def evict(self, owner: KeyScope) -> None:
        """Forget ``owner``'s key, now and for lookups already in flight."""
        self.generation += 1
        key_id = self._by_owner.get(owner)
        if key_id is not None:
            self._remove(key_id)

    def clear(self) -> None:
        self.generation += 1
        self._by_id.clear()
        self._by_owner.clear()

    def _remove(self, key_id: str) -> None:
        entry = self._by_id.pop(key_id, None)
        if entry is not None and self._by_owner.get(entry.key.owner) == key_id:
            del self._by_owner[entry.key.owner]
