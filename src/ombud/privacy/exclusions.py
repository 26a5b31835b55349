"""The training-exclusion list: entities whose data must never again enter a training set.

An erased subject is added by its erasure (:mod:`ombud.privacy.erasure`), by keyed hash only
(:func:`subject_ref`), so the list itself holds no identifier. Historical retrieval leaves
excluded entities' rows out, and event ingestion refuses new events about them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.privacy.rights_tables import TrainingExclusionRow


def subject_ref(key: bytes, subject_id: str) -> str:
    """The keyed hash an erased subject is known by (HMAC-SHA256, hex)."""
    return hmac.new(key, subject_id.encode(), hashlib.sha256).hexdigest()


class TrainingExclusions:
    """Looks entities up in the exclusion list (the main database).

    Args:
        sessions: The main database.
        key: The privacy lookup key the list's hashes are made with.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], key: bytes) -> None:
        self._sessions = sessions
        self._key = key

    async def excluded(self, tenant_id: str, entity_ids: Iterable[str]) -> frozenset[str]:
        """Those of ``entity_ids`` on the tenant's exclusion list."""
        refs = {subject_ref(self._key, e): e for e in dict.fromkeys(entity_ids)}
        if not refs:
            return frozenset()
        x = TrainingExclusionRow
        found: set[str] = set()
        refs_list = list(refs)
        async with self._sessions() as session:
            for start in range(0, len(refs_list), 500):
                chunk = refs_list[start : start + 500]
                stmt = select(x.entity_ref).where(x.tenant_id == tenant_id, x.entity_ref.in_(chunk))
                found.update(await session.scalars(stmt))
        return frozenset(refs[r] for r in found)
