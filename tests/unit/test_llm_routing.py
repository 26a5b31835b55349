"""Routing: plans (resolution, filters, load balancing, preference) and attempts over them
(retries, backoff, retry budget, fallbacks, timeouts, circuit breakers), with their metrics.

Time is a FrozenClock, backoff sleeps are recorded instead of waited, randomness is seeded."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from ombud.core.clock import FrozenClock
from ombud.llm.catalog import (
    AliasConfig,
    BreakerConfig,
    CatalogConfig,
    DeploymentConfig,
    Price,
    ProviderConfig,
    RoutingConfig,
)
from ombud.llm.routing import (
    AllAttemptsFailed,
    CircuitBreaker,
    NoRoute,
    RetryBudget,
    Router,
    RouteRequest,
)
from ombud.llm.types import UpstreamError
from ombud.observability.metrics import Metrics

pytestmark = pytest.mark.anyio


def catalog(**routing: Any) -> CatalogConfig:
    breaker = routing.pop("breaker", BreakerConfig(failure_threshold=3, cooldown_s=30.0))
    return CatalogConfig(
        builtin=False,
        providers={
            "oa": ProviderConfig(kind="openai", base_url="https://api.openai.com/v1"),
            "an": ProviderConfig(kind="anthropic", base_url="https://api.anthropic.com"),
        },
        deployments=[
            DeploymentConfig(
                id="gpt-east",
                provider="oa",
                model="gpt-4o",
                aliases=["gpt"],
                region="us",
                weight=3,
                price=Price(input_per_mtok=2.5, output_per_mtok=10),
            ),
            DeploymentConfig(
                id="gpt-west",
                provider="oa",
                model="gpt-4o",
                aliases=["gpt"],
                region="eu",
                weight=1,
                price=Price(input_per_mtok=0.5, output_per_mtok=1),
            ),
            DeploymentConfig(
                id="gpt-pro", provider="oa", model="gpt-4o", aliases=["gpt"], tiers=["pro"]
            ),
            DeploymentConfig(
                id="claude",
                provider="an",
                model="claude-sonnet",
                aliases=["sonnet"],
                region="us",
                price=Price(input_per_mtok=3, output_per_mtok=15),
            ),
            DeploymentConfig(
                id="small",
                provider="oa",
                model="gpt-4o-mini",
                aliases=["mini"],
                max_context_tokens=8000,
                max_output_tokens=1000,
                price=Price(input_per_mtok=0.1, output_per_mtok=0.4),
            ),
            DeploymentConfig(id="embed", provider="oa", model="text-embedding-3", kind="embedding"),
        ],
        aliases={
            "gpt": AliasConfig(fallbacks=["sonnet"]),
            "sonnet": AliasConfig(fallbacks=["gpt", "mini"]),
        },
        routing=RoutingConfig(
            **{"backoff_base_s": 0.1, "backoff_max_s": 1.0, "breaker": breaker, **routing}
        ),
    )


@dataclass
class Env:
    router: Router
    clock: FrozenClock
    metrics: Metrics
    delays: list[float] = field(default_factory=list)

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def make(cat: CatalogConfig | None = None, rng: random.Random | None = None) -> Env:
    clock = FrozenClock()
    metrics = Metrics()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    router = Router(
        cat or catalog(),
        clock=clock,
        metrics=metrics,
        rng=rng or random.Random(7),
        sleep=sleep,
    )
    return Env(router, clock, metrics, delays)


def request(model: str = "gpt", **overrides: Any) -> RouteRequest:
    fields: dict[str, Any] = {
        "model": model,
        "kind": "chat",
        "tenant_tier": "free",
        "input_tokens": 1000,
        "max_output_tokens": 1000,
    }
    fields.update(overrides)
    return RouteRequest(**fields)


def ids(deployments: tuple[DeploymentConfig, ...]) -> list[str]:
    return [d.id for d in deployments]


def scripted(
    *outcomes: BaseException | str, clock: FrozenClock | None = None, took_s: float = 0.0
) -> tuple[Callable[[DeploymentConfig], Awaitable[str]], list[str]]:
    """An attempt function that fails or answers in turn; it records where each call went."""
    calls: list[str] = []
    queue = list(outcomes)

    async def attempt(deployment: DeploymentConfig) -> str:
        calls.append(deployment.id)
        if clock is not None:
            clock.advance(took_s)
        outcome = queue.pop(0) if queue else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return f"{outcome} from {deployment.id}"

    return attempt, calls


def state(breaker: CircuitBreaker) -> str:
    """The breaker's state, read afresh (it changes with the clock)."""
    return breaker.state


