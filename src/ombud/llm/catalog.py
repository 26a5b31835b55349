"""The LLM catalog: providers, deployments, aliases and routing settings, from one file.

A *provider* is an upstream API (its kind and base URL, and the name of its stored credential).
A *deployment* is one model at one provider, with its region, price, limits and the tiers that
may use it. Clients call *aliases*; an alias maps to deployments and, after them, fallbacks.
The built-in deployments ``local`` and ``local-echo`` (provider kind ``local``) are always there
unless the file turns them off.

The file is YAML or JSON (``OMBUD_LLM__CATALOG_FILE``); ``${VAR}`` and ``${VAR:-default}`` in
strings are replaced from the environment, so a base URL can come from the deployment's
environment while the file stays in the repository.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ombud.config import environment

ProviderKind = Literal["openai", "anthropic", "openai_compatible", "local"]
DeploymentKind = Literal["chat", "embedding"]

LOCAL_PROVIDER = "local"
BUILTIN_DEPLOYMENTS = ("local", "local-echo", "local-embed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    kind: ProviderKind
    base_url: str = ""
    """e.g. ``https://api.openai.com/v1``, ``https://api.anthropic.com``; empty for ``local``."""
    credential: str | None = None
    """Name of the provider secret stored with ``ombud providers set-secret``; none: no key sent."""
    headers: dict[str, str] = {}
    """Extra request headers (not secrets: those go in the stored credential)."""
    options: dict[str, str | int | float | bool] = {}

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if value and not value.lower().startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _url_unless_local(self) -> Self:
        if self.kind != "local" and not self.base_url:
            raise ValueError(f"a {self.kind} provider needs a base_url")
        return self


class Price(_Strict):
    """US dollars per million tokens."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)


class DeploymentConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    provider: str
    model: str
    """The model name the upstream expects."""
    kind: DeploymentKind = "chat"
    aliases: list[str] = []
    """Names clients may call it by (its ``id`` always works too)."""
    region: str = "global"
    tiers: list[str] = []
    """Tenant tiers allowed to use it; empty: every tier."""
    price: Price = Price()
    max_context_tokens: int = Field(default=128_000, ge=1)
    max_output_tokens: int = Field(default=4096, ge=1)
    weight: float = Field(default=1.0, gt=0)
    """Share of traffic among the deployments an alias picks from."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Per attempt: connection, first byte and (non-streaming) the whole answer."""
    tpm: int | None = Field(default=None, ge=1)
    """Tokens per minute this deployment may take (all tenants together)."""
    rpm: int | None = Field(default=None, ge=1)
    version: str = "1"
    """Changes when the deployment's behaviour changes (model update): part of the cache key."""


class AliasConfig(_Strict):
    fallbacks: list[str] = []
    """Aliases or deployment ids tried, in order, when every deployment of the alias failed."""


class BreakerConfig(_Strict):
    failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open a deployment's breaker."""
    cooldown_s: float = Field(default=30.0, gt=0)
    """How long an open breaker refuses before letting probes through (half-open)."""
    half_open_probes: int = Field(default=1, ge=1)
    """Probe calls allowed at once while half-open; one success closes the breaker."""


class RoutingConfig(_Strict):
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts per call, over all deployments and fallbacks."""
    backoff_base_s: float = Field(default=0.05, ge=0)
    backoff_max_s: float = Field(default=1.0, ge=0)
    retry_budget_ratio: float = Field(default=0.2, ge=0, le=1)
    """Retries may add at most this share of first attempts (over ``retry_budget_window_s``)."""
    retry_budget_min_per_s: float = Field(default=1.0, ge=0)
    """Retries always allowed per second, so a quiet gateway still retries."""
    retry_budget_window_s: float = Field(default=10.0, gt=0)
    breaker: BreakerConfig = BreakerConfig()


class CatalogConfig(_Strict):
    providers: dict[str, ProviderConfig] = {}
    deployments: list[DeploymentConfig] = []
    aliases: dict[str, AliasConfig] = {}
    routing: RoutingConfig = RoutingConfig()
    builtin: bool = True
    """Add the built-in ``local``, ``local-echo`` and ``local-embed`` deployments."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [d.id for d in self.deployments]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate deployment ids: {duplicates}")
        for deployment in self.deployments:
            if deployment.provider not in self.providers and deployment.provider != LOCAL_PROVIDER:
                raise ValueError(
                    f"deployment {deployment.id}: unknown provider {deployment.provider!r}"
                )
        names = set(ids) | {a for d in self.deployments for a in d.aliases}
        if self.builtin:
            names |= set(BUILTIN_DEPLOYMENTS)
        for alias, config in self.aliases.items():
            if alias not in names:
                raise ValueError(f"alias {alias!r} names no deployment")
            unknown = [f for f in config.fallbacks if f not in names]
            if unknown:
                raise ValueError(f"alias {alias!r}: unknown fallbacks {unknown}")
        return self

    def with_builtins(self) -> CatalogConfig:
        """This catalog plus the built-in local deployments (unless turned off)."""
        if not self.builtin:
            return self
        present = {d.id for d in self.deployments}
        builtins = [
            DeploymentConfig(id="local", provider=LOCAL_PROVIDER, model="local"),
            DeploymentConfig(id="local-echo", provider=LOCAL_PROVIDER, model="local-echo"),
            DeploymentConfig(
                id="local-embed", provider=LOCAL_PROVIDER, model="local-embed", kind="embedding"
            ),
        ]
        extra = [d for d in builtins if d.id not in present]
        providers = dict(self.providers)
        providers.setdefault(LOCAL_PROVIDER, ProviderConfig(kind="local"))
        return self.model_copy(
            update={"deployments": [*self.deployments, *extra], "providers": providers}
        )


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: object, env: Mapping[str, str]) -> object:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = env.get(name)
            if found is None:
                if default is None:
                    raise ValueError(f"the catalog refers to ${{{name}}}, which is not set")
                return default
            return found

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    return value


def load_catalog(path: Path | None, env: Mapping[str, str] | None = None) -> CatalogConfig:
    """The catalog from ``path`` (YAML or JSON), with the built-ins; no path: built-ins only.
    ``${VAR}`` references are taken from ``env`` (default: the process environment)."""
    if path is None:
        return CatalogConfig().with_builtins()
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    variables = environment() if env is None else env
    return CatalogConfig.model_validate(_expand(raw or {}, variables)).with_builtins()
