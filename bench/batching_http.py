"""Benchmark: micro-batching over HTTP, batched vs unbatched vs the floor, in one run.

Trains (seconds, fixed seed) a histogram gradient-boosting classifier on synthetic numeric
features, big enough that one single-row ``predict_proba`` costs a millisecond or more, and a
constant ``DummyClassifier`` on the same features. Both are stored with the container's artifact
store (``put``, which also signs where signing is configured) and registered as approved versions
through the registry service, the operator's path, in a fresh SQLite database; an analyst API key
is issued. Then the real server (``ombud serve``) is started in a subprocess on a free loopback
port, with rate limits raised so they never bind, and driven by wrk (one thread, closed loop,
``bench/batching_http.lua``) at each offered concurrency:

(a) ``unbatched``: the model on a server with ``OMBUD_SERVING__BATCHING=false``;
(b) ``batched``: the model on a server with batching on;
(c) ``echo``: the trivial model on the batched server: the same predict path (HTTP, key lookup,
    rate limits, Rego authorization and policy, validation, the inference hop, the prediction
    record and its audit event) with a model that costs nothing.

The floor is min(best echo rows/s, raw in-process rows/s of ``predict_proba`` over batches of
``max_batch_size`` rows): the most the service could answer if the model cost nothing, or if
everything around the model cost nothing. For (a) and (b) the reported point is the highest
throughput among the concurrencies whose p99 stays within 20 ms without errors. wrk runs on the
same machine as the server and takes its share of the cores. Run:

    .venv/bin/python bench/batching_http.py [--seconds 10] [--concurrency 1,4,8,16,32,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "batching_http.lua"
P99_TARGET_MS = 20.0
MODEL = "bench-gbm"
ECHO = "bench-echo"
TENANT = "bench"
OPERATOR = "system"
"""Who registers and approves the benchmark's versions: the operator's bootstrap path."""
SEED = 20261127
BODIES = 256
"""Distinct request bodies wrk cycles through."""
SERVER_START_S = 120.0


@dataclass(frozen=True)
class Point:
    """One wrk run against one target at one offered concurrency."""

    target: str
    concurrency: int
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms_per_row: float

    @property
    def fits(self) -> bool:
        return self.errors == 0 and self.p99_ms <= P99_TARGET_MS


@dataclass(frozen=True)
class Raw:
    """In-process cost of the model alone, through the runtime's own scoring function."""

    single_ms: float
    batch_ms: float
    batch_rows: int

    @property
    def rows_per_s(self) -> float:
        return self.batch_rows / self.batch_ms * 1e3


def parse_args() -> argparse.Namespace:
    from ombud.config import ServingSettings

    defaults = ServingSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per point")
    parser.add_argument("--warmup", type=int, default=2, help="discarded wrk run per target")
    parser.add_argument(
        "--concurrency", type=_int_list, default=[1, 4, 8, 16, 32, 64],
        help="offered concurrencies (wrk connections), comma-separated",
    )  # fmt: skip
    parser.add_argument("--trees", type=int, default=300, help="boosting iterations")
    parser.add_argument("--leaves", type=int, default=63, help="leaves per tree")
    parser.add_argument("--features", type=int, default=20, help="numeric input features")
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size)
    parser.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms)
    parser.add_argument("--inference-threads", type=int, default=defaults.inference_threads)
    return parser.parse_args()


def _int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def _single_omp_thread() -> None:
    """One OpenMP thread per predict, here and in the servers (inherited through the
    environment): the inference pool is the parallelism, and OpenMP's spinning workers would
    otherwise fight it for the cores in both modes. Set before anything loads OpenMP."""
    if os.environ.get("OMP_NUM_THREADS") != "1":
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)