def unavailable() -> UpstreamError:
    return UpstreamError("status", "upstream unavailable", status=503)


# -- planning -------------------------------------------------------------------------------


def test_alias_resolves_to_its_deployments_then_fallbacks_breadth_first() -> None:
    env = make()
    plan = env.router.plan(request("gpt"))
    assert plan.alias == "gpt"
    assert sorted(ids(plan.primary)) == ["gpt-east", "gpt-west"]  # gpt-pro is for "pro"
    assert ids(plan.fallbacks) == ["claude", "small"]  # sonnet, then sonnet's "mini"
    assert plan.attempts_order() == plan.primary + plan.fallbacks

    sonnet = env.router.plan(request("sonnet"))
    assert ids(sonnet.primary) == ["claude"]
    assert sorted(ids(sonnet.fallbacks)[:2]) == ["gpt-east", "gpt-west"]  # the cycle back ends
    assert ids(sonnet.fallbacks)[2:] == ["small"]

    direct = env.router.plan(request("gpt-west"))
    assert ids(direct.primary) == ["gpt-west"]
    assert direct.fallbacks == ()
    assert env.router.plan(request("gpt", tenant_tier="pro")).primary[0].id in {
        "gpt-east",
        "gpt-west",
        "gpt-pro",
    }
    assert len(env.router.plan(request("gpt", tenant_tier="pro")).primary) == 3


def test_unknown_model_is_a_404() -> None:
    with pytest.raises(NoRoute) as caught:
        make().router.plan(request("gpt-5"))
    assert caught.value.reason == "unknown_model"
    assert caught.value.status == 404
    assert "gpt-5" in caught.value.message


def test_tier_filter() -> None:
    with pytest.raises(NoRoute) as caught:
        make().router.plan(request("gpt-pro"))
    assert caught.value.reason == "no_eligible_deployment"
    assert caught.value.status == 403
    assert "not open to tier 'free': gpt-pro" in caught.value.message
    assert ids(make().router.plan(request("gpt-pro", tenant_tier="pro")).primary) == ["gpt-pro"]


def test_region_filter() -> None:
    env = make()
    plan = env.router.plan(request("gpt", regions=frozenset({"eu"})))
    assert ids(plan.primary) == ["gpt-west"]
    assert plan.fallbacks == ()  # claude is in "us", small in "global"
    with pytest.raises(NoRoute) as caught:
        env.router.plan(request("claude", regions=frozenset({"eu"})))
    assert caught.value.status == 403
    assert "outside the allowed regions ['eu']: claude" in caught.value.message


def test_a_subjects_region_keeps_its_call_in_that_region() -> None:
    env = make()
    plan = env.router.plan(request("gpt", subject_region="eu"))
    assert ids(plan.primary) == ["gpt-west"]
    assert plan.fallbacks == ()
    with pytest.raises(NoRoute) as caught:
        env.router.plan(request("claude", subject_region="eu"))
    assert caught.value.status == 403
    assert "outside the allowed regions ['eu']: claude" in caught.value.message
    # Both constraints apply together: policy's regions and the subject's.
    with pytest.raises(NoRoute):
        env.router.plan(request("gpt", regions=frozenset({"us"}), subject_region="eu"))


def test_in_process_models_serve_a_subject_of_any_region() -> None:
    env = make(CatalogConfig().with_builtins())
    plan = env.router.plan(request("local-echo", subject_region="us"))
    assert ids(plan.primary) == ["local-echo"]


def test_context_filter_counts_the_answer_up_to_the_deployments_own_limit() -> None:
    env = make()
    # small: 8000 context, at most 1000 output tokens: 7000 + min(4000, 1000) fits exactly.
    assert ids(env.router.plan(request("mini", input_tokens=7000, max_output_tokens=4000)).primary)
    with pytest.raises(NoRoute) as caught:
        env.router.plan(request("mini", input_tokens=7001, max_output_tokens=4000))
    assert caught.value.status == 400
    assert "too small a context for 7001 input" in caught.value.message
    assert "small" in caught.value.message


