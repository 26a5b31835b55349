"""The online store: each entity's latest materialized features, for reads at serving time.

One port, :class:`OnlineStore`, two adapters:

- :class:`RedisOnlineStore`: one hash per (tenant, view id, entity) under
  ``ombud:features:<tenant>:<view id>:<entity>``; each feature a field holding its value as
  JSON, plus ``_event_ts`` and ``_materialized_at`` (feature names start with a letter, so the
  two cannot collide with one). A write replaces the whole hash in one transaction; reads of
  many entities go in one pipelined round trip.
- :class:`DatabaseOnlineStore`: the ``online_features`` table of the app's own database
  (SQLite or PostgreSQL), for the one-process default without Redis.

Both only store what materialization computed. Whether a value is still fresh is decided when
it is served (:func:`serve`), from ``materialized_at`` and the view's ``ttl_s``, with the
caller's clock: a stored value never expires by itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.features.definitions import FeatureView
from ombud.features.tables import OnlineFeatureRow

KEY_PREFIX = "ombud:features:"
_EVENT_TS = "_event_ts"
_MATERIALIZED_AT = "_materialized_at"
_WRITE_CHUNK = 500
"""Rows per upsert statement (SQLite binds at most 32,766 parameters in one)."""


@dataclass(frozen=True, slots=True)
class OnlineRecord:
    """One entity's materialized features, as stored.

    Attributes:
        values: Each feature's value as of ``materialized_at`` (JSON-compatible).
        event_ts: The time of the latest event they were computed from; ``None``: none yet.
        materialized_at: When they were computed.
    """

    values: dict[str, Any]
    event_ts: datetime | None
    materialized_at: datetime


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """One entity's features as served.

    Attributes:
        entity_id: The entity asked for.
        values: Every feature of the view; all ``None`` when nothing was materialized for the
            entity (``found`` false) or the values are older than the view's ``ttl_s``
            (``stale`` true).
        event_ts: The time of the latest event behind the values.
        materialized_at: When the values were computed.
        stale: Values existed but were too old to serve.
        found: Anything was materialized for the entity.
    """

    entity_id: str
    values: dict[str, Any]
    event_ts: datetime | None
    materialized_at: datetime | None
    stale: bool
    found: bool


def serve(
    view: FeatureView, entity_id: str, record: OnlineRecord | None, now: datetime
) -> FeatureRow:
    """``record`` as served at ``now``: missing or older than ``view.ttl_s`` reads as nulls."""
    empty = dict.fromkeys((f.name for f in view.features), None)
    if record is None:
        return FeatureRow(entity_id, empty, None, None, stale=False, found=False)
    stale = now - record.materialized_at > timedelta(seconds=view.ttl_s)
    values = empty if stale else {name: record.values.get(name) for name in empty}
    return FeatureRow(
        entity_id, values, record.event_ts, record.materialized_at, stale=stale, found=True
    )


class OnlineStore(Protocol):
    """Where materialized features are written and read, per tenant and view."""

    name: str
    """``redis`` or ``database``: for logs and the benchmark."""

    async def write(
        self, tenant_id: str, view_id: str, records: Mapping[str, OnlineRecord]
    ) -> None:
        """Replace the stored features of each entity in ``records``."""
        ...

    async def read(
        self, tenant_id: str, view_id: str, entity_ids: Sequence[str]
    ) -> dict[str, OnlineRecord]:
        """The stored features of those of ``entity_ids`` that have any."""
        ...

    async def delete(self, tenant_id: str, entity_ids: Sequence[str]) -> int:
        """Remove every view's stored features of ``entity_ids`` (an erasure); how many
        (view, entity) records went. Deleting what is not there is not an error."""
        ...


def redis_key(tenant_id: str, view_id: str, entity_id: str) -> str:
    """The hash of one entity's features. The tenant is quoted, so no tenant's keys can
    spell another's; the view id has no ``:`` and the entity comes last."""
    return f"{KEY_PREFIX}{quote(tenant_id, safe='')}:{view_id}:{entity_id}"


