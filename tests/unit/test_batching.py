from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
import pytest

from ombud.config import ServingSettings
from ombud.core.clock import FrozenClock
from ombud.core.errors import Overloaded
from ombud.demo import credit_model
from ombud.demo.german_credit import load
from ombud.registry.schemas import ArtifactFormat, FeatureSpec, ModelVersion, VersionStatus
from ombud.serving.artifacts import LocalArtifactStore
from ombud.serving.batching import BatchLimits, MicroBatcher
from ombud.serving.loader import Classifier, load_classifier
from ombud.serving.runtime import ModelRuntime, synthetic_row

pytestmark = pytest.mark.anyio


class Recorder:
    """A blocking ``score_many`` that records its batches; ``gate`` holds it until released."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[float]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.fail = fail

    def __call__(self, rows: list[dict[str, Any]]) -> Sequence[float]:
        self.started.set()
        self.gate.wait(timeout=10)
        self.batches.append([row["x"] for row in rows])
        if self.fail:
            raise ValueError("model exploded")
        return [row["x"] * 2 for row in rows]


def batcher(
    score_many: Recorder, clock: FrozenClock | None = None, threads: int = 1, **limits: Any
) -> MicroBatcher[float]:
    return MicroBatcher(
        score_many, limiter=anyio.CapacityLimiter(threads), clock=clock or FrozenClock(),
        limits=BatchLimits(**limits), name="m v1",
    )  # fmt: skip


async def wait_until_started(recorder: Recorder) -> None:
    await anyio.to_thread.run_sync(recorder.started.wait, 10)
    recorder.started.clear()


async def test_a_full_batch_runs_at_once_without_waiting_for_the_window() -> None:
    recorder = Recorder()
    # With a frozen clock and a 60 s window only a full batch can close the window.
    micro = batcher(recorder, max_batch_size=4, max_wait_ms=60_000)
    with anyio.fail_after(5):
        scores = await asyncio.gather(*(micro.score({"x": float(i)}) for i in range(8)))
    assert scores == [2.0 * i for i in range(8)]
    assert recorder.batches == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    await micro.aclose()


async def test_a_partial_batch_runs_when_the_window_closes() -> None:
    recorder = Recorder()
    micro = batcher(recorder, max_batch_size=32, max_wait_ms=1)
    with anyio.fail_after(5):
        scores = await asyncio.gather(micro.score({"x": 1.0}), micro.score({"x": 2.0}))
    assert list(scores) == [2.0, 4.0]
    assert recorder.batches == [[1.0, 2.0]]
    await micro.aclose()


async def test_rows_queue_while_threads_are_busy_and_each_caller_gets_its_own_score() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    micro = batcher(recorder, max_batch_size=64, max_wait_ms=0)
    with anyio.fail_after(5):
        first = asyncio.create_task(micro.score({"x": -1.0}))
        await wait_until_started(recorder)
        rest = [asyncio.create_task(micro.score({"x": float(i)})) for i in range(50)]
        await asyncio.sleep(0)
        recorder.gate.set()
        assert await first == -2.0
        assert [await task for task in rest] == [2.0 * i for i in range(50)]
    # The 50 rows that arrived while the only thread was busy ran as one batch, in order.
    assert recorder.batches == [[-1.0], [float(i) for i in range(50)]]
    await micro.aclose()


async def test_a_model_error_reaches_every_caller_of_the_batch() -> None:
    micro = batcher(Recorder(fail=True), max_batch_size=3, max_wait_ms=60_000)
    with anyio.fail_after(5):
        results = await asyncio.gather(
            *(micro.score({"x": float(i)}) for i in range(3)), return_exceptions=True
        )
    assert all(isinstance(r, ValueError) and "exploded" in str(r) for r in results)
    await micro.aclose()


async def test_a_cancelled_caller_is_dropped_without_disturbing_the_others() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    micro = batcher(recorder, max_batch_size=64, max_wait_ms=0)
    with anyio.fail_after(5):
        busy = asyncio.create_task(micro.score({"x": 0.0}))
        await wait_until_started(recorder)
        keep = asyncio.create_task(micro.score({"x": 1.0}))
        gone = asyncio.create_task(micro.score({"x": 2.0}))
        also = asyncio.create_task(micro.score({"x": 3.0}))
        await asyncio.sleep(0)
        gone.cancel()
        recorder.gate.set()
        assert (await busy, await keep, await also) == (0.0, 2.0, 6.0)
        with pytest.raises(asyncio.CancelledError):
            await gone
    assert recorder.batches == [[0.0], [1.0, 3.0]]
    # Cancelled while its batch is running: the result is discarded, the batch still answers.
    recorder.gate.clear()
    with anyio.fail_after(5):
        running = asyncio.create_task(micro.score({"x": 4.0}))
        other = asyncio.create_task(micro.score({"x": 5.0}))
        await wait_until_started(recorder)
        running.cancel()
        recorder.gate.set()
        assert await other == 10.0
    await micro.aclose()


async def test_a_backlog_past_the_latency_bound_is_shed_with_a_503() -> None:
    clock = FrozenClock()
    recorder = Recorder()
    recorder.gate.clear()
    micro = batcher(recorder, clock, max_batch_size=2, max_wait_ms=0, max_queue_delay_ms=50)
    with anyio.fail_after(5):
        busy = asyncio.create_task(micro.score({"x": 0.0}))
        await wait_until_started(recorder)
        late = [asyncio.create_task(micro.score({"x": float(i)})) for i in range(1, 4)]
        await asyncio.sleep(0)
        clock.advance(0.051)
        fresh = asyncio.create_task(micro.score({"x": 9.0}))
        await asyncio.sleep(0)
        recorder.gate.set()
        assert await busy == 0.0
        # Four rows queued for batches of two: the oldest late rows go until one batch is left.
        for task in late[:2]:
            with pytest.raises(Overloaded) as refused:
                await task
            assert refused.value.status == 503
            assert refused.value.headers["Retry-After"] == "1"
            assert "past the 50 ms bound" in refused.value.detail
        assert (await late[2], await fresh) == (6.0, 18.0)
    # The shed rows never reached the model.
    assert recorder.batches == [[0.0], [3.0, 9.0]]
    assert micro.shed_rows == 2
    await micro.aclose()


async def test_late_rows_that_fit_in_the_next_batch_still_run() -> None:
    clock = FrozenClock()
    recorder = Recorder()
    recorder.gate.clear()
    micro = batcher(recorder, clock, max_batch_size=8, max_wait_ms=0, max_queue_delay_ms=50)
    with anyio.fail_after(5):
        busy = asyncio.create_task(micro.score({"x": 0.0}))
        await wait_until_started(recorder)
        late = [asyncio.create_task(micro.score({"x": float(i)})) for i in range(1, 4)]
        await asyncio.sleep(0)
        clock.advance(1.0)
        recorder.gate.set()
        assert [await busy] + [await task for task in late] == [0.0, 2.0, 4.0, 6.0]
    assert micro.shed_rows == 0
    await micro.aclose()


async def test_a_full_queue_refuses_new_rows_at_once() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    micro = batcher(recorder, max_batch_size=2, max_wait_ms=0, max_queue_rows=3)
    with anyio.fail_after(5):
        busy = asyncio.create_task(micro.score({"x": 0.0}))
        await wait_until_started(recorder)
        queued = [asyncio.create_task(micro.score({"x": float(i)})) for i in range(1, 4)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="3 rows already queued"):
            await micro.score({"x": 4.0})
        recorder.gate.set()
        assert [await busy] + [await task for task in queued] == [0.0, 2.0, 4.0, 6.0]
    await micro.aclose()


async def test_a_closed_batcher_finishes_its_queue_then_stops() -> None:
    recorder = Recorder()
    micro = batcher(recorder, max_batch_size=32, max_wait_ms=60_000)
    with anyio.fail_after(5):
        pending = asyncio.create_task(micro.score({"x": 1.0}))
        await asyncio.sleep(0)
        await micro.aclose()
        assert await pending == 2.0


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BatchLimits(max_batch_size=0)
    with pytest.raises(ValueError, match="max_queue_delay_ms"):
        BatchLimits(max_queue_delay_ms=0)


# The runtime: one feature matrix per batch, warm-up, and the loaded-model bound.


@pytest.fixture(scope="module")
def demo_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    directory = tmp_path_factory.mktemp("artifacts")
    pipeline, _ = credit_model.train()
    stored = LocalArtifactStore(directory).put(credit_model.to_skops(pipeline), "skops")
    return directory, stored.uri, stored.sha256


def demo_version(uri: str, sha256: str, number: int = 1) -> ModelVersion:
    return ModelVersion(
        id=f"ver_{number}", model="credit-risk", version=number, status=VersionStatus.APPROVED,
        format=ArtifactFormat.SKOPS, artifact_uri=uri, sha256=sha256,
        features=credit_model.feature_specs(), serving=credit_model.serving_config(),
    )  # fmt: skip


def applicants(count: int) -> list[dict[str, Any]]:
    return [dict(row) for row in load().rows[:count]]


async def test_single_row_scores_equal_batch_scores(
    demo_artifact: tuple[Path, str, str],
) -> None:
    directory, uri, sha256 = demo_artifact
    # A generous bound: this test is about which score each caller gets, not about shedding.
    settings = ServingSettings(max_queue_delay_ms=60_000)
    runtime = ModelRuntime(LocalArtifactStore(directory), threads=2, settings=settings)
    model = await runtime.get(demo_version(uri, sha256))
    rows = applicants(100)
    batched = model.score_many(rows)
    # Equal up to rounding in the last bits (a vectorized call may sum in another order).
    assert batched == pytest.approx([model.score(row) for row in rows], rel=0, abs=1e-12)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in batched)
    # Through the runtime, concurrently: each caller's score is its own row's.
    with anyio.fail_after(10):
        served = await asyncio.gather(*(runtime.score(model, row) for row in rows))
    assert served == pytest.approx(batched, rel=0, abs=1e-12)
    batcher = runtime.batcher(model.version)
    assert batcher is not None
    await runtime.aclose()


async def test_batching_off_scores_directly(demo_artifact: tuple[Path, str, str]) -> None:
    directory, uri, sha256 = demo_artifact
    settings = ServingSettings(batching=False)
    runtime = ModelRuntime(LocalArtifactStore(directory), threads=2, settings=settings)
    model = await runtime.get(demo_version(uri, sha256))
    assert runtime.batcher(model.version) is None
    rows = applicants(5)
    assert [await runtime.score(model, row) for row in rows] == model.score_many(rows)


async def test_least_recently_used_versions_are_unloaded_and_their_batchers_closed(
    demo_artifact: tuple[Path, str, str],
) -> None:
    directory, uri, sha256 = demo_artifact
    settings = ServingSettings(max_loaded_models=2)
    runtime = ModelRuntime(LocalArtifactStore(directory), threads=2, settings=settings)
    one, two, three = (demo_version(uri, sha256, n) for n in (1, 2, 3))
    first = await runtime.get(one)
    first_batcher = runtime.batcher(one)
    await runtime.get(two)
    await runtime.get(one)  # used again: now two is the least recently used
    await runtime.get(three)
    assert [v.version for v in runtime.loaded] == [1, 3]
    assert runtime.batcher(two) is None
    await runtime.get(two)
    assert [v.version for v in runtime.loaded] == [3, 2]
    assert first_batcher is not None
    assert first_batcher.closed
    # A caller still holding an unloaded model is served, unbatched.
    row = applicants(1)[0]
    assert await runtime.score(first, row) == first.score(row)
    await runtime.aclose()


def test_warm_up_rows_follow_the_schema() -> None:
    specs = [
        FeatureSpec(name="colour", type="category", categories=["blue", "red"]),
        FeatureSpec(name="amount", type="integer", minimum=0, maximum=101),
        FeatureSpec(name="ratio", type="number", minimum=1.0),
        FeatureSpec(name="flag", type="boolean"),
    ]
    assert synthetic_row(specs) == {"colour": "blue", "amount": 50, "ratio": 1.5, "flag": False}


async def test_a_model_is_warmed_up_on_load(
    demo_artifact: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, uri, sha256 = demo_artifact
    calls: list[int] = []

    class Counting:
        def __init__(self, inner: Classifier) -> None:
            self.inner = inner

        def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
            calls.append(len(x))
            return self.inner.predict_proba(x)

    def counting_loader(
        data: bytes, artifact_format: ArtifactFormat, names: Sequence[str] = ()
    ) -> Classifier:
        return Counting(load_classifier(data, artifact_format, names))

    monkeypatch.setattr("ombud.serving.runtime.load_classifier", counting_loader)
    runtime = ModelRuntime(LocalArtifactStore(directory), threads=1)
    model = await runtime.get(demo_version(uri, sha256))
    assert calls == [1]  # one synthetic row, scored while loading
    await runtime.get(model.version)
    assert calls == [1]
    await runtime.aclose()
