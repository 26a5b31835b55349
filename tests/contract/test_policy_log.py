"""The database decision log on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from sqlalchemy import delete

from ombud.config import DatabaseSettings
from ombud.policy.decision import PolicyDecision, PolicyResult
from ombud.policy.log import DatabaseDecisionLog, PolicyDecisionRepository
from ombud.policy.tables import PolicyDecisionRow
from ombud.storage.database import create_engine, create_sessionmaker

pytestmark = pytest.mark.anyio


async def test_decisions_are_written_and_read_back(database: str) -> None:
    engine = create_engine(DatabaseSettings(url=SecretStr(database)))
    sessions = create_sessionmaker(engine)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    decisions = [
        PolicyDecision(
            id=f"pdc_contract_{n}",
            bundle_version="a" * 64,
            entrypoint="data.ombud.x.decision",
            input_digest="b" * 64,
            latency_us=12.5,
            decided_at=at,
            result=PolicyResult(
                allow=n == 0,
                reasons=("why",),
                review=n == 1,
                review_reason="look",
                obligations={"redact_pii": True},
            ),
        )  # fmt: skip
        for n in range(2)
    ]
    try:
        await DatabaseDecisionLog(sessions).record(decisions)
        async with sessions() as session:
            rows = await PolicyDecisionRepository(session).recent(limit=10)
        mine = sorted((r for r in rows if r.id.startswith("pdc_contract_")), key=lambda r: r.id)
        assert [r.allow for r in mine] == [True, False]
        assert [r.review for r in mine] == [False, True]
        assert mine[1].result["review"] == {"reason": "look"}
        assert mine[0].result["obligations"] == {"redact_pii": True}
        assert mine[0].decided_at == at
    finally:
        async with sessions.begin() as session:
            await session.execute(
                delete(PolicyDecisionRow).where(PolicyDecisionRow.id.like("pdc_contract_%"))
            )
        await engine.dispose()
