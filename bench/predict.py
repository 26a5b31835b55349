"""Benchmark: the predict endpoint against the HTTP floor and the bare model, in one run.

Columns, for each target:
- ``echo``: a POST route on the same server returning the body (framework + middleware floor);
- ``predict``: ``POST /v1/models/credit-risk/predict`` through the whole governed chain
  (authenticate, context, authorize, resolve, validate, invoke off-loop, group-committed records);
- ``model in-process``: the loaded model's ``score`` called directly in this process.

Load comes from wrk (closed loop). Server CPU per request is read from /proc. Run:

    .venv/bin/python bench/predict.py [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ombud.config import Settings
from ombud.container import Container
from ombud.demo.example import EXAMPLE_APPLICANT
from ombud.demo.seed import seed_demo
from ombud.gateway.assembly import DEFAULT_CHAINS
from ombud.storage import migrate

ROOT = Path(__file__).resolve().parent.parent
PREDICT = "/v1/models/credit-risk/predict"
LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["X-Ombud-Purpose"] = "credit_scoring"
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000.0, latency:percentile(99) / 1000.0,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


@dataclass
class Row:
    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _prepare(env: dict[str, str]) -> str:
    os.environ.update(env)
    container = Container.create(Settings())
    try:
        await migrate.upgrade(container.engine)
        return (await seed_demo(container)).api_key
    finally:
        await container.aclose()


def _wrk(
    url: str, script: Path, connections: int, seconds: int, pid: int
) -> tuple[dict[str, float], float]:
    cpu_before = _cpu_seconds(pid)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = _cpu_seconds(pid) - cpu_before
    match = re.search(r"RESULT (.*)", out)
    if match is None:
        raise RuntimeError(out)
    values = {k: float(v) for k, v in (p.split("=") for p in match.group(1).split())}
    return values, cpu


def _in_process(env: dict[str, str], seconds: float) -> Row:
    """Time the verified, loaded model's score() alone: no HTTP, no governance."""

    async def load() -> object:
        os.environ.update(env)
        container = Container.create(Settings())
        try:
            from ombud.registry.repository import RegistryRepository
            from ombud.registry.service import RegistryService

            async with container.sessions() as session:
                version = await RegistryService(
                    RegistryRepository(session), container.clock
                ).serving_version("credit-risk")
            return await container.runtime.get(version)
        finally:
            await container.aclose()

    model = asyncio.run(load())
    features = {k: v for k, v in EXAMPLE_APPLICANT.items() if k not in ("sex", "age")}
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    cpu_before = time.process_time()
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        model.score(features)  # type: ignore[attr-defined]
        timings.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu_before
    timings.sort()
    return Row(
        "model in-process", 1, len(timings) / seconds, statistics.median(timings) * 1e3,
        timings[int(len(timings) * 0.99)] * 1e3, cpu / len(timings) * 1e3, 0,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="ombud-bench-"))
    env = {
        "OMBUD_DATABASE__URL": f"sqlite:///{work / 'ombud.db'}",
        "OMBUD_SERVING__ARTIFACT_DIR": str(work / "artifacts"),
        # Limits stay in the path but must not bind: the benchmark measures their cost, not them.
        "OMBUD_RATELIMIT__PER_KEY_RATE": "1000000",
        "OMBUD_RATELIMIT__PER_KEY_BURST": "1000000",
        "OMBUD_RATELIMIT__PER_TENANT_RATE": "1000000",
        "OMBUD_RATELIMIT__PER_TENANT_BURST": "1000000",
        "OMBUD_RATELIMIT__PER_IP_RATE": "1000000",
        "OMBUD_RATELIMIT__PER_IP_BURST": "1000000",
        "OMBUD_RATELIMIT__PER_MODEL_RATE": "1000000",
        "OMBUD_RATELIMIT__PER_MODEL_BURST": "1000000",
        "OMBUD_RATELIMIT__MAX_CONCURRENT_PER_KEY": "100000",
        "OMBUD_JOBS__EMBEDDED_WORKER": "false",
    }
    key = asyncio.run(_prepare(env))
    body = json.dumps({"features": EXAMPLE_APPLICANT})
    script = work / "post.lua"
    script.write_text(LUA.replace("{body}", body).replace("{key}", key))
    no_policy = json.dumps({"model.predict": [s for s in DEFAULT_CHAINS["model.predict"]
                                              if not s.startswith("policy.")]})  # fmt: skip
    variants = [
        ({}, (("/bench/echo", "echo"), (PREDICT, "predict"))),
        ({"OMBUD_GATEWAY__CHAINS": no_policy}, ((PREDICT, "predict, no policy stages"),)),
    ]
    rows: list[Row] = []
    for extra_env, targets in variants:
        rows += _measure({**os.environ, **env, **extra_env}, targets, script, args)
    rows.append(_in_process(env, min(args.duration, 5)))
    _print(rows)


def _measure(
    env: dict[str, str], targets: tuple[tuple[str, str], ...], script: Path,
    args: argparse.Namespace,
) -> list[Row]:  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "server.py")], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    rows: list[Row] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}"
        for path, target in targets:
            _wrk(base + path, script, 4, 2, server.pid)  # warm-up, discarded
            for connections in args.connections:
                values, cpu = _wrk(base + path, script, connections, args.duration, server.pid)
                cpu_ms = cpu / max(values["requests"], 1) * 1e3
                errors = int(values["errors"] + values["non2xx"])
                rows.append(Row(
                    target, connections, values["rps"], values["p50_ms"], values["p99_ms"],
                    cpu_ms, errors,
                ))  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def _print(rows: list[Row]) -> None:
    echo = {r.connections: r for r in rows if r.target == "echo"}
    print(
        "| target | conns | req/s | p50 ms | p99 ms | server CPU ms/req "
        "| req/s ÷ echo | CPU ÷ echo | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        base = echo.get(r.connections) if r.target != "model in-process" else None
        ratio = f"{r.rps / base.rps:.2f}" if base else "–"
        cpu_ratio = f"{r.cpu_ms_per_request / base.cpu_ms_per_request:.2f}" if base else "–"
        print(
            f"| {r.target} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.cpu_ms_per_request:.3f} | {ratio} | {cpu_ratio} | {r.errors} |"
        )


if __name__ == "__main__":
    main()
