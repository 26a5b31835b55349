"""The policy engine: bundles, versions, refusal of broken bundles, hot reload, fail-closed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ombud.core.clock import FrozenClock
from ombud.policy import JsonValue
from ombud.policy.bundle import CompiledBundle, load_bundle
from ombud.policy.decision import canonical_json
from ombud.policy.engine import PolicyEngine
from ombud.policy.errors import BundleError
from ombud.policy.log import InMemoryDecisionLog

pytestmark = pytest.mark.anyio

EP = "data.ombud.t.decision"


def _policy(allow: str = "input.ok == true", extra: str = "") -> str:
    return (
        "package ombud.t\n\nimport rego.v1\n\n"
        'default decision := {"allow": false, "reasons": ["not ok"]}\n\n'
        f'decision := {{"allow": true, "reasons": ["ok"]{extra}}} if {{\n\t{allow}\n}}\n'
    )


def _bundle(directory: Path, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "t.rego").write_text(source)
    return directory


def test_version_is_the_hash_of_names_and_contents(tmp_path: Path) -> None:
    one = load_bundle(_bundle(tmp_path / "a", _policy()))
    two = load_bundle(_bundle(tmp_path / "b", _policy()))
    other = load_bundle(_bundle(tmp_path / "c", _policy("input.ok == 1")))
    assert one.version == two.version != other.version
    assert len(one.version) == 64
    assert one.entrypoints == (EP,)


def test_a_malformed_bundle_is_refused_with_file_and_line(tmp_path: Path) -> None:
    bad = "package ombud.t\nimport rego.v1\n\ndecision if {\n  input.a ==\n}\n"
    with pytest.raises(BundleError) as caught:
        load_bundle(_bundle(tmp_path, bad))
    assert caught.value.file == "t.rego"
    assert caught.value.line == 5
    assert str(caught.value).startswith("t.rego:5")


def test_the_with_keyword_is_refused_before_it_can_crash(tmp_path: Path) -> None:
    source = _policy() + "\nx if {\n\tdecision.allow with input as {}\n}\n"
    with pytest.raises(BundleError, match="with") as caught:
        load_bundle(_bundle(tmp_path, source))
    assert caught.value.line == source.splitlines().index("\tdecision.allow with input as {}") + 1


def _engine(tmp_path: Path, source: str) -> tuple[PolicyEngine, FrozenClock, InMemoryDecisionLog]:
    clock, log = FrozenClock(), InMemoryDecisionLog()
    engine = PolicyEngine(_bundle(tmp_path, source), clock=clock, log=log, reload_interval_s=10)
    return engine, clock, log


def test_a_changed_bundle_is_picked_up_after_the_interval(tmp_path: Path) -> None:
    engine, clock, _ = _engine(tmp_path, _policy())
    old = engine.version
    (tmp_path / "t.rego").write_text(_policy("input.ok == 1"))
    assert engine.evaluate(EP, {"ok": True}).result.allow  # not checked yet
    clock.advance(10)
    decision = engine.evaluate(EP, {"ok": 1})
    assert decision.result.allow
    assert decision.bundle_version == engine.version != old


def test_a_broken_reload_keeps_the_old_bundle_answering(tmp_path: Path) -> None:
    engine, clock, _ = _engine(tmp_path, _policy())
    old = engine.version
    (tmp_path / "t.rego").write_text("package ombud.t\nimport rego.v1\n\ndecision := {\n")
    clock.advance(10)
    assert engine.evaluate(EP, {"ok": True}).result.allow
    assert engine.version == old
    assert engine.last_error is not None
    assert engine.last_error.file == "t.rego"
    assert engine.last_error.line is not None


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("package ombud.t\nimport rego.v1\n\ndecision := 42\n", "must be an object"),
        ('package ombud.t\nimport rego.v1\n\ndecision := {"allowed": true}\n', "unknown"),
        (_policy("true", ', "obligations": {"notify": true}'), "unknown obligations"),
        ("package ombud.t\nimport rego.v1\n\ndecision if input.never\n", "undefined"),
    ],
)
def test_a_missing_or_invalid_result_fails_closed(tmp_path: Path, source: str, why: str) -> None:
    engine, _, _ = _engine(tmp_path, source)
    decision = engine.evaluate(EP, {"ok": True})
    assert not decision.result.allow
    assert decision.error is not None
    assert why in decision.result.reason


def test_an_unknown_entrypoint_fails_closed(tmp_path: Path) -> None:
    engine, _, _ = _engine(tmp_path, _policy())
    decision = engine.evaluate("data.ombud.missing.decision", {})
    assert not decision.result.allow
    assert "no plan" in decision.result.reason


async def test_decisions_record_latency_digest_and_are_logged(tmp_path: Path) -> None:
    engine, clock, log = _engine(tmp_path, _policy())
    value: JsonValue = {"ok": True, "b": [1, "x"]}
    decision = engine.evaluate(EP, value)
    assert decision.latency_us > 0
    assert decision.decided_at == clock.now()
    assert decision.input_digest == hashlib.sha256(canonical_json(value).encode()).hexdigest()
    assert decision.id.startswith("pdc_")
    assert engine.pending == 1
    assert await engine.flush() == 1
    assert log.decisions == [decision]
    assert engine.pending == 0


async def test_decisions_go_back_to_the_buffer_when_the_log_fails(tmp_path: Path) -> None:
    class FailingLog:
        async def record(self, decisions: object) -> None:
            raise RuntimeError("down")

    engine = PolicyEngine(_bundle(tmp_path, _policy()), clock=FrozenClock(), log=FailingLog())
    engine.evaluate(EP, {})
    with pytest.raises(RuntimeError):
        await engine.flush()
    assert engine.pending == 1


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call into a compiled bundle's evaluator, by entrypoint."""
    calls: list[str] = []
    original = CompiledBundle.evaluate

    def counted(self: CompiledBundle, entrypoint: str, value: JsonValue) -> JsonValue:
        calls.append(entrypoint)
        return original(self, entrypoint, value)

    monkeypatch.setattr(CompiledBundle, "evaluate", counted)
    return calls


