"""The ``Call``: everything the stages of one request know and find."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ombud.core.errors import Unauthenticated
from ombud.identity.credentials import PresentedCredentials
from ombud.identity.principal import Principal
from ombud.registry.schemas import ModelVersion

if TYPE_CHECKING:
    from ombud.llm.state import LlmState
    from ombud.records.writer import Record


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a stage noticed: kept on the call, recorded with it."""

    stage: str
    kind: str
    detail: str = ""


@dataclass(eq=False)
class Call:
    """One AI call on its way through the chain.

    The first block is what the HTTP edge saw; the rest is filled in by stages.
    """

    route: str
    request_id: str
    body: bytes = b""
    credentials: PresentedCredentials = field(default_factory=PresentedCredentials)
    client_ip: str | None = None
    target: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cost: int = 1
    """Weight of the call against rate quotas (1 per request; tokens for LLM calls)."""

    principal: Principal | None = None
    purpose: str | None = None
    subject: str | None = None
    subject_region: str | None = None
    """The region of ``subject`` when it is a registered data subject (``privacy.preferences``
    sets it): inference for it routes only to what may serve that region (residency)."""
    feature: str | None = None
    model_version: ModelVersion | None = None
    deployment_id: str | None = None
    """The rollout that chose ``model_version``, when one is active for the model."""
    arm: str | None = None
    """Which arm of that rollout served the call (``stable``, ``canary``, ``a``, ``b``)."""
    feature_views: dict[str, int] = field(default_factory=dict)
    """Feature views (name → version) the call's features were read from."""
    explanation: dict[str, Any] | None = None
    """Per-feature contributions to the model's score, for high-impact models."""
    payload: dict[str, Any] = field(default_factory=dict)
    input_texts: list[str] = field(default_factory=list)
    """Free text for a model (prompts, retrieved documents); input guards read and rewrite it."""
    output_texts: list[str] = field(default_factory=list)
    """Free text coming back from a model; output guards read and rewrite it."""
    canary: str | None = None
    """A token planted in the call's system prompt; seen in an output, the prompt leaked."""
    output: dict[str, Any] = field(default_factory=dict)
    result: BaseModel | None = None
    records: list[Record] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    response_headers: dict[str, str] = field(default_factory=dict)
    route_hint: str | None = None
    """A deployment or region chosen by policy, for the routing stage."""
    obligations: dict[str, Any] = field(default_factory=dict)
    """Conditions policy attached to the call (e.g. ``redact_pii``, ``max_output_chars``)."""
    llm: LlmState | None = None
    """The LLM routes' own state (parsed request, plan, budget hold, cache entry, answer)."""
    exit_stack: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

    @property
    def tenant_id(self) -> str | None:
        return self.principal.tenant_id if self.principal else None

    def require_principal(self) -> Principal:
        """The authenticated principal; a stage placed before ``authenticate`` is a bug."""
        if self.principal is None:
            raise Unauthenticated(detail="the call is not authenticated")
        return self.principal

    def require_model(self) -> ModelVersion:
        if self.model_version is None:
            raise RuntimeError(f"{self.route}: no model resolved before this stage")
        return self.model_version
