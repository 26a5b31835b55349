"""The LLM gateway's response cache: exact match, in-process LRU first, then Redis.

An entry is found only by a request that is the same in every field that can change the answer
(see :func:`cache_key`), sent to the same candidate deployments at the same versions, by the same
tenant. Sampling settings are part of the key but do not stop caching: a request with a
temperature above 0 is cached too, because the cache is switched on by settings
(``llm.cache_enabled``) and a client that wants a fresh sample opts out per request
(:func:`cache_directive`).

Tiers:

* memory: this process's LRU, bounded by ``max_entries``; entries expire ``ttl_s`` after they were
  stored (by the injected clock), or when the Redis copy they were promoted from would.
* redis: shared by every replica. A Redis hit is promoted into memory. Redis failing never fails a
  call: a lookup becomes a miss, a store is dropped, the error is counted and logged once per
  burst, and Redis is left alone for ``retry_after_s`` so a dead server does not slow every call.

Erasure: entries are indexed by data subject and by tenant in both tiers, so
:meth:`ResponseCache.forget_subject` removes them without scanning the keyspace. An entry is
indexed under the subject whose call stored it and under every subject it was later served to (a
shared answer may carry either's data). Copies in the memory tier of *other* processes cannot be
reached from here; instead, a memory hit on an entry stored for or served to a subject is
confirmed against Redis (one ``EXISTS``), so erasure done by any replica takes effect everywhere
at once. While Redis is unreachable such entries are still served from memory, bounded by
``ttl_s``: an erasure cannot reach Redis then either and is reported as failed
(:class:`CacheUnavailable`), for the caller to retry. Tenant removal
(:meth:`ResponseCache.forget_tenant`) is not confirmed that way: other processes' memory copies of
a removed tenant's entries without a subject live out their TTL.

Redis layout: entries at ``{prefix}:{tenant}:{digest}``; the indexes ``{prefix}:subject:{subject}``
and ``{prefix}:tenant:{tenant}`` are sorted sets of entry keys scored by their expiry (ms), with
the entries' TTL refreshed on every store; members expired for longer than a TTL are trimmed on
store, so an index that is written to all the time stays bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ombud.core.clock import Clock
from ombud.llm.cache_keys import CacheKey as CacheKey
from ombud.llm.cache_keys import Directive as Directive
from ombud.llm.cache_keys import cache_directive as cache_directive
from ombud.llm.cache_keys import cache_key as cache_key
from ombud.llm.types import ChatResult, EmbeddingResult
from ombud.observability.metrics import Metrics

log = logging.getLogger(__name__)

Tier = Literal["memory", "redis"]

"""Leads every canonical form: changing the key's layout changes this, so old entries miss."""

_VALUE_VERSION = 1
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)
_FORGET_BATCH = 500