def test_an_identical_input_reuses_the_decision_but_is_still_logged(
    tmp_path: Path, evaluations: list[str]
) -> None:
    engine = PolicyEngine(_bundle(tmp_path, _policy()), clock=FrozenClock())
    evaluations.clear()
    first = engine.evaluate("data.ombud.t.decision", {"ok": True})
    second = engine.evaluate("data.ombud.t.decision", {"ok": True})
    other = engine.evaluate("data.ombud.t.decision", {"ok": False})
    assert (first.result, second.result) == (first.result, first.result)
    assert first.result.allow
    assert not other.result.allow
    assert len(evaluations) == 2
    assert first.id != second.id
    assert engine.pending == 3


def test_bundles_using_clock_or_randomness_are_never_cached(
    tmp_path: Path, evaluations: list[str]
) -> None:
    source = _policy() + "\nstamp := time.now_ns()\n"
    engine = PolicyEngine(_bundle(tmp_path, source), clock=FrozenClock())
    assert not engine.bundle.source.deterministic
    evaluations.clear()
    engine.evaluate("data.ombud.t.decision", {"ok": True})
    engine.evaluate("data.ombud.t.decision", {"ok": True})
    assert len(evaluations) == 2


def test_the_decision_cache_can_be_turned_off(tmp_path: Path, evaluations: list[str]) -> None:
    engine = PolicyEngine(_bundle(tmp_path, _policy()), clock=FrozenClock(), decision_cache_size=0)
    evaluations.clear()
    engine.evaluate("data.ombud.t.decision", {"ok": True})
    engine.evaluate("data.ombud.t.decision", {"ok": True})
    assert len(evaluations) == 2
