"""The job runner's guarantees, on every backend: leases, retries, idempotency, schedules."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.config import JobsSettings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.jobs.catalog import PRUNE, default_registry
from ombud.jobs.queue import DatabaseJobQueue, Job, LeaseLost
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.jobs.repository import JobRepository
from ombud.jobs.schedules import ScheduleSpec, run_key
from ombud.jobs.tables import JobStatus
from ombud.jobs.worker import Worker
from ombud.observability.metrics import Metrics

pytestmark = pytest.mark.anyio

# Far in the future, so nothing running on the real clock in the same process would find these
# jobs due.
START = datetime(2100, 1, 1, tzinfo=UTC)
SETTINGS = JobsSettings(
    lease_s=30, max_attempts=3, backoff_base_s=1, backoff_max_s=4, concurrency=4,
    poll_interval_s=0.01, shutdown_grace_s=0,
)  # fmt: skip


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def queue(container: Container, clock: FrozenClock) -> DatabaseJobQueue:
    return DatabaseJobQueue(container.sessions, clock, SETTINGS)


def make_worker(
    queue: DatabaseJobQueue, registry: JobRegistry, clock: FrozenClock, name: str = "w1"
) -> tuple[Worker, Metrics]:
    metrics = Metrics()
    return Worker(queue, registry, clock, SETTINGS, metrics, name), metrics


def processed(metrics: Metrics, kind: str, outcome: str) -> float:
    labels = {"kind": kind, "outcome": outcome}
    return metrics.registry.get_sample_value("ombud_jobs_processed_total", labels) or 0.0


async def follow_up(context: JobContext) -> None:
    """A database effect in the handler's transaction: a follow-up job that never comes due."""
    await context.enqueue("t.effect", {"of": context.id}, run_at=START + timedelta(days=3650))


async def test_enqueue_claim_complete(queue: DatabaseJobQueue, clock: FrozenClock) -> None:
    later = await queue.enqueue("t.later", run_at=START + timedelta(minutes=5))
    job = await queue.enqueue("t.echo", {"n": 1, "nested": {"ok": True}})
    assert (job.status, job.attempt, job.max_attempts) == (JobStatus.QUEUED, 0, 3)

    [claimed] = await queue.claim("w1", limit=10)
    assert claimed.id == job.id
    assert (claimed.status, claimed.attempt, claimed.lease_owner) == (JobStatus.RUNNING, 1, "w1")
    assert claimed.lease_expires_at == START + timedelta(seconds=SETTINGS.lease_s)
    assert claimed.payload == {"n": 1, "nested": {"ok": True}}
    assert await queue.claim("w2") == []

    clock.advance(2)
    await queue.complete(claimed)
    done = await queue.get(job.id)
    assert done is not None
    assert (done.status, done.finished_at, done.lease_owner) == (
        JobStatus.SUCCEEDED, clock.now(), None,
    )  # fmt: skip

    clock.advance(300)
    assert [j.id for j in await queue.claim("w1")] == [later.id]
    counts = await queue.counts()
    assert (counts[JobStatus.SUCCEEDED], counts[JobStatus.RUNNING]) == (1, 1)


async def test_idempotency_key_returns_the_existing_job(queue: DatabaseJobQueue) -> None:
    first = await queue.enqueue("t.once", {"a": 1}, idempotency_key="order-42")
    again = await queue.enqueue("t.once", {"a": 2}, idempotency_key="order-42")
    assert again.id == first.id
    assert again.payload == {"a": 1}

    ids: list[str] = []

    async def enqueue() -> None:
        ids.append((await queue.enqueue("t.once", idempotency_key="race")).id)

    async with anyio.create_task_group() as group:
        for _ in range(12):
            group.start_soon(enqueue)
    assert len(ids) == 12
    assert len(set(ids)) == 1
    assert (await queue.counts())[JobStatus.QUEUED] == 2


async def test_concurrent_claims_never_share_a_job(
    container: Container, clock: FrozenClock
) -> None:
    queues = [DatabaseJobQueue(container.sessions, clock, SETTINGS) for _ in range(4)]
    enqueued = {(await queues[0].enqueue("t.n", {"i": i})).id for i in range(30)}
    claims: Counter[str] = Counter()

    async def drain(queue: DatabaseJobQueue, name: str) -> None:
        while jobs := await queue.claim(name, limit=3):
            claims.update(job.id for job in jobs)

    async with anyio.create_task_group() as group:
        for n, queue in enumerate(queues):
            group.start_soon(drain, queue, f"w{n}")
    assert set(claims) == enqueued
    assert max(claims.values()) == 1


