"""Assembling each route's chain from configuration.

Stages are named; a route's chain is a list of names (defaults below, overridable with
``OMBUD_GATEWAY__CHAINS``). A stage added later registers a factory here and is placed in the
chains that need it; no other stage changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from ombud.container import Container
from ombud.deployments.shadow import MirrorToCandidate
from ombud.flags.stage import FeatureGate
from ombud.gateway.chain import Chain
from ombud.gateway.outcome_records import OutcomeRecorder
from ombud.gateway.stage import Stage
from ombud.gateway.stages.admission import Concurrency, RateLimit, RateLimitByIp
from ombud.gateway.stages.authenticate import Authenticate
from ombud.gateway.stages.authorization import AuthorizeCall
from ombud.gateway.stages.context import DeclaredContext
from ombud.guards.stages import InputGuard, OutputGuard
from ombud.llm import stages as llm_stages
from ombud.policy.stages import PolicyAfter, PolicyBefore
from ombud.privacy.exclusions import TrainingExclusions
from ombud.privacy.stage import SubjectPreferences
from ombud.privacy.wiring import lookup_key
from ombud.ratelimit import DefaultQuotas
from ombud.review.call_opener import CallReviewOpener
from ombud.review.wiring import review_opener
from ombud.serving.explain_stage import ExplainPrediction
from ombud.serving.feature_fetch import FetchFeatures
from ombud.serving.stages import InvokeModel, RecordPrediction, ResolveModel, ValidateFeatures

StageFactory = Callable[[Container], Stage]

STAGES: Mapping[str, StageFactory] = MappingProxyType(
    {
        "authenticate": lambda c: Authenticate(
            c.sessions, c.api_key_pepper, c.clock, c.token_verifier, c.api_key_cache
        ),
        "rate_limit.ip": lambda c: RateLimitByIp(
            c.rate_limiter, DefaultQuotas.from_settings(c.settings.ratelimit)
        ),
        "rate_limit": lambda c: RateLimit(
            c.rate_limiter, DefaultQuotas.from_settings(c.settings.ratelimit)
        ),
        "concurrency": lambda c: Concurrency(c.concurrency, c.settings.gateway.max_in_flight),
        "context": lambda c: DeclaredContext(),
        "guards.input": lambda c: InputGuard(c.settings.guards),
        "policy.before": lambda c: PolicyBefore(c.policy, _reviews(c)),
        "policy.after": lambda c: PolicyAfter(c.policy, _reviews(c)),
        "guards.output": lambda c: OutputGuard(c.settings.guards),
        "authorize": lambda c: AuthorizeCall(c.authorizer),
        "feature.flag": lambda c: FeatureGate(c.flags),
        "model.resolve": lambda c: ResolveModel(
            c.sessions,
            c.runtime,
            c.clock,
            c.settings.serving.version_cache_ttl_s,
            deployments=c.deployments.routing,
            records=c.records,
            metrics=c.metrics,
        ),
        "model.validate": lambda c: ValidateFeatures(c.runtime),
        "model.invoke": lambda c: InvokeModel(c.runtime, c.clock),
        "model.explain": lambda c: ExplainPrediction(c.runtime),
        "model.record": lambda c: RecordPrediction(c.records, c.clock, c.keys),
        "model.shadow": lambda c: MirrorToCandidate(c.deployments.routing, c.deployments.shadow),
        "privacy.preferences": lambda c: SubjectPreferences(
            c.regions, TrainingExclusions(c.sessions, lookup_key(c))
        ),
        "model.features": lambda c: FetchFeatures(lambda: c.online_features),
        "llm.parse": lambda c: llm_stages.ParseRequest(c.settings.llm),
        "rate_limit.tokens": lambda c: llm_stages.TokenRateLimit(c.rate_limiter, c.settings.llm),
        "llm.route": lambda c: llm_stages.RouteCall(c.llm),
        "llm.budget": lambda c: llm_stages.HoldBudget(c.llm, c.metrics),
        "llm.cache": lambda c: llm_stages.LookUpCache(c.llm),
        "llm.invoke": lambda c: llm_stages.InvokeUpstream(
            c.llm, c.clock, llm_stages.RecordUsage(c.llm, c.records, c.clock, c.metrics)
        ),
        "llm.record": lambda c: llm_stages.RecordUsage(c.llm, c.records, c.clock, c.metrics),
    }
)

_LLM_CHAT = (
    "rate_limit.ip", "authenticate", "llm.parse", "rate_limit", "concurrency", "context",
    "authorize", "privacy.preferences", "feature.flag",
    "rate_limit.tokens", "guards.input", "policy.before", "llm.route", "llm.budget",
    "llm.cache", "llm.invoke", "guards.output", "policy.after", "llm.record",
)  # fmt: skip

DEFAULT_CHAINS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "model.predict": (
            "rate_limit.ip", "authenticate", "rate_limit", "concurrency", "context", "authorize",
            "feature.flag",
            "privacy.preferences", "model.resolve", "policy.before", "model.features",
            "model.validate",
            "model.invoke", "model.explain",
            "model.record", "model.shadow", "policy.after",
        ),
        "llm.chat": _LLM_CHAT,
        "llm.messages": _LLM_CHAT,
        "llm.embeddings": (
            "rate_limit.ip", "authenticate", "llm.parse", "rate_limit", "concurrency", "context",
            "authorize", "feature.flag",
            "rate_limit.tokens", "guards.input", "policy.before", "llm.route",
            "llm.budget", "llm.cache", "llm.invoke", "llm.record",
        ),
    }
)  # fmt: skip


PRE_AUTH_STAGES = frozenset({"rate_limit.ip"})
"""Stages that need no principal and may run before ``authenticate``."""


def _reviews(container: Container) -> CallReviewOpener:
    return CallReviewOpener(review_opener(container))


class ChainConfigError(ValueError):
    """A configured chain names an unknown stage or does not authenticate first."""


class Gateway:
    """The assembled chains, one per route."""

    def __init__(self, chains: Mapping[str, Chain]) -> None:
        self._chains = dict(chains)

    def chain(self, route: str) -> Chain:
        return self._chains[route]

    @property
    def routes(self) -> list[str]:
        return sorted(self._chains)


def build_gateway(container: Container) -> Gateway:
    settings = container.settings.gateway
    outcomes = OutcomeRecorder(container.records, container.metrics, container.clock)
    chains: dict[str, Chain] = {}
    for route, default in DEFAULT_CHAINS.items():
        names = settings.chains.get(route, list(default))
        _check(route, names)
        stages = [STAGES[name](container) for name in names]
        chains[route] = Chain(
            route,
            stages,
            outcomes=outcomes,
            timeout_s=settings.request_timeout_s,
            metrics=container.metrics,
        )
    unknown_routes = set(settings.chains) - set(DEFAULT_CHAINS)
    if unknown_routes:
        raise ChainConfigError(f"chains configured for unknown routes: {sorted(unknown_routes)}")
    return Gateway(chains)


def _check(route: str, names: list[str]) -> None:
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        raise ChainConfigError(f"{route}: unknown stages {unknown}; known: {sorted(STAGES)}")
    if "authenticate" not in names:
        raise ChainConfigError(f"{route}: the chain must include 'authenticate'")
    early = set(names[: names.index("authenticate")]) - PRE_AUTH_STAGES
    if early:
        raise ChainConfigError(
            f"{route}: only {sorted(PRE_AUTH_STAGES)} may come before 'authenticate', "
            f"not {sorted(early)}"
        )