class CacheUnavailable(Exception):
    """Redis failed during an erasure: entries may remain there, so the erasure must be retried."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """An upstream's answer as the cache keeps it: enough to answer the call again.

    Attributes:
        kind: ``chat`` (``text`` and ``finish_reason`` set) or ``embedding`` (``vectors`` set).
        usage_input_tokens: Tokens the original call used (0 when the upstream reported none).
        deployment: The deployment that answered.
        model: The model that answered, as the upstream named it.
        created_at: When the answer was stored (POSIX seconds): its age, for the response.
    """

    kind: Literal["chat", "embedding"]
    text: str | None
    finish_reason: str | None
    vectors: list[list[float]] | None
    usage_input_tokens: int
    usage_output_tokens: int
    deployment: str
    model: str
    created_at: float

    @classmethod
    def of_chat(cls, result: ChatResult, *, deployment: str, created_at: float) -> CachedAnswer:
        usage = result.usage
        return cls(
            kind="chat",
            text=result.text,
            finish_reason=result.finish_reason,
            vectors=None,
            usage_input_tokens=usage.input_tokens if usage else 0,
            usage_output_tokens=usage.output_tokens if usage else 0,
            deployment=deployment,
            model=result.model,
            created_at=created_at,
        )

    @classmethod
    def of_embedding(
        cls, result: EmbeddingResult, *, deployment: str, created_at: float
    ) -> CachedAnswer:
        usage = result.usage
        return cls(
            kind="embedding",
            text=None,
            finish_reason=None,
            vectors=result.vectors,
            usage_input_tokens=usage.input_tokens if usage else 0,
            usage_output_tokens=usage.output_tokens if usage else 0,
            deployment=deployment,
            model=result.model,
            created_at=created_at,
        )


def _encode(answer: CachedAnswer, personal: bool) -> bytes:
    """Compact JSON; vectors as base64 little-endian float32 (a third of their JSON size).

    ``personal`` (stored for a data subject) travels with the value, not the subject itself: it
    tells a replica that promotes the entry to confirm it against Redis before serving it."""
    vectors = (
        None
        if answer.vectors is None
        else [
            base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii") for v in answer.vectors
        ]
    )
    value = {
        "v": _VALUE_VERSION,
        "k": answer.kind,
        "t": answer.text,
        "f": answer.finish_reason,
        "e": vectors,
        "i": answer.usage_input_tokens,
        "o": answer.usage_output_tokens,
        "d": answer.deployment,
        "m": answer.model,
        "c": answer.created_at,
        "s": personal,
    }
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _decode(raw: bytes) -> tuple[CachedAnswer, bool]:
    """The answer and flag stored by :func:`_encode`; ``ValueError`` for anything else."""
    try:
        value = json.loads(raw)
        if value["v"] != _VALUE_VERSION or value["k"] not in ("chat", "embedding"):
            raise ValueError("unknown cache value version or kind")
        vectors = None
        if value["e"] is not None:
            vectors = []
            for encoded in value["e"]:
                packed = base64.b64decode(encoded, validate=True)
                vectors.append(list(struct.unpack(f"<{len(packed) // 4}f", packed)))
        answer = CachedAnswer(
            kind=value["k"],
            text=value["t"],
            finish_reason=value["f"],
            vectors=vectors,
            usage_input_tokens=int(value["i"]),
            usage_output_tokens=int(value["o"]),
            deployment=str(value["d"]),
            model=str(value["m"]),
            created_at=float(value["c"]),
        )
        return answer, bool(value["s"])
    except (KeyError, TypeError, struct.error) as error:
        raise ValueError(f"malformed cache value: {error}") from error


@dataclass(slots=True)
class _Entry:
    answer: CachedAnswer
    expires_at: float
    """By the clock's monotonic time."""
    tenant_id: str
    personal: bool
    """Stored for or served to a data subject: confirmed against Redis before it is served."""
    subjects: set[str] = field(default_factory=set)
    """The subjects this process indexed it under."""


class _RedisHealth:
    """Whether to use Redis now, and logging that says so once per burst of failures."""

    def __init__(self, clock: Clock, retry_after_s: float, report_every_s: float) -> None:
        self._clock = clock
        self._retry_after = retry_after_s
        self._report_every = report_every_s
        self._retry_at: float | None = None
        self._reported_at = 0.0
        self._since_report = 0

    def usable(self) -> bool:
        """False while a recent failure says to leave Redis alone; then one call probes it."""
        if self._retry_at is None:
            return True
        now = self._clock.monotonic()
        if now < self._retry_at:
            self._since_report += 1
            return False
        self._retry_at = now + self._retry_after
        return True

    def failed(self, error: BaseException) -> None:
        now = self._clock.monotonic()
        first = self._retry_at is None
        self._retry_at = now + self._retry_after
        self._since_report += 1
        if first:
            log.warning("response cache: Redis unavailable (%r); using memory only", error)
            self._reported_at, self._since_report = now, 0
        elif now - self._reported_at >= self._report_every:
            log.warning(
                "response cache: Redis still unavailable (%r); %d operations skipped since last "
                "report",
                error,
                self._since_report,
            )
            self._reported_at, self._since_report = now, 0

    def succeeded(self) -> None:
        if self._retry_at is not None:
            log.info("response cache: Redis available again")
            self._retry_at, self._since_report = None, 0


