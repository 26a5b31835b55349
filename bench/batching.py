"""Benchmark: micro-batching on vs off, through the serving runtime, in one run.

Trains (in seconds) a gradient-boosted model on the German credit features whose single-row
inference costs about a millisecond or more, stores it as a verified artifact, and serves it
through :class:`ombud.serving.runtime.ModelRuntime`, the code path ``model.invoke`` uses:
(a) with batching off, every row its own ``predict_proba`` in the thread pool; (b) with batching
on. Load: ``--callers`` concurrent async callers in this process, each scoring one applicant after
another for ``--duration`` seconds (closed loop). Shed rows (503 ``overloaded``) are counted and
left out of the latency percentiles.

The floor is min(echo req/s on the HTTP server of ``bench/server.py`` under wrk, raw in-process
batch rows/s): the most the service could answer if the model cost nothing, or if batching cost
nothing. Run:

    .venv/bin/python bench/batching.py [--duration 10] [--callers 1 4 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from ombud.config import ServingSettings
from ombud.core.errors import Overloaded
from ombud.demo import credit_model
from ombud.demo.credit_model import INPUTS
from ombud.demo.german_credit import INTEGER_FEATURES, load
from ombud.registry.schemas import ArtifactFormat, ModelVersion, VersionStatus
from ombud.serving import runtime as runtime_module
from ombud.serving.artifacts import LocalArtifactStore
from ombud.serving.loader import Classifier
from ombud.serving.runtime import LoadedModel, ModelRuntime

ROOT = Path(__file__).resolve().parent.parent
P99_TARGET_MS = 20.0


@dataclass
class Row:
    mode: str
    callers: int
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    shed: int
    mean_batch: float


def train(trees: int) -> Pipeline:
    """Ordinal-encoded categories into a histogram gradient-boosting classifier."""
    data = load()
    matrix = np.array([[row[name] for name in INPUTS] for row in data.rows], dtype=object)
    categorical = [i for i, name in enumerate(INPUTS) if name not in INTEGER_FEATURES]
    numeric = [i for i, name in enumerate(INPUTS) if name in INTEGER_FEATURES]
    encode = ColumnTransformer([
        ("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
         categorical),
        ("numbers", "passthrough", numeric),
    ])  # fmt: skip
    model = HistGradientBoostingClassifier(
        max_iter=trees, learning_rate=0.1, early_stopping=False, random_state=0,
        categorical_features=list(range(len(categorical))),
    )  # fmt: skip
    pipeline = Pipeline([("encode", encode), ("gbm", model)])
    pipeline.fit(matrix, np.array(data.labels))
    return pipeline


def _per_call_ms(model: LoadedModel, rows: list[dict[str, Any]], seconds: float) -> float:
    calls = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        model.score_many(rows)
        calls += 1
    return (time.perf_counter() - started) / calls * 1e3


async def _load(store: LocalArtifactStore, version: ModelVersion, batching: bool) -> Any:
    settings = ServingSettings(batching=batching)
    runtime = ModelRuntime(store, threads=settings.inference_threads, settings=settings)
    return runtime, await runtime.get(version)


async def _drive(
    runtime: ModelRuntime, model: LoadedModel, applicants: list[dict[str, Any]],
    callers: int, seconds: float,
) -> tuple[list[float], int]:  # fmt: skip
    latencies: list[float] = []
    shed = 0
    deadline = time.perf_counter() + seconds

    async def caller(offset: int) -> None:
        nonlocal shed
        i = offset
        while time.perf_counter() < deadline:
            row = applicants[i % len(applicants)]
            i += callers
            started = time.perf_counter()
            try:
                await runtime.score(model, row)
            except Overloaded:
                shed += 1
                continue
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(caller(n) for n in range(callers)))
    return latencies, shed


def _serve(
    store: LocalArtifactStore, version: ModelVersion, applicants: list[dict[str, Any]],
    batching: bool, callers: int, seconds: float,
) -> Row:  # fmt: skip
    async def run() -> Row:
        runtime, model = await _load(store, version, batching)
        await _drive(runtime, model, applicants, callers, 1.0)  # warm-up, discarded
        batches_before = _batch_calls[0]
        rows_before = _batch_calls[1]
        latencies, shed = await _drive(runtime, model, applicants, callers, seconds)
        await runtime.aclose()
        latencies.sort()
        batches = _batch_calls[0] - batches_before
        return Row(
            "batched" if batching else "unbatched", callers, len(latencies) / seconds,
            statistics.median(latencies) * 1e3, latencies[int(len(latencies) * 0.99)] * 1e3,
            shed, (_batch_calls[1] - rows_before) / max(batches, 1),
        )  # fmt: skip

    return asyncio.run(run())


_batch_calls = [0, 0]
"""predict_proba calls and rows seen, to report the mean batch size."""


class _Counting:
    def __init__(self, inner: Classifier) -> None:
        self._inner = inner

    def predict_proba(self, x: Any) -> Any:
        _batch_calls[0] += 1
        _batch_calls[1] += len(x)
        return self._inner.predict_proba(x)


def _echo_rps(seconds: int, connections: int) -> float:
    """Echo req/s on the same HTTP server as ``bench/predict.py`` (needs wrk)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import predict  # the seeding, wrk script and runner of bench/predict.py

    work = Path(tempfile.mkdtemp(prefix="ombud-bench-"))
    env = {
        "OMBUD_DATABASE__URL": f"sqlite:///{work / 'ombud.db'}",
        "OMBUD_SERVING__ARTIFACT_DIR": str(work / "artifacts"),
        "OMBUD_JOBS__EMBEDDED_WORKER": "false",
    }
    key = asyncio.run(predict._prepare(env))  # noqa: SLF001 - reuse the seeding of predict.py
    script = work / "post.lua"
    script.write_text(predict.LUA.replace("{body}", '{"features": {}}').replace("{key}", key))
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "server.py")], env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/bench/echo"
        predict._wrk(url, script, 4, 2, server.pid)  # noqa: SLF001 - warm-up, discarded
        values, _ = predict._wrk(url, script, connections, seconds, server.pid)  # noqa: SLF001
        return float(values["rps"])
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--trees", type=int, default=30)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the echo floor: apt-get install wrk")
    if os.environ.get("OMP_NUM_THREADS") != "1":
        # One OpenMP thread per predict, in every inference thread (a limit set at run time
        # binds only the thread that sets it): the pool is the parallelism, and OpenMP's
        # spinning workers would otherwise fight it for the cores in both modes.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)

    started = time.perf_counter()
    pipeline = train(args.trees)
    print(f"trained {args.trees} trees in {time.perf_counter() - started:.1f} s")  # noqa: T201
    work = Path(tempfile.mkdtemp(prefix="ombud-batching-"))
    store = LocalArtifactStore(work)
    stored = store.put(credit_model.to_skops(pipeline), "skops")
    version = ModelVersion(
        id="ver_bench", model="credit-gbm", version=1, status=VersionStatus.APPROVED,
        format=ArtifactFormat.SKOPS, artifact_uri=stored.uri, sha256=stored.sha256,
        features=credit_model.feature_specs(), serving=credit_model.serving_config(),
    )  # fmt: skip
    # The artifact is read and sha256-verified as in production; the estimator handed to the
    # runtime is the one just trained, since its tree types are outside the loader's trusted set.
    vars(runtime_module)["load_classifier"] = lambda data, fmt: _Counting(pipeline)

    applicants = [dict(row) for row in load().rows]
    model = asyncio.run(_load(store, version, batching=False))[1]
    single_ms = _per_call_ms(model, applicants[:1], 3.0)
    batch_ms = _per_call_ms(model, applicants[:32], 3.0)
    raw_rows_per_s = 32 / batch_ms * 1e3
    print(f"single-row predict: {single_ms:.2f} ms; 32-row batch: {batch_ms:.2f} ms")  # noqa: T201

    rows: list[Row] = []
    for callers in args.callers:
        for batching in (False, True):
            rows.append(_serve(store, version, applicants, batching, callers, args.duration))
    echo = _echo_rps(args.duration, max(args.callers))
    _print(rows, single_ms, batch_ms, raw_rows_per_s, echo)


