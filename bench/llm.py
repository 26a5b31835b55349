"""The LLM chat path, layer by layer: gateway CPU per request and requests/s on one worker.

Starts the fake OpenAI-compatible upstream from ``../shared/bench/fake_upstream.py`` and, for
each variant, one ombud server process (``bench/llm_server.py``) with a different ``llm.chat``
chain, then drives ``POST /v1/chat/completions`` with wrk (the harness's ``post.lua``: a short
prompt, ``max_tokens`` 16) and reads the server's CPU time from ``/proc``. The first row is the
floor: the same request forwarded by a bare route on the same app with the same aiohttp client.

    .venv/bin/python bench/llm.py              # --duration 10 --connections 16

Needs wrk (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench"
PYTHON = sys.executable

BASE = ["authenticate", "llm.parse", "llm.route", "llm.invoke", "llm.record"]
LIMITS = ["rate_limit.ip", "rate_limit", "concurrency", "rate_limit.tokens"]
VARIANTS: list[tuple[str, list[str] | None]] = [
    ("bare proxy (FastAPI + aiohttp, no governance)", None),
    ("+ auth, routing, usage record + audit event", BASE),
    ("+ rate limits (IP, key, tenant, model, tokens), concurrency", LIMITS[:1] + BASE[:2]
     + LIMITS[1:3] + ["context"] + LIMITS[3:] + BASE[2:]),
    ("+ budget hold", LIMITS[:1] + BASE[:2] + LIMITS[1:3] + ["context"] + LIMITS[3:]
     + ["llm.route", "llm.budget", "llm.invoke", "llm.record"]),
    ("+ input and output guards", LIMITS[:1] + BASE[:2] + LIMITS[1:3] + ["context"]
     + LIMITS[3:] + ["guards.input", "llm.route", "llm.budget", "llm.invoke",
                     "guards.output", "llm.record"]),
    ("+ Rego authorization and policy before/after (the default chain)", []),
]  # fmt: skip


@dataclass
class Row:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    errors: int


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def _wrk(url: str, key: str, connections: int, seconds: int, pid: int) -> Row:
    env = {**os.environ, "BENCH_MODEL": "fake-model", "BENCH_AUTH": key}
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
               "-s", str(HARNESS / "post.lua"), url]  # fmt: skip
    cpu_before = _cpu_seconds(pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    cpu = _cpu_seconds(pid) - cpu_before
    match = re.search(r"RESULT (.*)", out)
    if match is None:
        raise RuntimeError(out)
    v = {k: float(x) for k, x in (p.split("=") for p in match.group(1).split())}
    return Row("", v["rps"], v["p50_ms"], v["p99_ms"], cpu / v["requests"] * 1e3,
               int(v["errors"]))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ombud-llm-bench-"))
    key = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "llm_server.py"), "prepare", str(work)],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    up_port = _free_port()
    upstream = subprocess.Popen(
        [PYTHON, str(HARNESS / "fake_upstream.py"), "--port", str(up_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    rows: list[Row] = []
    try:
        for name, chain in VARIANTS:
            rows.append(_variant(name, chain, work, key, up_port, args))
            print(f"{name}: {rows[-1]}", file=sys.stderr)
    finally:
        os.killpg(upstream.pid, signal.SIGTERM)
    _print(rows, args.connections)


def _variant(
    name: str, chain: list[str] | None, work: Path, key: str, up_port: int,
    args: argparse.Namespace,
) -> Row:  # fmt: skip
    port = _free_port()
    command = [PYTHON, str(ROOT / "bench" / "llm_server.py"), "serve", str(work),
               "--port", str(port), "--upstream", f"http://127.0.0.1:{up_port}/v1"]  # fmt: skip
    if chain is None:
        command.append("--bare")
    elif chain:
        command += ["--chain", ",".join(chain)]
    server = subprocess.Popen(command, start_new_session=True)
    try:
        _wait(f"http://127.0.0.1:{port}/healthz")
        path = "/bench/proxy" if chain is None else "/v1/chat/completions"
        url = f"http://127.0.0.1:{port}{path}"
        _wrk(url, key, args.connections, 2, server.pid)  # warm-up, discarded
        row = _wrk(url, key, args.connections, args.duration, server.pid)
        row.name = name
        return row
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _print(rows: list[Row], connections: int) -> None:
    floor = rows[0].cpu_ms
    print(f"\n{connections} connections, one server process, fake upstream without delay\n")
    print("| chain | req/s | p50 ms | p99 ms | gateway CPU ms/req | over the floor | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.cpu_ms:.3f} | "
              f"{r.cpu_ms - floor:+.3f} | {r.errors} |")  # fmt: skip


if __name__ == "__main__":
    main()
