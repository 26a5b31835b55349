"""Routing: from the model a client named to an ordered plan of deployments, and running a call
over that plan.

:meth:`Router.plan` resolves the name (an alias, or a deployment id called directly) and keeps the
deployments that may take this call: the requested kind, the tenant's tier, the allowed regions,
enough context for the prompt plus the answer, and a worst-case cost under the ceiling. The
alias's own deployments come first, ordered by weighted random choice that prefers the one with
fewer calls in flight ("power of two choices": two weighted draws, the less busy wins), those
with an open breaker last; then the fallbacks, breadth first (the alias's listed fallbacks before
the fallbacks' own), each deployment once. Name → deployments and fallbacks are resolved once at
start, so planning a call only filters and shuffles a few items.

:meth:`Router.run` makes the attempts (see :mod:`ombud.llm.routing.attempts`): a timeout per
attempt, retries with jittered backoff on retryable upstream errors under a shared retry budget,
breakers that skip a failing deployment, fallbacks after the alias's own deployments.

Streaming: the caller's attempt function returns as soon as the upstream's *first* event arrived
and the caller reads the rest of the stream after :meth:`Router.run` returned. Retries and
fallbacks therefore apply only until the first byte: once the client has received part of an
answer it cannot be restarted elsewhere. A stream that dies afterwards is reported with
:meth:`Router.report_stream_failure` (and one that completes with
:meth:`Router.report_stream_success`) so the deployment's breaker still learns of it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import anyio

from ombud.core.clock import Clock
from ombud.llm.catalog import LOCAL_PROVIDER, CatalogConfig, DeploymentConfig
from ombud.llm.routing.attempts import Attempted, AttemptRunner, Sleep
from ombud.llm.routing.breaker import CircuitBreaker
from ombud.observability.metrics import Metrics

T = TypeVar("T")

Filter = Literal["kind", "context", "tier", "region", "cost"]
_ENTITLEMENTS: frozenset[Filter] = frozenset({"tier", "region", "cost"})
"""Filters that refuse a call the deployment could technically serve: the tenant may not."""


@dataclass(frozen=True, slots=True)
class RouteRequest:
    model: str
    """What the client asked for: an alias or a deployment id."""
    kind: Literal["chat", "embedding"]
    tenant_tier: str
    input_tokens: int
    """Estimated prompt tokens."""
    max_output_tokens: int
    """What the call may produce."""
    regions: frozenset[str] | None = None
    """Allowed regions; None: any."""
    subject_region: str | None = None
    """The region of the registered data subject the call is about (residency): only
    deployments in it, or in-process ones (nothing leaves ombud), may take the call."""
    cost_ceiling_usd: float | None = None
    """Refuse deployments whose worst-case cost for this call exceeds it."""
    preferred: str | None = None
    """A deployment id or a region chosen by policy: tried first when eligible."""


@dataclass(frozen=True, slots=True)
class Plan:
    alias: str
    primary: tuple[DeploymentConfig, ...]
    """The alias's own eligible deployments, in load-balanced order."""
    fallbacks: tuple[DeploymentConfig, ...]
    """Eligible deployments of the fallbacks, in fallback order, each once."""

    def attempts_order(self) -> tuple[DeploymentConfig, ...]:
        return self.primary + self.fallbacks


class NoRoute(Exception):
    """No deployment can take the call.

    ``reason`` is ``unknown_model`` (status 404) or ``no_eligible_deployment``: 403 when some
    deployment could serve the request but the tenant may not use it (tier, region, cost
    ceiling), 400 when the request itself fits none (kind, context size).
    """

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status if status is not None else (404 if reason == "unknown_model" else 400)


def worst_case_cost_usd(deployment: DeploymentConfig, request: RouteRequest) -> float:
    """The most the call may cost at the deployment: the whole prompt plus the longest answer
    it may produce (never more than the deployment's own output limit)."""
    output = min(request.max_output_tokens, deployment.max_output_tokens)
    price = deployment.price
    return (
        request.input_tokens * price.input_per_mtok + output * price.output_per_mtok
    ) / 1_000_000


def _refusals(deployment: DeploymentConfig, request: RouteRequest) -> list[Filter]:
    """The filters that exclude the deployment for this call (empty: eligible)."""
    refused: list[Filter] = []
    if deployment.kind != request.kind:
        refused.append("kind")
    output = min(request.max_output_tokens, deployment.max_output_tokens)
    if deployment.max_context_tokens < request.input_tokens + output:
        refused.append("context")
    if deployment.tiers and request.tenant_tier not in deployment.tiers:
        refused.append("tier")
    if (
        request.regions is not None
        and deployment.region not in request.regions
        or (
            request.subject_region is not None
            and deployment.provider != LOCAL_PROVIDER
            and deployment.region != request.subject_region
        )
    ):
        refused.append("region")
    if (
        request.cost_ceiling_usd is not None
        and worst_case_cost_usd(deployment, request) > request.cost_ceiling_usd
    ):
        refused.append("cost")
    return refused