def test_cost_ceiling_filter() -> None:
    env = make()
    # 1000 in + 1000 out: gpt-east $0.0125, gpt-west $0.0015, claude $0.018, small $0.0005.
    plan = env.router.plan(request("gpt", cost_ceiling_usd=0.01))
    assert ids(plan.primary) == ["gpt-west"]
    assert ids(plan.fallbacks) == ["small"]
    with pytest.raises(NoRoute) as caught:
        env.router.plan(request("claude", cost_ceiling_usd=0.01))
    assert caught.value.status == 403
    assert "over the cost ceiling of $0.01: claude" in caught.value.message


def test_kind_filter() -> None:
    env = make()
    assert ids(env.router.plan(request("embed", kind="embedding")).primary) == ["embed"]
    with pytest.raises(NoRoute) as caught:
        env.router.plan(request("embed"))
    assert caught.value.status == 400
    assert "not chat models: embed" in caught.value.message
    with pytest.raises(NoRoute, match="not embedding models: claude"):
        env.router.plan(request("claude", kind="embedding"))


def test_message_names_every_filter_that_excluded_something() -> None:
    with pytest.raises(NoRoute) as caught:
        make().router.plan(request("gpt", regions=frozenset({"ap"}), tenant_tier="free"))
    message = caught.value.message
    assert "not open to tier 'free': gpt-pro" in message
    assert "outside the allowed regions ['ap']: gpt-east, gpt-west, gpt-pro, claude, small" in (
        message
    )


def test_weighted_split_follows_the_weights() -> None:
    env = make(rng=random.Random(1234))
    firsts = Counter(env.router.plan(request("gpt")).primary[0].id for _ in range(8000))
    # Weights 3:1 → 6000 vs 2000 expected; chi-square with one degree of freedom < 6.63 (p 0.01).
    expected = {"gpt-east": 6000, "gpt-west": 2000}
    chi2 = sum((firsts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < 6.63, firsts


async def test_fewer_in_flight_wins_the_two_choices() -> None:
    env = make()
    started, release = anyio.Event(), anyio.Event()

    async def hold(deployment: DeploymentConfig) -> str:
        started.set()
        await release.wait()
        return deployment.id

    async with anyio.create_task_group() as group:
        group.start_soon(env.router.run, env.router.plan(request("gpt-east")), hold)
        await started.wait()
        assert env.router.in_flight("gpt-east") == 1
        firsts = {env.router.plan(request("gpt")).primary[0].id for _ in range(200)}
        release.set()
    assert firsts == {"gpt-west"}
    assert env.router.in_flight("gpt-east") == 0


def test_open_breaker_goes_last_and_preference_goes_first() -> None:
    env = make()
    for _ in range(3):
        env.router.breaker("gpt-east").record_failure()
    assert {ids(env.router.plan(request("gpt")).primary)[0] for _ in range(50)} == {"gpt-west"}

    env = make()
    assert ids(env.router.plan(request("gpt", preferred="gpt-west")).primary)[0] == "gpt-west"
    assert ids(env.router.plan(request("gpt", preferred="eu")).primary)[0] == "gpt-west"
    promoted = env.router.plan(request("gpt", preferred="claude"))
    assert ids(promoted.primary)[0] == "claude"
    assert "claude" not in ids(promoted.fallbacks)
    # A hint naming nothing eligible changes nothing.
    ignored = env.router.plan(request("gpt", preferred="gpt-pro"))
    assert "gpt-pro" not in ids(ignored.attempts_order())


def test_models_lists_aliases_and_deployment_ids() -> None:
    models = dict(make().router.models())
    assert models["gpt"] == "openai"
    assert models["sonnet"] == "anthropic"
    assert models["claude"] == "anthropic"
    assert models["embed"] == "openai"
    assert set(models) == {
        "gpt",
        "sonnet",
        "mini",
        "gpt-east",
        "gpt-west",
        "gpt-pro",
        "claude",
        "small",
        "embed",
    }
    assert make().router.deployment("small").max_context_tokens == 8000


# -- attempts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        UpstreamError("status", "bad gateway", status=502),
        UpstreamError("status", "slow down", status=429),
        UpstreamError("timeout", "no answer"),
        UpstreamError("connection", "refused"),
    ],
    ids=["5xx", "429", "timeout", "connection"],
)
async def test_retryable_failure_then_success_is_invisible_to_the_client(
    failure: UpstreamError,
) -> None:
    env = make()
    attempt, calls = scripted(failure)
    answered = await env.router.run(env.router.plan(request("gpt")), attempt)
    assert answered.value == f"ok from {answered.deployment.id}"
    assert len(calls) == 2
    assert calls[0] != calls[1]  # the retry went to the next deployment
    assert [r.result for r in answered.attempts] == [failure.kind, "ok"]
    assert answered.attempts[0].status == failure.status
    assert not answered.fallback
    assert env.sample("ombud_llm_retries_total", deployment=calls[1]) == 1
    assert env.sample("ombud_llm_upstream_attempts_total", deployment=calls[1], result="ok") == 1
    assert (
        env.sample("ombud_llm_upstream_attempts_total", deployment=calls[0], result=failure.kind)
        == 1
    )
    assert len(env.delays) == 1


