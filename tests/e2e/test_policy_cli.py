"""``ombud policy test`` on the default bundle and on a bundle whose tests fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OMBUD = [sys.executable, "-m", "ombud"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMBUD, "policy", "test", *args], capture_output=True, text=True, timeout=120
    )


def test_the_default_bundle_passes_its_tests() -> None:
    result = _run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS authz_test.rego ombud.authz_test.test_analyst_may_predict" in result.stdout
    assert " 0 failed" in result.stdout


def test_a_failing_rego_test_fails_the_command(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        'package ombud.p\n\nimport rego.v1\n\ndecision := {"allow": input.ok == true}\n\n'
        'decide(inp) := {"allow": inp.ok == true}\n'
    )
    (tmp_path / "p_test.rego").write_text(
        "package ombud.p_test\n\nimport rego.v1\n\nimport data.ombud.p\n\n"
        'test_ok if p.decide({"ok": true}).allow\n\n'
        'test_wrong if p.decide({"ok": false}).allow\n'
    )
    result = _run("--bundle", str(tmp_path))
    assert result.returncode == 1
    assert "PASS p_test.rego ombud.p_test.test_ok" in result.stdout
    assert "FAIL p_test.rego ombud.p_test.test_wrong" in result.stdout


def test_a_malformed_bundle_is_refused_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package ombud.p\nimport rego.v1\n\ndecision := {\n")
    result = _run("--bundle", str(tmp_path))
    assert result.returncode == 1
    assert "bundle refused: p.rego:" in result.stderr
