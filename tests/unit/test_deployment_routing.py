"""Rollout routing and its cache, the create schema, schema compatibility and the monitor's
arithmetic: no I/O."""

from __future__ import annotations

import contextlib
import random

import pytest
from pydantic import ValidationError
from scipy.stats import binomtest

from ombud.core.clock import FrozenClock
from ombud.deployments import routing as routing_module
from ombud.deployments.compatibility import narrower_features
from ombud.deployments.monitor import evaluate, p99, psi
from ombud.deployments.repository import ArmObservations
from ombud.deployments.routing import (
    BUCKETS,
    DeploymentRouting,
    bucket,
    candidate_buckets,
    choose_arm,
)
from ombud.deployments.schemas import Arm, DeploymentCreate, DeploymentMode, Guards
from ombud.registry.schemas import FeatureSpec

DEPLOYMENT = "dep_0123456789abcdef0123456789abcdef"
SUBJECTS = [f"subject-{n}" for n in range(4_000)]


def _arms(mode: DeploymentMode, percent: float) -> dict[str, Arm]:
    return {s: choose_arm(mode, percent, bucket(DEPLOYMENT, s)) for s in SUBJECTS}


def test_buckets_are_stable_and_in_range() -> None:
    assert bucket(DEPLOYMENT, "alice") == bucket(DEPLOYMENT, "alice")
    assert all(0 <= bucket(DEPLOYMENT, s) < BUCKETS for s in SUBJECTS)
    # Another deployment reshuffles the same subjects.
    other = "dep_ffffffffffffffffffffffffffffffff"
    assert [bucket(DEPLOYMENT, s) for s in SUBJECTS[:50]] != [
        bucket(other, s) for s in SUBJECTS[:50]
    ]


@pytest.mark.parametrize("percent", [1.0, 10.0, 50.0])
def test_canary_share_matches_the_percentage(percent: float) -> None:
    canary = sum(arm is Arm.CANARY for arm in _arms(DeploymentMode.CANARY, percent).values())
    result = binomtest(canary, len(SUBJECTS), percent / 100.0)
    assert result.pvalue >= 0.001, (canary, result.pvalue)


def test_a_wrong_share_would_be_detected() -> None:
    """The statistical test above can fail: 10% of subjects is not 20%."""
    canary = sum(arm is Arm.CANARY for arm in _arms(DeploymentMode.CANARY, 10.0).values())
    assert binomtest(canary, len(SUBJECTS), 0.2).pvalue < 0.001


def test_assignment_is_sticky_and_raising_the_percentage_only_adds_canary_subjects() -> None:
    shuffled = random.Random(7).sample(SUBJECTS, len(SUBJECTS))
    assert _arms(DeploymentMode.CANARY, 10.0) == {
        s: choose_arm(DeploymentMode.CANARY, 10.0, bucket(DEPLOYMENT, s)) for s in shuffled
    }
    previous = _arms(DeploymentMode.CANARY, 0.0)
    assert set(previous.values()) == {Arm.STABLE}
    for percent in (5.0, 10.0, 25.0, 50.0, 100.0):
        current = _arms(DeploymentMode.CANARY, percent)
        moved_back = [s for s, arm in previous.items() if arm is Arm.CANARY and current[s] != arm]
        assert moved_back == []
        previous = current
    assert set(previous.values()) == {Arm.CANARY}


def test_ab_splits_by_weight_and_shadow_always_answers_with_stable() -> None:
    b = sum(arm is Arm.B for arm in _arms(DeploymentMode.AB, 25.0).values())
    assert binomtest(b, len(SUBJECTS), 0.25).pvalue >= 0.001
    assert set(_arms(DeploymentMode.AB, 25.0).values()) == {Arm.A, Arm.B}
    assert set(_arms(DeploymentMode.SHADOW, 100.0).values()) == {Arm.STABLE}
    assert candidate_buckets(0.01) == 1
    assert candidate_buckets(100.0) == BUCKETS


def _create(**changes: object) -> DeploymentCreate:
    body: dict[str, object] = {
        "model": "credit-risk", "stable_version": 1, "candidate_version": 2, "mode": "canary",
        "percent": 10,
    }  # fmt: skip
    body.update(changes)
    return DeploymentCreate.model_validate(body)