async def test_a_failing_job_backs_off_then_dies_with_its_error(
    queue: DatabaseJobQueue, clock: FrozenClock
) -> None:
    calls: list[int] = []

    async def flaky(context: JobContext) -> None:
        calls.append(context.attempt)
        raise RuntimeError(f"upstream down (attempt {context.attempt})")

    registry = JobRegistry()
    registry.register("t.flaky", flaky)
    worker, metrics = make_worker(queue, registry, clock)
    job = await queue.enqueue("t.flaky")

    for attempt, ceiling in [(1, 1.0), (2, 2.0)]:
        assert await worker.run_once() == 1
        retried = await queue.get(job.id)
        assert retried is not None
        assert (retried.status, retried.attempt) == (JobStatus.QUEUED, attempt)
        assert retried.last_error == f"RuntimeError: upstream down (attempt {attempt})"
        wait = (retried.run_at - clock.now()).total_seconds()
        assert ceiling / 2 <= wait <= ceiling
        assert await worker.run_once() == 0  # not due yet: nobody sleeps, the clock moves
        clock.advance(ceiling)

    assert await worker.run_once() == 1
    dead = await queue.get(job.id)
    assert dead is not None
    assert (dead.status, dead.attempt, dead.finished_at) == (JobStatus.DEAD, 3, clock.now())
    assert dead.last_error == "RuntimeError: upstream down (attempt 3)"
    assert calls == [1, 2, 3]
    assert processed(metrics, "t.flaky", "retried") == 2
    assert processed(metrics, "t.flaky", "dead") == 1
    depth = metrics.registry.get_sample_value("ombud_job_queue_depth", {"status": "dead"})
    assert depth == 1


async def test_unknown_kind_fails_clearly(queue: DatabaseJobQueue, clock: FrozenClock) -> None:
    worker, _ = make_worker(queue, JobRegistry(), clock)
    job = await queue.enqueue("t.nobody", max_attempts=1)
    assert await worker.run_once() == 1
    dead = await queue.get(job.id)
    assert dead is not None
    assert dead.status == JobStatus.DEAD
    assert "no handler is registered for job kind 't.nobody'" in (dead.last_error or "")


async def test_an_expired_lease_is_taken_over(
    container: Container, queue: DatabaseJobQueue, clock: FrozenClock
) -> None:
    job = await queue.enqueue("t.effect.source")
    [lost] = await queue.claim("crashed-worker")
    clock.advance(SETTINGS.lease_s - 1)
    assert await queue.claim("w2") == []
    clock.advance(2)

    registry = JobRegistry()
    registry.register("t.effect.source", follow_up)
    worker, metrics = make_worker(queue, registry, clock, "w2")
    assert await worker.run_once() == 1
    done = await queue.get(job.id)
    assert done is not None
    assert (done.status, done.attempt) == (JobStatus.SUCCEEDED, 2)
    assert processed(metrics, "t.effect.source", "succeeded") == 1

    # The first worker wakes up late: nothing it does lands.
    assert await queue.heartbeat(lost) is False
    with pytest.raises(LeaseLost):
        await queue.complete(lost, lambda session: follow_up(_context(lost, session, clock)))
    assert await queue.fail(lost, "late") == "lost"
    assert (await queue.counts())[JobStatus.QUEUED] == 1  # one follow-up, from attempt 2


def _context(job: Job, session: AsyncSession, clock: FrozenClock) -> JobContext:
    return JobContext(job, session, clock, SETTINGS.max_attempts)


async def test_a_lease_expired_on_the_last_attempt_is_dead(
    queue: DatabaseJobQueue, clock: FrozenClock
) -> None:
    job = await queue.enqueue("t.crashy", max_attempts=1)
    await queue.claim("crashed-worker")
    clock.advance(SETTINGS.lease_s + 1)
    assert await queue.claim("w2") == []
    dead = await queue.get(job.id)
    assert dead is not None
    assert (dead.status, dead.last_error) == (JobStatus.DEAD, "lease expired on the last attempt")


async def test_heartbeats_keep_a_lease(queue: DatabaseJobQueue, clock: FrozenClock) -> None:
    await queue.enqueue("t.long")
    [job] = await queue.claim("w1")
    for _ in range(3):
        clock.advance(SETTINGS.lease_s - 1)
        assert await queue.heartbeat(job) is True
        assert await queue.claim("w2") == []
    await queue.complete(job)