class RedisOnlineStore:
    """The online store in Redis: one hash per entity (see the module docstring)."""

    name = "redis"

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def write(
        self, tenant_id: str, view_id: str, records: Mapping[str, OnlineRecord]
    ) -> None:
        if not records:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            for entity_id, record in records.items():
                key = redis_key(tenant_id, view_id, entity_id)
                pipe.delete(key)
                pipe.hset(key, mapping=_to_hash(record))
            await pipe.execute()

    async def read(
        self, tenant_id: str, view_id: str, entity_ids: Sequence[str]
    ) -> dict[str, OnlineRecord]:
        unique = list(dict.fromkeys(entity_ids))
        if not unique:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for entity_id in unique:
                pipe.hgetall(redis_key(tenant_id, view_id, entity_id))
            answers: list[dict[bytes, bytes]] = await pipe.execute()
        return {
            entity_id: _from_hash(answer)
            for entity_id, answer in zip(unique, answers, strict=True)
            if answer
        }

    async def delete(self, tenant_id: str, entity_ids: Sequence[str]) -> int:
        # The keys of every view are found by SCAN (the views of the moment may not be those
        # the entity was ever written under); one entity is matched by Redis itself.
        wanted = set(entity_ids)
        if not wanted:
            return 0
        tenant = f"{KEY_PREFIX}{quote(tenant_id, safe='')}:"
        only = next(iter(wanted)) if len(wanted) == 1 else None
        pattern = f"{_glob(tenant)}*" + ("" if only is None else f":{_glob(only)}")
        keys = [
            key
            async for key in self._redis.scan_iter(match=pattern, count=1000)
            if _entity_of(key, len(tenant)) in wanted
        ]
        removed = 0
        for start in range(0, len(keys), _WRITE_CHUNK):
            removed += int(await self._redis.delete(*keys[start : start + _WRITE_CHUNK]))
        return removed


def _glob(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\^" else c for c in text)


def _entity_of(key: bytes | str, tenant_length: int) -> str:
    """The entity of a key of :func:`redis_key` whose tenant part is ``tenant_length`` long
    (the view id has no ``:``; the entity, last, may have some)."""
    text = key.decode() if isinstance(key, bytes) else key
    _view, _, entity = text[tenant_length:].partition(":")
    return entity


def _to_hash(record: OnlineRecord) -> dict[FieldT, EncodableT]:
    fields: dict[FieldT, EncodableT] = {n: json.dumps(v) for n, v in record.values.items()}
    fields[_EVENT_TS] = "" if record.event_ts is None else record.event_ts.isoformat()
    fields[_MATERIALIZED_AT] = record.materialized_at.isoformat()
    return fields


def _from_hash(answer: Mapping[bytes, bytes]) -> OnlineRecord:
    fields = {k.decode(): v.decode() for k, v in answer.items()}
    event_ts = fields.pop(_EVENT_TS, "")
    materialized_at = datetime.fromisoformat(fields.pop(_MATERIALIZED_AT))
    return OnlineRecord(
        values={name: json.loads(value) for name, value in fields.items()},
        event_ts=datetime.fromisoformat(event_ts) if event_ts else None,
        materialized_at=materialized_at,
    )


class DatabaseOnlineStore:
    """The online store in the ``online_features`` table; each call is its own short
    transaction, so a read never waits on a caller's unit of work."""

    name = "database"

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def write(
        self, tenant_id: str, view_id: str, records: Mapping[str, OnlineRecord]
    ) -> None:
        rows = [
            {"tenant_id": tenant_id, "view_id": view_id, "entity_id": entity_id,
             "feature_values": r.values, "event_ts": r.event_ts,
             "materialized_at": r.materialized_at}
            for entity_id, r in records.items()
        ]  # fmt: skip
        if not rows:
            return
        async with self._sessions.begin() as session:
            for start in range(0, len(rows), _WRITE_CHUNK):
                await session.execute(_upsert(session, rows[start : start + _WRITE_CHUNK]))

    async def read(
        self, tenant_id: str, view_id: str, entity_ids: Sequence[str]
    ) -> dict[str, OnlineRecord]:
        unique = list(dict.fromkeys(entity_ids))
        if not unique:
            return {}
        o = OnlineFeatureRow
        stmt = select(o.entity_id, o.feature_values, o.event_ts, o.materialized_at).where(
            o.tenant_id == tenant_id, o.view_id == view_id, o.entity_id.in_(unique)
        )
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
        return {
            entity_id: OnlineRecord(dict(values), event_ts, materialized_at)
            for entity_id, values, event_ts, materialized_at in rows
        }

    async def delete(self, tenant_id: str, entity_ids: Sequence[str]) -> int:
        unique = list(dict.fromkeys(entity_ids))
        o = OnlineFeatureRow
        removed = 0
        async with self._sessions.begin() as session:
            for start in range(0, len(unique), _WRITE_CHUNK):
                chunk = unique[start : start + _WRITE_CHUNK]
                result = await session.execute(
                    delete(o).where(o.tenant_id == tenant_id, o.entity_id.in_(chunk))
                )
                removed += int(getattr(result, "rowcount", 0) or 0)
        return removed


def _upsert(session: AsyncSession, rows: list[dict[str, Any]]) -> postgresql.Insert | sqlite.Insert:
    # ``ON CONFLICT DO UPDATE`` is spelt the same on both backends, but lives in each
    # dialect's own ``insert``.
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = (postgresql.insert if postgres else sqlite.insert)(OnlineFeatureRow).values(rows)
    return insert.on_conflict_do_update(
        index_elements=["tenant_id", "view_id", "entity_id"],
        set_={
            "feature_values": insert.excluded.feature_values,
            "event_ts": insert.excluded.event_ts,
            "materialized_at": insert.excluded.materialized_at,
        },
    )