async def test_attempt_duration_is_measured_on_the_clock() -> None:
    env = make()
    attempt, _ = scripted("ok", clock=env.clock, took_s=0.25)
    await env.router.run(env.router.plan(request("claude")), attempt)
    assert env.sample("ombud_llm_upstream_duration_seconds_sum", deployment="claude") == 0.25
    assert env.sample("ombud_llm_upstream_duration_seconds_count", deployment="claude") == 1


async def test_per_attempt_timeout() -> None:
    cat = catalog()
    quick = cat.deployments[0].model_copy(update={"timeout_s": 0.01})
    env = make(cat.model_copy(update={"deployments": [quick, *cat.deployments[1:]]}))
    calls: list[str] = []

    async def attempt(deployment: DeploymentConfig) -> str:
        calls.append(deployment.id)
        if deployment.id == "gpt-east":
            await anyio.Event().wait()  # never answers: the deployment's timeout ends it
        return deployment.id

    answered = await env.router.run(env.router.plan(request("gpt", preferred="gpt-east")), attempt)
    assert calls[0] == "gpt-east"
    assert answered.attempts[0].result == "timeout"
    assert answered.value != "gpt-east"
    assert env.router.in_flight("gpt-east") == 0


async def test_non_retryable_error_is_raised_at_once_and_spares_the_breaker() -> None:
    env = make()
    refused = UpstreamError("status", "bad request", status=400)
    attempt, calls = scripted(refused)
    with pytest.raises(UpstreamError) as caught:
        await env.router.run(env.router.plan(request("claude")), attempt)
    assert caught.value is refused
    assert calls == ["claude"]
    assert env.router.breaker("claude").consecutive_failures == 0
    assert env.sample("ombud_llm_upstream_attempts_total", deployment="claude", result="status")
    assert env.delays == []

    # Other exceptions are not retried either (unless the caller says they are).
    attempt, calls = scripted(ValueError("adapter bug"))
    with pytest.raises(ValueError, match="adapter bug"):
        await env.router.run(env.router.plan(request("claude")), attempt)
    assert calls == ["claude"]
    attempt, calls = scripted(ValueError("flaky"))
    answered = await env.router.run(
        env.router.plan(request("claude")), attempt, is_retryable=lambda _: True
    )
    assert calls == ["claude", "claude"]
    assert answered.attempts[0].result == "protocol"


async def test_fallback_answers_when_the_primary_deployments_fail() -> None:
    env = make()
    attempt, calls = scripted(unavailable(), unavailable())
    answered = await env.router.run(env.router.plan(request("gpt")), attempt)
    assert sorted(calls[:2]) == ["gpt-east", "gpt-west"]
    assert answered.deployment.id == "claude"
    assert answered.fallback
    assert env.sample("ombud_llm_fallbacks_total", alias="gpt") == 1
    assert env.sample("ombud_llm_retries_total", deployment="claude") == 1