class ResponseCache:
    """Answers of earlier calls, by :class:`CacheKey`: in this process, then in Redis."""

    def __init__(
        self,
        *,
        clock: Clock,
        metrics: Metrics,
        redis: Redis | None,
        ttl_s: float,
        max_entries: int,
        max_entry_bytes: int,
        prefix: str = "ombud:llmcache",
        redis_timeout_s: float = 0.5,
        retry_after_s: float = 5.0,
        report_every_s: float = 60.0,
    ) -> None:
        """Build the cache.

        Args:
            clock: Monotonic time expires memory entries and paces Redis retries; wall time
                stamps entries and scores the Redis indexes.
            metrics: ``llm_cache{tier,result}`` counts every lookup, store, bypass and error.
            redis: The second tier, shared by every replica; ``None``: memory only.
            ttl_s: How long an entry lives, in both tiers.
            max_entries: The memory tier's size; 0 turns it off.
            max_entry_bytes: Larger answers (encoded) are not stored at all.
            prefix: Leads every Redis key of the cache.
            redis_timeout_s: Longest a lookup or store waits for Redis; then it counts as failed.
            retry_after_s: How long Redis is left alone after it failed.
            report_every_s: At most one log line this often while Redis stays down.
        """
        self._clock = clock
        self._redis = redis
        self._ttl = ttl_s
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._max_entries = max_entries
        self._max_entry_bytes = max_entry_bytes
        self._prefix = prefix
        self._timeout = redis_timeout_s
        self._health = _RedisHealth(clock, retry_after_s, report_every_s)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_subject: dict[str, set[str]] = {}
        self._by_tenant: dict[str, set[str]] = {}
        counter = metrics.llm_cache
        self._memory_hit = counter.labels("memory", "hit")
        self._memory_miss = counter.labels("memory", "miss")
        self._memory_store = counter.labels("memory", "store")
        self._bypass = counter.labels("memory", "bypass")
        self._redis_hit = counter.labels("redis", "hit")
        self._redis_miss = counter.labels("redis", "miss")
        self._redis_store = counter.labels("redis", "store")
        self._redis_error = counter.labels("redis", "error")

    # Keys -----------------------------------------------------------------------------------

    def _entry_key(self, key: CacheKey) -> str:
        return f"{self._prefix}:{key.tenant_id}:{key.digest}"

    def _subject_index(self, subject: str) -> str:
        return f"{self._prefix}:subject:{subject}"

    def _tenant_index(self, tenant_id: str) -> str:
        return f"{self._prefix}:tenant:{tenant_id}"

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    # Public API -----------------------------------------------------------------------------

    def bypass(self) -> None:
        """Count a call whose client opted out of the cache (see :func:`cache_directive`)."""
        self._bypass.inc()

    async def get(self, key: CacheKey) -> tuple[CachedAnswer, Tier] | None:
        """The cached answer for ``key`` and the tier that held it, or ``None``. Never raises."""
        name = self._entry_key(key)
        entry = self._memory_get(name)
        if entry is not None:
            if await self._confirmed(name, entry, key.subject):
                self._index_memory(name, entry, key.subject)
                self._memory_hit.inc()
                return entry.answer, "memory"
            self._memory_remove(name)
            self._memory_miss.inc()
            self._redis_miss.inc()
            return None
        if self._max_entries > 0:
            self._memory_miss.inc()
        return await self._redis_get(name, key)

    async def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        """Store ``answer`` in both tiers, unless it is larger than ``max_entry_bytes``.

        Never raises: a Redis failure leaves the answer in memory only.
        """
        payload = _encode(answer, key.subject is not None)
        if len(payload) > self._max_entry_bytes:
            log.debug("response cache: answer of %d bytes not stored", len(payload))
            return
        name = self._entry_key(key)
        if self._max_entries > 0:
            self._memory_put(name, key, answer, self._ttl, personal=key.subject is not None)
            self._memory_store.inc()
        if self._redis is None:
            return
        if not self._health.usable():
            self._redis_error.inc()
            return
        now_ms = self._now_ms()
        expires_ms = now_ms + self._ttl_ms
        try:
            async with asyncio.timeout(self._timeout):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.set(name, payload, px=self._ttl_ms)
                    self._queue_index(pipe, self._tenant_index(key.tenant_id), name, expires_ms)
                    pipe.zremrangebyscore(
                        self._tenant_index(key.tenant_id), "-inf", now_ms - self._ttl_ms
                    )
                    if key.subject is not None:
                        index = self._subject_index(key.subject)
                        self._queue_index(pipe, index, name, expires_ms)
                        pipe.zremrangebyscore(index, "-inf", now_ms - self._ttl_ms)
                    await pipe.execute()
        except _REDIS_ERRORS as error:
            self._health.failed(error)
            self._redis_error.inc()
            return
        self._health.succeeded()
        self._redis_store.inc()

    async def forget_subject(self, subject: str) -> int:
        """Erase every entry stored for or served to ``subject``, in both tiers.

        Returns:
            How many distinct entries were removed (an entry in both tiers counts once).

        Raises:
            CacheUnavailable: Redis failed; the memory tier is already cleared, Redis may not be.
        """
        removed = self._memory_forget(self._by_subject.pop(subject, set()))
        removed |= await self._redis_forget(self._subject_index(subject))
        return len(removed)

    async def forget_tenant(self, tenant_id: str) -> int:
        """Remove every entry of ``tenant_id``, in both tiers; as :meth:`forget_subject`."""
        removed = self._memory_forget(self._by_tenant.pop(tenant_id, set()))
        removed |= await self._redis_forget(self._tenant_index(tenant_id))
        return len(removed)

    # Memory tier ----------------------------------------------------------------------------

    def _memory_get(self, name: str) -> _Entry | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        if entry.expires_at <= self._clock.monotonic():
            self._memory_remove(name)
            return None
        self._entries.move_to_end(name)
        return entry

    def _memory_put(
        self, name: str, key: CacheKey, answer: CachedAnswer, ttl_s: float, *, personal: bool
    ) -> None:
        """Insert as most recently used, evicting the least recently used beyond the bound."""
        self._memory_remove(name)
        entry = _Entry(answer, self._clock.monotonic() + ttl_s, key.tenant_id, personal)
        self._entries[name] = entry
        self._by_tenant.setdefault(key.tenant_id, set()).add(name)
        self._index_memory(name, entry, key.subject)
        while len(self._entries) > self._max_entries:
            self._memory_remove(next(iter(self._entries)))

    def _index_memory(self, name: str, entry: _Entry, subject: str | None) -> None:
        if subject is not None and subject not in entry.subjects:
            entry.subjects.add(subject)
            entry.personal = True
            self._by_subject.setdefault(subject, set()).add(name)

    def _memory_remove(self, name: str) -> bool:
        entry = self._entries.pop(name, None)
        if entry is None:
            return False
        _discard(self._by_tenant, entry.tenant_id, name)
        for subject in entry.subjects:
            _discard(self._by_subject, subject, name)
        return True

    def _memory_forget(self, names: Iterable[str]) -> set[str]:
        now = self._clock.monotonic()
        removed: set[str] = set()
        for name in list(names):
            entry = self._entries.get(name)
            if entry is not None and self._memory_remove(name) and entry.expires_at > now:
                removed.add(name)
        return removed

    # Redis tier -----------------------------------------------------------------------------

    def _queue_index(self, pipe: Any, index: str, name: str, expires_ms: int) -> None:
        """Add ``name`` to an index scored by its expiry; the index outlives what it lists."""
        pipe.zadd(index, {name: expires_ms})
        pipe.pexpire(index, self._ttl_ms)

    async def _confirmed(self, name: str, entry: _Entry, subject: str | None) -> bool:
        """Whether a memory entry may be served: one stored for or served to a data subject must
        still exist in Redis (an erasure by another replica removed it there). Also indexes the
        entry under a subject it is served to for the first time."""
        new_subject = subject is not None and subject not in entry.subjects
        if self._redis is None or not (entry.personal or new_subject):
            return True
        if not self._health.usable():
            self._redis_error.inc()
            return True
        try:
            async with asyncio.timeout(self._timeout):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.exists(name)
                    if subject is not None and new_subject:
                        expires_ms = self._now_ms() + self._ttl_ms
                        self._queue_index(pipe, self._subject_index(subject), name, expires_ms)
                    replies = await pipe.execute()
        except _REDIS_ERRORS as error:
            self._health.failed(error)
            self._redis_error.inc()
            return True
        self._health.succeeded()
        return bool(replies[0])

    async def _redis_get(self, name: str, key: CacheKey) -> tuple[CachedAnswer, Tier] | None:
        if self._redis is None:
            return None
        if not self._health.usable():
            self._redis_error.inc()
            return None
        try:
            async with asyncio.timeout(self._timeout):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.get(name)
                    pipe.pttl(name)
                    if key.subject is not None:
                        # Served to this subject: erasing it must remove the entry too. On a miss
                        # the member is harmless (the put that usually follows adds it anyway).
                        expires_ms = self._now_ms() + self._ttl_ms
                        self._queue_index(pipe, self._subject_index(key.subject), name, expires_ms)
                    replies = await pipe.execute()
        except _REDIS_ERRORS as error:
            self._health.failed(error)
            self._redis_error.inc()
            return None
        self._health.succeeded()
        raw, pttl = replies[0], replies[1]
        if raw is None:
            self._redis_miss.inc()
            return None
        try:
            answer, personal = _decode(raw)
        except ValueError as error:
            log.warning("response cache: unreadable entry %s dropped (%s)", name, error)
            self._redis_error.inc()
            return None
        self._redis_hit.inc()
        if self._max_entries > 0:
            # The promoted copy expires with the Redis entry, not a full TTL later.
            remaining = self._ttl if pttl is None or pttl < 0 else min(pttl / 1000, self._ttl)
            self._memory_put(name, key, answer, remaining, personal=personal)
        return answer, "redis"

    async def _redis_forget(self, index: str) -> set[str]:
        """Delete every entry an index lists, then the index. Members added meanwhile (a
        concurrent store) are picked up by the next round, so none is left behind."""
        if self._redis is None:
            return set()
        removed: set[str] = set()
        try:
            while True:
                listed = await self._redis.zrange(index, 0, _FORGET_BATCH - 1)
                members = [m.decode() if isinstance(m, bytes) else str(m) for m in listed]
                if not members:
                    break
                async with self._redis.pipeline(transaction=True) as pipe:
                    for member in members:
                        pipe.delete(member)
                    pipe.zrem(index, *members)
                    replies = await pipe.execute()
                for member, deleted in zip(members, replies, strict=False):
                    if deleted:
                        removed.add(member)
        except (RedisError, OSError) as error:
            self._health.failed(error)
            self._redis_error.inc()
            raise CacheUnavailable(f"response cache erasure incomplete: {error!r}") from error
        self._health.succeeded()
        return removed


def _discard(index: dict[str, set[str]], owner: str, name: str) -> None:
    names = index.get(owner)
    if names is not None:
        names.discard(name)
        if not names:
            del index[owner]
