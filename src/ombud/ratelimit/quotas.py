"""The default quotas and the keys a call is checked under.

A call is limited per principal (API key), per tenant, per client IP and per model. Keys are
``<kind>:<id>``; the Redis store puts its namespace before them (``ombud:rl:key:<id>``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ombud.config import RateLimitSettings
from ombud.ratelimit.client_ip import IPAddress
from ombud.ratelimit.gcra import Quota
from ombud.ratelimit.store import Check

PER_KEY = "per-key"
PER_TENANT = "per-tenant"
PER_IP = "per-ip"
PER_MODEL = "per-model"

_IPV6_CLIENT_PREFIX = 64
"""An IPv6 client usually holds a whole /64, so per-IP limits count the /64, not the address."""


@dataclass(frozen=True, slots=True)
class DefaultQuotas:
    """The configured request quotas, built once from settings."""

    per_key: Quota
    per_tenant: Quota
    per_ip: Quota
    per_model: Quota

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> DefaultQuotas:
        """Quotas from ``OMBUD_RATELIMIT__PER_{KEY,TENANT,IP,MODEL}_{RATE,BURST}``."""
        return cls(
            per_key=Quota(PER_KEY, settings.per_key_rate, settings.per_key_burst),
            per_tenant=Quota(PER_TENANT, settings.per_tenant_rate, settings.per_tenant_burst),
            per_ip=Quota(PER_IP, settings.per_ip_rate, settings.per_ip_burst),
            per_model=Quota(PER_MODEL, settings.per_model_rate, settings.per_model_burst),
        )

    def checks(
        self,
        *,
        principal_id: str | None = None,
        tenant_id: str | None = None,
        client_ip: IPAddress | str | None = None,
        model: str | None = None,
    ) -> list[Check]:
        """The checks for one call; a dimension that is ``None`` is not checked.

        Args:
            principal_id: The authenticated principal (API key or user).
            tenant_id: The principal's tenant.
            client_ip: The client address from :func:`ombud.ratelimit.client_ip.client_ip`.
            model: The model or alias called; limits it across all tenants.
        """
        checks: list[Check] = []
        if principal_id is not None:
            checks.append((f"key:{principal_id}", self.per_key))
        if tenant_id is not None:
            checks.append((f"tenant:{tenant_id}", self.per_tenant))
        if client_ip is not None:
            checks.append((f"ip:{ip_key(client_ip)}", self.per_ip))
        if model is not None:
            checks.append((f"model:{model}", self.per_model))
        return checks


def ip_key(address: IPAddress | str) -> str:
    """The canonical key part of a client address: IPv4 as is, IPv6 as its /64.

    Canonical, so that ``2001:DB8::1`` and ``2001:db8:0::1`` share one budget.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, _IPV6_CLIENT_PREFIX), strict=False))


def quota_checks(
    settings: RateLimitSettings,
    *,
    principal_id: str | None = None,
    tenant_id: str | None = None,
    client_ip: IPAddress | str | None = None,
    model: str | None = None,
) -> list[Check]:
    """The default checks for one call, straight from settings.

    A hot path should build :class:`DefaultQuotas` once and call its ``checks``; this is the
    same for callers that hold only the settings.
    """
    return DefaultQuotas.from_settings(settings).checks(
        principal_id=principal_id, tenant_id=tenant_id, client_ip=client_ip, model=model
    )


def token_quota(name: str, tokens_per_minute: float, burst_tokens: int) -> Quota:
    """A weighted quota of LLM tokens per minute; check it with ``cost`` = the call's tokens."""
    return Quota(name, tokens_per_minute / 60.0, burst_tokens, unit="tokens")