def train(args: argparse.Namespace) -> tuple[Any, Any, npt.NDArray[np.float64]]:
    """The gradient-boosted model, the constant one, and held-out rows to send."""
    from sklearn.datasets import make_classification
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = make_classification(
        n_samples=5000 + BODIES, n_features=args.features,
        n_informative=max(2, args.features * 2 // 3), random_state=SEED,
    )  # fmt: skip
    x_train, y_train, x_send = x[:5000], y[:5000], x[5000:]
    gbm = HistGradientBoostingClassifier(
        max_iter=args.trees, max_leaf_nodes=args.leaves, learning_rate=0.05,
        early_stopping=False, random_state=SEED,
    ).fit(x_train, y_train)  # fmt: skip
    echo = DummyClassifier(strategy="prior").fit(x_train, y_train)
    return gbm, echo, np.round(x_send, 4)


def _names(count: int) -> list[str]:
    return [f"f{i:02d}" for i in range(count)]


def _rows(x: npt.NDArray[np.float64]) -> list[dict[str, Any]]:
    names = _names(x.shape[1])
    return [{name: float(value) for name, value in zip(names, row, strict=True)} for row in x]


def server_env(work: Path, args: argparse.Namespace) -> dict[str, str]:
    """Settings of the seeding and both servers; only ``OMBUD_SERVING__BATCHING`` differs."""
    unbounded = "1000000"
    limits = ("PER_KEY", "PER_TENANT", "PER_IP", "PER_MODEL")
    env = {
        "OMBUD_ENV": "dev",
        "OMBUD_DATABASE__URL": f"sqlite:///{work / 'ombud.db'}",
        "OMBUD_SERVING__ARTIFACT_DIR": str(work / "artifacts"),
        "OMBUD_SERVING__MAX_BATCH_SIZE": str(args.max_batch_size),
        "OMBUD_SERVING__MAX_WAIT_MS": str(args.max_wait_ms),
        "OMBUD_SERVING__INFERENCE_THREADS": str(args.inference_threads),
        "OMBUD_JOBS__EMBEDDED_WORKER": "false",
        # Limits stay in the path but must not bind: the benchmark measures their cost, not them.
        "OMBUD_RATELIMIT__MAX_CONCURRENT_PER_KEY": "100000",
        "OMBUD_GATEWAY__MAX_IN_FLIGHT": "100000",
    }
    for limit in limits:
        env[f"OMBUD_RATELIMIT__{limit}_RATE"] = unbounded
        env[f"OMBUD_RATELIMIT__{limit}_BURST"] = unbounded
    return env


async def _prepare(gbm: Any, echo: Any, n_features: int) -> tuple[str, Any]:
    """Register both models as approved versions and issue a key; return it and the loaded
    gradient-boosted model (verified and deserialized as the server does)."""
    import skops.io

    from ombud.config import Settings
    from ombud.container import Container
    from ombud.identity.repository import IdentityRepository
    from ombud.identity.service import IdentityService
    from ombud.registry.repository import RegistryRepository
    from ombud.registry.schemas import ArtifactFormat, FeatureSpec, ServingConfig, VersionStatus
    from ombud.registry.service import RegistryService
    from ombud.storage import migrate

    specs = [FeatureSpec(name=name, type="number") for name in _names(n_features)]
    container = Container.create(Settings())
    try:
        await migrate.upgrade(container.engine)
        async with container.sessions.begin() as session:
            registry = RegistryService(RegistryRepository(session), container.clock)
            versions = []
            for name, estimator in ((MODEL, gbm), (ECHO, echo)):
                stored = container.artifacts.put(skops.io.dumps(estimator), "skops")
                versions.append(await registry.register_version(
                    model=name, artifact_uri=stored.uri, sha256=stored.sha256,
                    artifact_format=ArtifactFormat.SKOPS, features=specs,
                    serving=ServingConfig(), status=VersionStatus.APPROVED,
                    description=f"micro-batching benchmark model ({type(estimator).__name__})",
                    owner="ombud bench", actor=OPERATOR,
                ))  # fmt: skip
            identity = IdentityService(
                IdentityRepository(session), container.api_key_pepper, container.clock
            )
            key = await identity.create_api_key(
                tenant=TENANT, roles=["analyst"], principal="bench-client", name="bench key"
            )
        return key.token, await container.runtime.get(versions[0])
    finally:
        await container.aclose()


def measure_raw(loaded: Any, rows: list[dict[str, Any]], batch: int, seconds: float) -> Raw:
    """``score_many`` (the runtime's ``predict_proba`` over the matrix it builds), one row and
    ``batch`` rows at a time, in this process."""

    def per_call_ms(chunk: list[dict[str, Any]]) -> float:
        calls = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            loaded.score_many(chunk)
            calls += 1
        return (time.perf_counter() - started) / calls * 1e3

    chunk = [rows[i % len(rows)] for i in range(batch)]
    return Raw(per_call_ms(rows[:1]), per_call_ms(chunk), batch)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(env: dict[str, str], work: Path, label: str) -> Iterator[tuple[str, int]]:
    """``ombud serve`` on a free loopback port; yields its base URL and process id."""
    ombud = Path(sys.executable).parent / "ombud"
    if not ombud.exists():
        sys.exit(f"{ombud} is missing: install the project (make install)")
    out_path, log_path = work / f"{label}.out", work / f"{label}.log"
    with out_path.open("w") as out, log_path.open("w") as log:
        server = subprocess.Popen(
            [str(ombud), "serve", "--host", "127.0.0.1", "--port", "0"],
            env=env, cwd=work, stdout=out, stderr=log,
        )  # fmt: skip
        try:
            yield _listening(server, out_path, log_path), server.pid
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _listening(server: subprocess.Popen[bytes], out: Path, log: Path) -> str:
    """The URL the server prints once its socket is bound (it answers once started)."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+)", out.read_text())
        if match:
            return match.group(1)
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)  # polling a subprocess's output, not timing anything measured
    sys.exit(f"the server did not start within {SERVER_START_S:.0f} s:\n{log.read_text()[-4000:]}")


def probe(url: str, key: str, body: str) -> None:
    """One predict call must answer 200 before load starts: a wrong key, a refused policy or an
    unloadable artifact fails here with its problem detail instead of as wrk's non-2xx count."""
    request = urllib.request.Request(
        url, data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=SERVER_START_S) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        sys.exit(f"{url} answered {exc.code}: {exc.read().decode(errors='replace')}")


def run_wrk(
    url: str, connections: int, seconds: int, env: dict[str, str], pid: int, target: str
) -> Point:
    """One closed-loop wrk run; rows/s counts 2xx answers only."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(LUA), url]
    cpu_before = _cpu_seconds(pid)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    cpu = _cpu_seconds(pid) - cpu_before
    match = re.search(r"RESULT (.*)", done.stdout)
    if done.returncode != 0 or match is None:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    values = {k: float(v) for k, v in (part.split("=") for part in match.group(1).split())}
    errors = int(values["errors"] + values["non2xx"])
    answered = max(values["requests"] - values["non2xx"], 0.0)
    return Point(
        target, connections, answered / values["duration_s"], values["p50_ms"],
        values["p99_ms"], errors, cpu / max(values["requests"], 1.0) * 1e3,
    )  # fmt: skip


def sweep(
    base: str, model: str, label: str, pid: int, wrk_env: dict[str, str],
    args: argparse.Namespace,
) -> list[Point]:  # fmt: skip
    url = f"{base}/v1/models/{model}/predict"
    run_wrk(url, min(4, max(args.concurrency)), args.warmup, wrk_env, pid, label)  # discarded
    points = []
    for connections in args.concurrency:
        point = run_wrk(url, connections, args.seconds, wrk_env, pid, label)
        print(
            f"  {label:9} c={connections:<4} {point.rows_per_s:8,.0f} rows/s  "
            f"p99 {point.p99_ms:7.2f} ms  errors {point.errors}", flush=True,
        )  # fmt: skip
        points.append(point)
    return points


def best(points: list[Point], target: str) -> Point | None:
    """The highest throughput of ``target`` with p99 within the target and no errors."""
    fits = [p for p in points if p.target == target and p.fits]
    return max(fits, key=lambda p: p.rows_per_s, default=None)


def echo_best(points: list[Point]) -> Point:
    """The echo floor: its highest throughput at any concurrency (error-free points first)."""
    echo = [p for p in points if p.target == "echo"]
    clean = [p for p in echo if p.errors == 0] or echo
    return max(clean, key=lambda p: p.rows_per_s)


def report(points: list[Point], raw: Raw, args: argparse.Namespace) -> None:
    print("\n| target | concurrency | rows/s | p50 ms | p99 ms | errors | server CPU ms/row |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for p in points:
        print(
            f"| {p.target} | {p.concurrency} | {p.rows_per_s:,.0f} | {p.p50_ms:.2f} "
            f"| {p.p99_ms:.2f} | {p.errors} | {p.cpu_ms_per_row:.2f} |"
        )
    echo = echo_best(points)
    floor = min(echo.rows_per_s, raw.rows_per_s)
    unbatched, batched = best(points, "unbatched"), best(points, "batched")
    print("\n| measure | concurrency | rows/s | p50 ms | p99 ms | ÷ floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, found in ((f"(a) unbatched, best with p99 ≤ {P99_TARGET_MS:.0f} ms", unbatched),
                        (f"(b) batched, best with p99 ≤ {P99_TARGET_MS:.0f} ms", batched),
                        ("echo (trivial model), best", echo)):  # fmt: skip
        if found is None:
            print(f"| {name} | – | none fits | – | – | – |")
            continue
        print(
            f"| {name} | {found.concurrency} | {found.rows_per_s:,.0f} | {found.p50_ms:.2f} "
            f"| {found.p99_ms:.2f} | {found.rows_per_s / floor:.2f} |"
        )
    print(
        f"| raw in-process, {raw.batch_rows}-row batches | – | {raw.rows_per_s:,.0f} "
        f"| – | – | {raw.rows_per_s / floor:.2f} |"
    )
    print(f"| (c) floor = min(echo, raw) | – | {floor:,.0f} | – | – | 1.00 |")
    print(
        f"\nmodel: {args.trees} trees × {args.leaves} leaves, {args.features} features; "
        f"single-row predict {raw.single_ms:.2f} ms, {raw.batch_rows}-row batch "
        f"{raw.batch_ms:.2f} ms (in-process); {args.seconds} s per point"
    )
    if batched is not None:
        print(f"batched ÷ floor = {batched.rows_per_s / floor:.2f} (target ≥ 0.50)")
    if batched is not None and unbatched is not None:
        ratio = batched.rows_per_s / unbatched.rows_per_s
        print(f"batched ÷ unbatched = {ratio:.2f} (target ≥ 3)")


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    _single_omp_thread()
    with tempfile.TemporaryDirectory(prefix="ombud-batching-http-") as tmp:
        work = Path(tmp)
        env = server_env(work, args)
        # The seeding reads the same settings as the servers, and relative paths (keyrings,
        # development keys) resolve in the same place: the work directory.
        os.environ.update(env)
        os.chdir(work)
        started = time.perf_counter()
        gbm, echo, x_send = train(args)
        print(f"trained {args.trees} trees in {time.perf_counter() - started:.1f} s", flush=True)
        key, loaded = asyncio.run(_prepare(gbm, echo, args.features))
        rows = _rows(x_send)
        raw = measure_raw(loaded, rows, args.max_batch_size, min(args.seconds, 3))
        bodies = work / "bodies.jsonl"
        bodies.write_text("".join(json.dumps({"features": row}) + "\n" for row in rows))
        wrk_env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_API_KEY": key}
        first_body = bodies.read_text().splitlines()[0]
        points: list[Point] = []
        for batching, targets in ((False, ((MODEL, "unbatched"),)),
                                  (True, ((MODEL, "batched"), (ECHO, "echo")))):  # fmt: skip
            label = "batched" if batching else "unbatched"
            server_env_ = {**os.environ, "OMBUD_SERVING__BATCHING": str(batching).lower()}
            with serving(server_env_, work, label) as (base, pid):
                for model, target in targets:
                    probe(f"{base}/v1/models/{model}/predict", key, first_body)
                    points += sweep(base, model, target, pid, wrk_env, args)
        report(points, raw, args)


if __name__ == "__main__":
    main()
