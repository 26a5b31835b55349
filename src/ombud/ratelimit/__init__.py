"""Rate limiting: GCRA quotas per principal, tenant, client IP and model, and concurrency caps.

See ``docs/rate-limits.md``. The composition root builds one :class:`RateLimiter` with
:func:`build_rate_limiter`; the request path checks each call with :meth:`RateLimiter.check` and
answers with :func:`rate_limit_headers`.
"""

from ombud.ratelimit.client_ip import client_ip, parse_trusted_proxies
from ombud.ratelimit.concurrency import (
    ConcurrencyLimiter,
    ConcurrencyLimitExceeded,
    build_concurrency_limiter,
)
from ombud.ratelimit.gcra import Outcome, Quota
from ombud.ratelimit.headers import rate_limit_headers
from ombud.ratelimit.limiter import (
    Decision,
    DenialReason,
    QuotaState,
    RateLimiter,
    build_rate_limiter,
)
from ombud.ratelimit.quotas import DefaultQuotas, quota_checks, token_quota
from ombud.ratelimit.store import RateLimitStore, RateLimitStoreUnavailable

__all__ = [
    "ConcurrencyLimitExceeded",
    "ConcurrencyLimiter",
    "Decision",
    "DefaultQuotas",
    "DenialReason",
    "Outcome",
    "Quota",
    "QuotaState",
    "RateLimitStore",
    "RateLimitStoreUnavailable",
    "RateLimiter",
    "build_concurrency_limiter",
    "build_rate_limiter",
    "client_ip",
    "parse_trusted_proxies",
    "quota_checks",
    "rate_limit_headers",
    "token_quota",
]