async def test_effects_commit_with_completion_or_not_at_all(
    queue: DatabaseJobQueue, clock: FrozenClock
) -> None:
    async def write_then_fail(context: JobContext) -> None:
        await follow_up(context)
        raise ValueError("after writing")

    registry = JobRegistry()
    registry.register("t.fails", write_then_fail)
    registry.register("t.works", follow_up)
    worker, _ = make_worker(queue, registry, clock)
    failing = await queue.enqueue("t.fails", max_attempts=1)
    working = await queue.enqueue("t.works")

    assert await worker.run_once() == 2
    counts = await queue.counts()
    assert (counts[JobStatus.DEAD], counts[JobStatus.SUCCEEDED]) == (1, 1)
    assert counts[JobStatus.QUEUED] == 1  # the working job's effect alone
    follow_ups = [j for j in await queue.claim("w9", limit=10) if j.kind == "t.effect"]
    assert follow_ups == []  # not due for years
    assert (await queue.get(failing.id) or failing).last_error == "ValueError: after writing"
    assert (await queue.get(working.id) or working).status == JobStatus.SUCCEEDED


async def test_a_schedule_runs_once_per_due_time_with_two_workers(
    container: Container, clock: FrozenClock
) -> None:
    runs: list[str] = []

    async def nightly(context: JobContext) -> None:
        runs.append(context.job.idempotency_key or "")

    registry = JobRegistry()
    registry.register("t.nightly", nightly)
    registry.schedule("t.nightly.at-two", "t.nightly", "0 2 * * *", {"x": 1})
    queues = [DatabaseJobQueue(container.sessions, clock, SETTINGS) for _ in range(2)]
    workers = [make_worker(q, registry, clock, f"w{n}")[0] for n, q in enumerate(queues)]

    async def tick_all() -> None:
        async with anyio.create_task_group() as group:
            for worker in workers:
                group.start_soon(worker.run_once)

    await tick_all()
    assert runs == []
    clock.advance(2 * 3600 + 30)  # 02:00:30
    await tick_all()
    await tick_all()
    clock.advance(86400)
    await tick_all()
    await tick_all()
    first, second = START + timedelta(hours=2), START + timedelta(days=1, hours=2)
    assert sorted(runs) == [run_key("t.nightly.at-two", first), run_key("t.nightly.at-two", second)]


async def test_declaring_a_schedule_is_an_upsert(
    container: Container, queue: DatabaseJobQueue, clock: FrozenClock
) -> None:
    spec = ScheduleSpec("t.s", "t.kind", "0 2 * * *", {"v": 1})
    await queue.declare_schedule(spec)
    clock.advance(3 * 3600)  # past the first run, not ticked yet
    await queue.declare_schedule(ScheduleSpec("t.s", "t.kind", "0 2 * * *", {"v": 2}))
    async with container.sessions() as session:
        row = await JobRepository(session).schedule("t.s")
    assert row is not None
    assert (row.payload, row.next_run_at) == ({"v": 2}, START + timedelta(hours=2))

    await queue.declare_schedule(ScheduleSpec("t.s", "t.kind", "30 4 * * *"))
    async with container.sessions() as session:
        row = await JobRepository(session).schedule("t.s")
    assert row is not None
    assert row.next_run_at == START + timedelta(hours=4, minutes=30)


async def test_prune_deletes_old_finished_jobs(queue: DatabaseJobQueue, clock: FrozenClock) -> None:
    old = await queue.enqueue("t.old")
    [claimed] = await queue.claim("w1")
    await queue.complete(claimed)
    clock.advance(31 * 86400)
    waiting = await queue.enqueue("t.waiting", run_at=clock.now() + timedelta(days=1))
    prune = await queue.enqueue(PRUNE, {"older_than_days": 30})

    worker, _ = make_worker(queue, default_registry(), clock)
    assert await worker.run_once() == 1
    assert await queue.get(old.id) is None
    assert await queue.get(waiting.id) is not None
    assert (await queue.get(prune.id) or prune).status == JobStatus.SUCCEEDED


async def test_a_stopping_worker_hands_running_jobs_back(
    queue: DatabaseJobQueue, clock: FrozenClock
) -> None:
    started = anyio.Event()

    async def slow(context: JobContext) -> None:
        started.set()
        await anyio.sleep(60)

    registry = JobRegistry()
    registry.register("t.slow", slow)
    worker, _ = make_worker(queue, registry, clock)
    job = await queue.enqueue("t.slow")
    stop = anyio.Event()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run, stop)
            await started.wait()
            stop.set()
    released = await queue.get(job.id)
    assert released is not None
    assert (released.status, released.attempt, released.lease_owner) == (
        JobStatus.QUEUED, 0, None,
    )  # fmt: skip
