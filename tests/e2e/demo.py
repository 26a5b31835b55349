"""Running ``ombud demo`` as a user does, for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

OMBUD = [sys.executable, "-m", "ombud"]


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The process environment without any ``OMBUD_`` setting of the caller's, and the demo's
    database, artifacts and keyring under ``tmp_path``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
    environment["OMBUD_DATABASE__URL"] = f"sqlite:///{tmp_path / 'ombud.db'}"
    environment["OMBUD_SERVING__ARTIFACT_DIR"] = str(tmp_path / "artifacts")
    environment["OMBUD_CRYPTO__KEYRING_PATH"] = str(tmp_path / "keyring.json")
    return environment


@contextmanager
def running_demo(env: dict[str, str], *, curls: int = 1) -> Iterator[list[str]]:
    """``ombud demo --port 0`` serving; yields the banner's lines up to its ``curls``-th curl
    line, and stops the server (SIGINT) on leaving."""
    process = subprocess.Popen(
        [*OMBUD, "demo", "--port", "0"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        seen = 0
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            seen += line.startswith("curl ")
            if seen == curls:
                break
        yield lines
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