class Router:
    """Plans and runs calls over the catalog's deployments; one per process (it holds the
    breakers, in-flight counts and the retry budget)."""

    def __init__(
        self,
        catalog: CatalogConfig,
        *,
        clock: Clock,
        metrics: Metrics,
        rng: random.Random | None = None,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self._catalog = catalog
        self._rng = rng or random.Random()
        self._deployments = {d.id: d for d in catalog.deployments}
        self._breakers = {
            d.id: CircuitBreaker(d.id, catalog.routing.breaker, clock=clock, metrics=metrics)
            for d in catalog.deployments
        }
        self._runner = AttemptRunner(
            catalog.routing,
            self._breakers,
            clock=clock,
            metrics=metrics,
            rng=self._rng,
            sleep=sleep,
        )
        members: dict[str, list[DeploymentConfig]] = {}
        for deployment in catalog.deployments:
            members.setdefault(deployment.id, []).append(deployment)
            for alias in deployment.aliases:
                if deployment not in members.setdefault(alias, []):
                    members[alias].append(deployment)
        self._members = {name: tuple(found) for name, found in members.items()}
        self._fallbacks = {name: self._resolve_fallbacks(name) for name in self._members}

    def _resolve_fallbacks(self, name: str) -> tuple[tuple[DeploymentConfig, ...], ...]:
        """The fallback groups of ``name``, breadth first; cycles and repeats dropped."""
        seen = {d.id for d in self._members[name]}
        visited = {name}
        queue = list(self._fallback_names(name))
        groups: list[tuple[DeploymentConfig, ...]] = []
        while queue:
            current = queue.pop(0)
            if current in visited or current not in self._members:
                continue
            visited.add(current)
            group = tuple(d for d in self._members[current] if d.id not in seen)
            seen.update(d.id for d in group)
            if group:
                groups.append(group)
            queue.extend(self._fallback_names(current))
        return tuple(groups)

    def _fallback_names(self, name: str) -> list[str]:
        config = self._catalog.aliases.get(name)
        return list(config.fallbacks) if config else []

    # -- planning ---------------------------------------------------------------------------

    def plan(self, request: RouteRequest) -> Plan:
        """The deployments to try for the call, in order; raises :class:`NoRoute`."""
        own = self._members.get(request.model)
        if own is None:
            raise NoRoute("unknown_model", f"the model {request.model!r} does not exist")
        primary = self._balance([d for d in own if not _refusals(d, request)])
        fallbacks: list[DeploymentConfig] = []
        for group in self._fallbacks[request.model]:
            fallbacks.extend(self._balance([d for d in group if not _refusals(d, request)]))
        if not primary and not fallbacks:
            raise self._explain(request)
        if request.preferred is not None:
            primary, fallbacks = _prefer(request.preferred, primary, fallbacks)
        return Plan(request.model, tuple(primary), tuple(fallbacks))

    def _balance(self, candidates: list[DeploymentConfig]) -> list[DeploymentConfig]:
        """Load-balanced order: weighted power of two choices, open breakers last."""
        if len(candidates) < 2:
            return candidates
        usable: list[DeploymentConfig] = []
        refusing: list[DeploymentConfig] = []
        for deployment in candidates:
            is_open = self._breakers[deployment.id].state == "open"
            (refusing if is_open else usable).append(deployment)
        if refusing:
            return self._two_choices(usable) + self._two_choices(refusing)
        return self._two_choices(usable)

    def _two_choices(self, candidates: list[DeploymentConfig]) -> list[DeploymentConfig]:
        remaining = list(candidates)
        ordered: list[DeploymentConfig] = []
        in_flight = self._runner.in_flight
        while len(remaining) > 1:
            first = _weighted_index(remaining, self._rng, skip=-1)
            second = _weighted_index(remaining, self._rng, skip=first)
            if in_flight[remaining[second].id] < in_flight[remaining[first].id]:
                first = second
            ordered.append(remaining.pop(first))
        return ordered + remaining

    def _explain(self, request: RouteRequest) -> NoRoute:
        """Why no deployment of the model can take the call, filter by filter."""
        considered = [*self._members[request.model]]
        considered += [d for group in self._fallbacks[request.model] for d in group]
        excluded: dict[Filter, list[str]] = {}
        entitlement_only = False
        for deployment in considered:
            refused = _refusals(deployment, request)
            for name in refused:
                excluded.setdefault(name, []).append(deployment.id)
            entitlement_only = entitlement_only or set(refused) <= _ENTITLEMENTS
        output = request.max_output_tokens
        texts: dict[Filter, str] = {
            "kind": f"not {request.kind} models",
            "context": f"too small a context for {request.input_tokens} input + up to "
            f"{output} output tokens",
            "tier": f"not open to tier {request.tenant_tier!r}",
            "region": "outside the allowed regions "
            + str(
                sorted(request.regions) if request.regions is not None else [request.subject_region]
            ),
            "cost": f"over the cost ceiling of ${request.cost_ceiling_usd}",
        }
        parts = [f"{texts[name]}: {', '.join(ids)}" for name, ids in excluded.items()]
        message = f"no deployment of {request.model!r} can take this call ({'; '.join(parts)})"
        return NoRoute("no_eligible_deployment", message, status=403 if entitlement_only else 400)

    # -- catalog views ----------------------------------------------------------------------

    def models(self) -> list[tuple[str, str]]:
        """Every name clients may call (aliases and deployment ids) with the kind of provider
        that serves it (``mixed`` when an alias spans provider kinds)."""
        listed: list[tuple[str, str]] = []
        for name in sorted(self._members):
            kinds = {self._provider_kind(d) for d in self._members[name]}
            listed.append((name, kinds.pop() if len(kinds) == 1 else "mixed"))
        return listed

    def _provider_kind(self, deployment: DeploymentConfig) -> str:
        provider = self._catalog.providers.get(deployment.provider)
        return provider.kind if provider else LOCAL_PROVIDER

    def deployment(self, id: str) -> DeploymentConfig:
        """The deployment with this id; KeyError when there is none."""
        return self._deployments[id]

    def breaker(self, deployment_id: str) -> CircuitBreaker:
        """The deployment's breaker; KeyError when there is no such deployment."""
        return self._breakers[deployment_id]

    def in_flight(self, deployment_id: str) -> int:
        """Attempts at the deployment now under way."""
        return self._runner.in_flight[deployment_id]

    # -- running ----------------------------------------------------------------------------

    async def run(
        self,
        plan: Plan,
        attempt: Callable[[DeploymentConfig], Awaitable[T]],
        *,
        is_retryable: Callable[[BaseException], bool] | None = None,
    ) -> Attempted[T]:
        """Try the plan's deployments until one answers; raises AllAttemptsFailed, or at once
        the first non-retryable error (``is_retryable``; default: a retryable UpstreamError)."""
        return await self._runner.run(
            plan.alias, plan.attempts_order(), plan.primary, attempt, is_retryable
        )

    def report_stream_failure(self, deployment_id: str) -> None:
        """A stream died after its first event (after :meth:`run` returned): counts as a
        failure for the deployment's breaker."""
        self._breakers[deployment_id].record_failure()

    def report_stream_success(self, deployment_id: str) -> None:
        """A stream completed: the deployment's breaker counts a success."""
        self._breakers[deployment_id].record_success()


def _weighted_index(candidates: Sequence[DeploymentConfig], rng: random.Random, skip: int) -> int:
    """A weighted random index into ``candidates``, never ``skip``."""
    weights = [0.0 if i == skip else d.weight for i, d in enumerate(candidates)]
    point = rng.random() * sum(weights)
    last = 0
    for index, weight in enumerate(weights):
        if weight:
            last = index
            point -= weight
            if point < 0:
                return index
    return last


def _prefer(
    preferred: str, primary: list[DeploymentConfig], fallbacks: list[DeploymentConfig]
) -> tuple[list[DeploymentConfig], list[DeploymentConfig]]:
    """Move the preferred deployment (by id) to the head of the plan, or the deployments of the
    preferred region to the head of each part; a hint that matches nothing eligible is ignored.
    A preferred fallback deployment is promoted: policy chose it, so it answers as primary."""
    for part in (primary, fallbacks):
        for deployment in part:
            if deployment.id == preferred:
                part.remove(deployment)
                return [deployment, *primary], fallbacks
    if any(d.region == preferred for d in primary + fallbacks):
        primary = sorted(primary, key=lambda d: d.region != preferred)
        fallbacks = sorted(fallbacks, key=lambda d: d.region != preferred)
    return primary, fallbacks
