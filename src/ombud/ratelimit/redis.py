"""The Redis rate-limit store: one limit shared by every replica.

One Lua script applies GCRA to all of a request's keys in a single atomic step: it reads every
TAT, decides, and writes the new TATs only when every key admits the request. It reads the time
from Redis (``TIME``), so replicas whose clocks disagree still share one timeline. Each key
expires when its bucket is full again, so idle keys cost nothing.

The keys of one check must live on one Redis node: a single server, or a primary with replicas.
Redis Cluster would refuse a script whose keys hash to different slots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from ombud.ratelimit.gcra import GcraResult, Outcome
from ombud.ratelimit.store import Check, RateLimitStoreUnavailable

DEFAULT_PREFIX = "ombud:rl:"

# Mirrors ombud.ratelimit.gcra.decide exactly; tests run both over the same sequence.
# KEYS: one per quota. ARGV[1]: cost; ARGV[2]: now in microseconds, or "" for Redis TIME;
# then per key: emission interval (microseconds), burst.
# Returns five integers per key: outcome, TAT (0: full bucket), remaining, reset_after_us and
# retry_after_us (-1: never).
# Numbers are written with %d: Redis would format a Lua number with %.14g and lose digits.
GCRA_SCRIPT = """
local function remaining(limit, tat, now, interval)
  local free = limit - (tat - now)
  if free <= 0 then return 0 end
  local units = math.floor(free / interval)
  if units * interval > free then units = units - 1 end
  return units
end

local cost = tonumber(ARGV[1])
local now
if ARGV[2] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end

local results, tats, admitted = {}, {}, true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i + 1])
  local burst = tonumber(ARGV[2 * i + 2])
  local limit = interval * burst
  local stored = tonumber(redis.call("GET", key) or "0")
  if stored <= now then stored = 0 end
  local tat = math.max(stored, now)
  local outcome, new_tat, retry = 1, tat, 0
  if cost > burst then
    outcome, retry = 2, -1
  else
    local allow_at = tat + cost * interval - limit
    if now < allow_at then
      outcome, retry = 0, allow_at - now
    else
      new_tat = tat + cost * interval
    end
  end
  if outcome ~= 1 then admitted = false end
  tats[i] = new_tat
  local base = 5 * (i - 1)
  results[base + 1] = outcome
  results[base + 2] = (outcome == 1) and new_tat or stored
  results[base + 3] = remaining(limit, new_tat, now, interval)
  results[base + 4] = new_tat - now
  results[base + 5] = retry
end

if admitted then
  for i, key in ipairs(KEYS) do
    local ttl_ms = math.ceil((tats[i] - now) / 1000)
    if ttl_ms < 1 then ttl_ms = 1 end
    redis.call("SET", key, string.format("%d", tats[i]), "PX", string.format("%d", ttl_ms))
  end
end
return results
"""

_FIELDS = 5
_SCRIPT_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()


class RedisRateLimitStore:
    """GCRA over Redis, atomic across a request's keys and shared by every replica."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        """Build the store.

        Args:
            redis: The client; its pool is shared with the rest of the process.
            prefix: Namespace put before every key.
        """
        self._redis = redis
        self._prefix = prefix

    async def apply(
        self, checks: Sequence[Check], cost: int, *, now_us: int | None = None
    ) -> list[GcraResult]:
        """Charge ``cost`` to every key if all admit it, else to none (see ``RateLimitStore``).

        Raises:
            RateLimitStoreUnavailable: Redis could not be reached or answered with an error.
        """
        if cost < 1:
            raise ValueError("cost must be at least 1")
        keys = [self._prefix + key for key, _ in checks]
        args: list[str | int] = [cost, "" if now_us is None else now_us]
        for _, quota in checks:
            args += [quota.interval_us, quota.burst]
        try:
            reply = await self._run(keys, args)
        except (RedisError, OSError) as exc:
            raise RateLimitStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return _parse(reply, checks)

    async def _run(self, keys: list[str], args: list[str | int]) -> list[int]:
        # EVALSHA first: the script is usually cached, so only its hash crosses the network. A
        # restarted or flushed server answers NOSCRIPT, and the script is loaded again once.
        try:
            reply = await self._redis.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            await self._redis.script_load(GCRA_SCRIPT)
            reply = await self._redis.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)
        if not isinstance(reply, list):
            raise RateLimitStoreUnavailable(f"unexpected script reply {reply!r}")
        return [int(value) for value in reply]


def _parse(reply: list[int], checks: Sequence[Check]) -> list[GcraResult]:
    if len(reply) != _FIELDS * len(checks):
        raise RateLimitStoreUnavailable(f"script returned {len(reply)} values")
    results = []
    for i, _ in enumerate(checks):
        outcome, tat, remaining, reset_after, retry = reply[_FIELDS * i : _FIELDS * (i + 1)]
        results.append(
            GcraResult(
                outcome=Outcome(outcome),
                tat_us=tat,
                remaining=remaining,
                reset_after_us=reset_after,
                retry_after_us=None if retry < 0 else retry,
            )
        )
    return results