async def test_max_attempts_is_honoured_and_the_last_error_is_kept() -> None:
    env = make(catalog(max_attempts=4))
    errors = [unavailable() for _ in range(10)]
    attempt, calls = scripted(*errors)
    with pytest.raises(AllAttemptsFailed) as caught:
        await env.router.run(env.router.plan(request("sonnet")), attempt)
    # claude, its fallbacks gpt ×2 and small, then nothing more.
    assert len(calls) == 4
    assert caught.value.last is errors[3]
    assert [r.result for r in caught.value.attempts] == ["status"] * 4
    assert len(env.delays) == 3

    # A single deployment is retried on itself while attempts remain.
    env = make(catalog(max_attempts=3))
    attempt, calls = scripted(*[unavailable() for _ in range(10)])
    with pytest.raises(AllAttemptsFailed):
        await env.router.run(env.router.plan(request("gpt-west")), attempt)
    assert calls == ["gpt-west"] * 3


class _Highest(random.Random):
    """Jitter always at the top of its range, so the backoff's growth shows."""

    def random(self) -> float:
        return 0.999999


async def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    lenient = BreakerConfig(failure_threshold=1000)
    env = make(
        catalog(max_attempts=6, backoff_base_s=0.1, backoff_max_s=0.5, breaker=lenient),
        rng=_Highest(),
    )
    attempt, _ = scripted(*[unavailable() for _ in range(10)])
    with pytest.raises(AllAttemptsFailed):
        await env.router.run(env.router.plan(request("gpt-west")), attempt)
    assert env.delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5], rel=1e-4)

    env = make(catalog(max_attempts=6, backoff_base_s=0.1, backoff_max_s=0.5, breaker=lenient))
    for _ in range(12):
        attempt, _ = scripted(*[unavailable() for _ in range(10)])
        with pytest.raises(AllAttemptsFailed):
            await env.router.run(env.router.plan(request("gpt-west")), attempt)
        env.clock.advance(11)  # a fresh retry budget window for each call
    assert len(env.delays) == 60
    caps = [0.1, 0.2, 0.4, 0.5, 0.5]
    assert all(0 <= d <= caps[i % 5] for i, d in enumerate(env.delays))
    assert len(set(env.delays)) == 60  # jittered, not synchronised


async def test_retry_after_is_honoured_when_short_and_skipped_when_long() -> None:
    env = make()
    attempt, _ = scripted(UpstreamError("status", "slow down", status=429, retry_after_s=0.8))
    await env.router.run(env.router.plan(request("gpt-west")), attempt)
    assert env.delays == [0.8]

    env = make()
    attempt, calls = scripted(UpstreamError("status", "later", status=429, retry_after_s=60))
    answered = await env.router.run(env.router.plan(request("gpt")), attempt)
    assert env.delays == []  # straight to the next deployment
    assert answered.deployment.id != calls[0]

    env = make()
    late = UpstreamError("status", "later", status=429, retry_after_s=60)
    attempt, calls = scripted(late)
    with pytest.raises(AllAttemptsFailed) as caught:
        await env.router.run(env.router.plan(request("gpt-west")), attempt)
    assert calls == ["gpt-west"]  # the same deployment again would only be refused again
    assert caught.value.last is late


async def test_retry_budget_exhaustion_stops_retries() -> None:
    # No share of first attempts, a floor of 0.1/s over 10 s: one retry per window.
    lenient = BreakerConfig(failure_threshold=100)
    env = make(catalog(retry_budget_ratio=0.0, retry_budget_min_per_s=0.1, breaker=lenient))
    attempt, calls = scripted(*[unavailable() for _ in range(20)])
    with pytest.raises(AllAttemptsFailed):
        await env.router.run(env.router.plan(request("gpt-west")), attempt)
    assert len(calls) == 2
    assert env.sample("ombud_llm_retry_budget_exhausted_total") == 1

    calls.clear()
    with pytest.raises(AllAttemptsFailed):
        await env.router.run(env.router.plan(request("gpt-west")), attempt)
    assert len(calls) == 1
    assert env.sample("ombud_llm_retry_budget_exhausted_total") == 2

    env.clock.advance(10.5)  # the window slid past the spent retry
    calls.clear()
    with pytest.raises(AllAttemptsFailed):
        await env.router.run(env.router.plan(request("gpt-west")), attempt)
    assert len(calls) == 2