def _print(
    rows: list[Row], single_ms: float, batch_ms: float, raw: float, echo: float
) -> None:  # fmt: skip
    floor = min(echo, raw)
    print()  # noqa: T201
    print("| mode | callers | rows/s | p50 ms | p99 ms | shed | mean batch | rows/s ÷ floor |")  # noqa: T201
    print("|---|---:|---:|---:|---:|---:|---:|---:|")  # noqa: T201
    for r in rows:
        print(  # noqa: T201
            f"| {r.mode} | {r.callers} | {r.rows_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.shed} | {r.mean_batch:.1f} | {r.rows_per_s / floor:.2f} |"
        )

    def best(mode: str) -> Row | None:
        fits = [r for r in rows if r.mode == mode and r.p99_ms <= P99_TARGET_MS]
        return max(fits, key=lambda r: r.rows_per_s, default=None)

    unbatched, batched = best("unbatched"), best("batched")
    print()  # noqa: T201
    print(f"single-row predict {single_ms:.2f} ms; 32-row batch {batch_ms:.2f} ms")  # noqa: T201
    print(f"floor = min(echo {echo:,.0f} req/s, raw batch {raw:,.0f} rows/s) = {floor:,.0f}/s")  # noqa: T201
    for name, found in (("unbatched", unbatched), ("batched", batched)):
        what = f"{found.rows_per_s:,.0f} rows/s at {found.callers} callers" if found else "none"
        print(f"best {name} throughput with p99 <= {P99_TARGET_MS:.0f} ms: {what}")  # noqa: T201
    if unbatched and batched:
        print(  # noqa: T201
            f"speed-up {batched.rows_per_s / unbatched.rows_per_s:.1f}x (target >= 3x); "
            f"batched ÷ floor {batched.rows_per_s / floor:.2f} (target >= 0.50)"
        )


if __name__ == "__main__":
    main()
