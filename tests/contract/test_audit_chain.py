"""The audit hash chain on every backend: written by the record writer, verified online and
offline, and tampering in the database or in an export is found and located."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from ombud.audit.chain import ProblemKind, verify_chain
from ombud.audit.checkpoints import CheckpointSigner, public_keys
from ombud.audit.events import AuditEvent, Outcome
from ombud.audit.repository import AuditFilter, AuditRepository
from ombud.audit.tables import AuditEventRow
from ombud.audit.verify import VerifyReport, export_lines, verify_database, verify_export
from ombud.container import Container
from ombud.core.ids import new_id

pytestmark = pytest.mark.anyio


def _event(container: Container, n: int, tenant: str = "t1") -> AuditEvent:
    return AuditEvent(
        event_id=new_id("evt"), occurred_at=container.clock.now(), actor=f"actor-{n % 3}",
        action="model.predict", resource=f"model:m{n}", outcome=Outcome.SUCCESS,
        tenant_id=tenant, request_id=f"req-{n}", subject=f"sub_{n}",
        detail={"n": n, "score": n / 7, "nested": {"b": [1, "x"], "a": None}},
    )  # fmt: skip


async def _write_concurrently(container: Container, count: int) -> None:
    async def one(n: int) -> None:
        await container.records.write([_event(container, n, tenant=f"t{n % 2}")])

    await asyncio.gather(*(one(n) for n in range(count)))


async def _checkpoint(container: Container) -> None:
    signer = CheckpointSigner(container.sessions, container.keys, container.clock)
    async with container.sessions.begin() as session:
        assert await signer.checkpoint(session) is not None


async def _tamper(container: Container, statement: object) -> None:
    async with container.sessions.begin() as session:
        await session.execute(statement)  # type: ignore[call-overload]


async def _export(container: Container, selection: AuditFilter) -> list[str]:
    now = container.clock.now()
    return [line async for line in export_lines(container.sessions, selection, exported_at=now)]


async def test_concurrent_writes_form_one_valid_chain(container: Container) -> None:
    await _write_concurrently(container, 60)
    await container.records.write([_event(container, n) for n in range(60, 70)])
    await _checkpoint(container)
    report = await verify_database(container.sessions)
    assert report.ok, report.problems
    assert (report.events, report.checkpoints) == (70, 1)
    assert report.head is not None
    assert report.head.seq == 70
    async with container.sessions() as session:
        seqs = list(await session.scalars(select(AuditEventRow.seq).order_by(AuditEventRow.seq)))
    assert seqs == list(range(1, 71))


async def test_a_changed_row_is_located(container: Container) -> None:
    await _write_concurrently(container, 10)
    await _checkpoint(container)
    await _tamper(
        container, update(AuditEventRow).where(AuditEventRow.seq == 4).values(actor="mallory")
    )
    report = await verify_database(container.sessions)
    assert not report.ok
    assert (report.problems[0].kind, report.problems[0].seq) == (ProblemKind.CHANGED, 4)
    assert "seq 4 was changed" in report.problems[0].message


async def test_a_deleted_row_is_located(container: Container) -> None:
    await _write_concurrently(container, 10)
    await _tamper(container, delete(AuditEventRow).where(AuditEventRow.seq.in_([5, 6])))
    report = await verify_database(container.sessions)
    assert (report.problems[0].kind, report.problems[0].seq) == (ProblemKind.DELETED, 5)
    assert "between seq 4 and seq 7" in report.problems[0].message


async def test_a_deleted_tail_is_located(container: Container) -> None:
    await _write_concurrently(container, 8)
    await _tamper(container, delete(AuditEventRow).where(AuditEventRow.seq > 6))
    report = await verify_database(container.sessions)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.TRUNCATED, 7)]


async def test_export_verifies_offline_and_an_edit_is_found(
    container: Container, tmp_path: Path
) -> None:
    await _write_concurrently(container, 12)
    await _checkpoint(container)
    await container.records.write([_event(container, 99)])
    lines = await _export(container, AuditFilter())
    assert verify_export(lines).ok
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(lines).replace('"actor": "actor-1"', '"actor": "actor-9"', 1))
    with path.open() as edited:
        report: VerifyReport = verify_export(edited)
    assert report.problems
    assert report.problems[0].kind == ProblemKind.CHANGED
    dropped = [line for line in lines if '"seq": 3,' not in line or '"checkpoint"' in line]
    assert verify_export(dropped).problems[0].kind == ProblemKind.DELETED


async def test_a_tenant_export_hides_other_tenants_yet_verifies(container: Container) -> None:
    await _write_concurrently(container, 10)
    await _checkpoint(container)
    lines = await _export(container, AuditFilter(tenant_id="t1"))
    assert verify_export(lines).ok
    assert not any('"tenant_id": "t0"' in line for line in lines)
    assert sum('"type": "link"' in line for line in lines) >= 4


async def test_the_repository_chain_matches_the_pure_verifier(container: Container) -> None:
    await _write_concurrently(container, 5)
    async with container.sessions() as session:
        repository = AuditRepository(session)
        links = await repository.links(after_seq=0, limit=100)
        head = await repository.head()
    assert verify_chain(links, head=head) == []


async def test_pinned_keys_decide_which_checkpoints_count(container: Container) -> None:
    """A signing key stored beside the chain can be swapped by whoever rewrites the chain; a
    verifier that pins the real key's fingerprint rejects checkpoints signed by any other."""
    await _write_concurrently(container, 5)
    await _checkpoint(container)
    async with container.sessions() as session:
        [key] = await public_keys(session)
    assert (await verify_database(container.sessions, trusted={key.fingerprint})).ok
    impostor = await verify_database(container.sessions, trusted={"0" * 64})
    assert not impostor.ok
    lines = await _export(container, AuditFilter())
    assert verify_export(lines, trusted={key.fingerprint}).ok
    assert not verify_export(lines, trusted={"0" * 64}).ok