def test_retry_budget_grows_with_first_attempts_over_a_sliding_window() -> None:
    clock = FrozenClock()
    budget = RetryBudget(ratio=0.5, min_per_s=0.0, window_s=10.0, clock=clock)
    assert not budget.try_retry()
    for _ in range(4):
        budget.record_first_attempt()
    assert budget.allowance() == 2
    assert budget.try_retry()
    assert budget.try_retry()
    assert not budget.try_retry()
    clock.advance(5)
    for _ in range(2):
        budget.record_first_attempt()
    assert budget.try_retry()  # 6 first attempts in the window: 3 retries
    assert not budget.try_retry()
    clock.advance(6)  # the first four (and the two retries spent then) left the window
    assert budget.allowance() == 1
    assert not budget.try_retry()  # the retry spent at t=5 still counts
    clock.advance(5)
    assert budget.allowance() == 0


# -- circuit breakers -----------------------------------------------------------------------


async def test_breaker_opens_refuses_probes_and_closes() -> None:
    env = make(catalog(max_attempts=1))
    plan = env.router.plan(request("claude"))
    breaker = env.router.breaker("claude")
    for _ in range(3):
        attempt, _ = scripted(unavailable())
        with pytest.raises(AllAttemptsFailed):
            await env.router.run(plan, attempt)
    assert state(breaker) == "open"
    assert env.sample("ombud_llm_breaker_state", deployment="claude") == 2
    assert env.sample("ombud_llm_breaker_transitions_total", deployment="claude", state="open")

    # Open: refused without calling the upstream.
    attempt, calls = scripted("ok")
    with pytest.raises(AllAttemptsFailed) as caught:
        await env.router.run(plan, attempt)
    assert calls == []
    assert caught.value.last.kind == "connection"
    assert caught.value.last.message == "circuit open for claude"
    assert [r.result for r in caught.value.attempts] == ["breaker_open"]
    assert env.sample(
        "ombud_llm_upstream_attempts_total", deployment="claude", result="breaker_open"
    )

    # After the cooldown: half-open, one probe at a time.
    env.clock.advance(29.9)
    assert state(breaker) == "open"
    env.clock.advance(0.1)
    assert state(breaker) == "half_open"
    assert env.sample("ombud_llm_breaker_state", deployment="claude") == 1
    assert breaker.allow()
    assert not breaker.allow()  # the probe slot is taken
    breaker.release()

    # A probe failure opens it again for another cooldown.
    attempt, calls = scripted(unavailable())
    with pytest.raises(AllAttemptsFailed):
        await env.router.run(plan, attempt)
    assert calls == ["claude"]
    assert state(breaker) == "open"
    assert env.sample("ombud_llm_breaker_transitions_total", deployment="claude", state="open") == 2

    # A probe success closes it.
    env.clock.advance(30)
    attempt, calls = scripted("ok")
    answered = await env.router.run(plan, attempt)
    assert answered.value == "ok from claude"
    assert state(breaker) == "closed"
    assert env.sample("ombud_llm_breaker_state", deployment="claude") == 0
    assert (
        env.sample("ombud_llm_breaker_transitions_total", deployment="claude", state="closed") == 1
    )
    assert (
        env.sample("ombud_llm_breaker_transitions_total", deployment="claude", state="half_open")
        == 2
    )


async def test_open_breaker_is_skipped_in_favour_of_the_next_deployment() -> None:
    env = make()
    plan = env.router.plan(request("gpt", preferred="gpt-east"))
    for _ in range(3):
        env.router.report_stream_failure("gpt-east")  # a stream died after its first event
    attempt, calls = scripted("ok")
    answered = await env.router.run(plan, attempt)
    assert calls == ["gpt-west"]
    assert [r.result for r in answered.attempts] == ["breaker_open", "ok"]
    assert env.delays == []
    env.router.report_stream_success("gpt-west")
    assert env.router.breaker("gpt-west").state == "closed"


async def test_success_resets_the_consecutive_failure_count() -> None:
    env = make(catalog(max_attempts=1))
    plan = env.router.plan(request("claude"))
    for outcome in (unavailable(), unavailable(), "ok", unavailable(), unavailable()):
        attempt, _ = scripted(outcome)
        if isinstance(outcome, UpstreamError):
            with pytest.raises(AllAttemptsFailed):
                await env.router.run(plan, attempt)
        else:
            await env.router.run(plan, attempt)
    assert env.router.breaker("claude").state == "closed"
    assert env.router.breaker("claude").consecutive_failures == 2