def test_the_create_schema_checks_the_split_for_each_mode() -> None:
    assert _create().candidate_percent == 10.0
    ab = _create(mode="ab", percent=None, weights={"a": 3, "b": 1})
    assert ab.candidate_percent == 25.0
    assert _create(mode="shadow", percent=None).candidate_percent == 0.0
    invalid: list[dict[str, object]] = [
        {"percent": None},
        {"mode": "shadow"},
        {"mode": "ab"},
        {"mode": "ab", "percent": None, "weights": {"a": 0, "b": 0}},
        {"candidate_version": 1},
        {"percent": 100.5},
        {"guards": {"max_error_rate": 2}},
        {"unknown": True},
        {"model": "Not A Name"},
    ]
    for changes in invalid:
        with pytest.raises(ValidationError):
            _create(**changes)


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = random.Random(1)
    stable = [rng.betavariate(2, 5) for _ in range(2_000)]
    same = [rng.betavariate(2, 5) for _ in range(2_000)]
    shifted = [min(1.0, s + 0.3) for s in same]
    assert psi(stable, same) < 0.05
    assert psi(stable, shifted) > 1.0


def test_p99_is_the_nearest_rank() -> None:
    assert p99([]) is None
    assert p99([float(n) for n in range(1, 101)]) == 99.0
    assert p99([5.0]) == 5.0


def _observed(successes: int, failures: int, score: float, latency: float) -> ArmObservations:
    return ArmObservations(successes, [score] * successes, [latency] * successes, failures)


def test_evaluate_breaches_only_past_min_requests() -> None:
    guards = Guards(max_error_rate=0.1, max_p99_latency_ms=50, max_score_psi=0.2, min_requests=20)
    stable = _observed(200, 0, 0.2, 5.0)
    few = evaluate("dep", "m", guards, stable, _observed(5, 5, 0.9, 500.0))
    assert few.breaches == []
    assert few.numbers["error_rate"] == 0.5
    bad = evaluate("dep", "m", guards, stable, _observed(30, 10, 0.9, 500.0))
    assert bad.breaches == ["error_rate", "p99_latency", "score_psi"]
    healthy = evaluate("dep", "m", guards, stable, _observed(40, 1, 0.2, 5.0))
    assert healthy.breaches == []


def _spec(name: str, **changes: object) -> FeatureSpec:
    fields: dict[str, object] = {"name": name, "type": "number"}
    fields.update(changes)
    return FeatureSpec.model_validate(fields)


def test_a_candidate_may_widen_the_stable_schema_but_never_narrow_it() -> None:
    stable = [
        _spec("amount", minimum=0, maximum=100),
        _spec("purpose", type="category", categories=["car", "home"]),
        _spec("age", type="integer", required=False),
    ]
    wider = [
        _spec("amount", minimum=-5),
        _spec("purpose", type="category", categories=["car", "home", "boat"]),
        _spec("age", type="number", required=False),
        _spec("income", required=False),
    ]
    assert narrower_features(stable, stable) == []
    assert narrower_features(stable, wider) == []
    narrower = [
        _spec("amount", minimum=1, maximum=50),
        _spec("purpose", type="category", categories=["car"]),
        _spec("tenure"),
    ]
    assert narrower_features(stable, narrower) == [
        "amount: minimum raised to 1",
        "amount: maximum lowered to 50",
        "purpose: categories home are no longer allowed",
        "tenure: required, but the stable version does not declare it",
        "age: declared by the stable version, unknown to the candidate",
    ]
    required = [*stable[:2], _spec("age", type="boolean")]
    assert narrower_features(stable, required) == ["age: its type changed from integer to boolean"]
    assert narrower_features(stable, [*stable[:2], _spec("age", type="integer")]) == [
        "age: required, but optional in the stable version"
    ]


class _Sessions:
    """Stands in for a session maker: the routing under test never touches the session."""

    def __call__(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


@pytest.mark.anyio
async def test_the_routing_cache_keeps_only_the_names_asked_for_most_recently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []

    async def load(session: object, clock: object, model: str) -> None:
        loads.append(model)

    monkeypatch.setattr(routing_module, "load_routing", load)
    routing = DeploymentRouting(_Sessions(), FrozenClock(), ttl_s=60.0, max_names=3)  # type: ignore[arg-type]
    for name in ("a", "b", "c", "a", "d"):
        assert await routing.routing(name) is None
    assert routing.cached_names == 3
    assert loads == ["a", "b", "c", "d"]  # "a" again came from the cache
    await routing.routing("a")
    await routing.routing("b")  # the least recently asked for ("b") was dropped for "d"
    assert loads == ["a", "b", "c", "d", "b"]
    for n in range(5_000):
        await routing.routing(f"random-{n}")
    assert routing.cached_names == 3
