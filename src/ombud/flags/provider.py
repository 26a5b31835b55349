"""ombud's OpenFeature provider: flags from the database, evaluated from an in-memory snapshot.

The snapshot is reloaded at most every ``ttl_s`` seconds (``OMBUD_FLAGS__TTL_S``), on the first
asynchronous evaluation after it went stale, so the request path makes no database query per
call and a change made in another process applies within ``ttl_s``. A change made through this
process's API drops the snapshot at once (:meth:`FlagProvider.invalidate`). The synchronous
resolve methods read whatever snapshot is loaded; only the asynchronous ones reload it.

If a reload fails the last snapshot stays in use (an empty one if none was ever loaded) and the
next reload is tried ``ttl_s`` later, so a database outage neither changes what flags serve nor
turns every call into a failing query.

The OpenFeature SDK keeps providers in a process-wide registry. :func:`open_client` binds a
provider under a domain of its own, so two containers in one process (tests) never see each
other's flags, and :func:`close_client` unbinds it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar, cast

import anyio
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata
from openfeature.provider.no_op_provider import NoOpProvider
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.core.clock import Clock
from ombud.core.ids import new_id
from ombud.flags._views import definition
from ombud.flags.evaluation import FlagDefinition, FlagType, evaluate
from ombud.flags.repository import FlagRepository

log = logging.getLogger(__name__)

T = TypeVar("T")
MaybeContext = EvaluationContext | None
FlagLoader = Callable[[], Awaitable[Mapping[str, FlagDefinition]]]
"""Reads every flag; the provider calls it at most once per ``ttl_s``."""

TENANT = "tenant"
PRINCIPAL = "principal"
"""Evaluation-context attributes the provider reads: the tenant's slug (for overrides) and the
principal's id (the targeting key when the context has none)."""

_SERVES: Mapping[FlagType, frozenset[FlagType]] = {
    FlagType.BOOLEAN: frozenset({FlagType.BOOLEAN}),
    FlagType.STRING: frozenset({FlagType.STRING}),
    FlagType.INTEGER: frozenset({FlagType.INTEGER}),
    FlagType.FLOAT: frozenset({FlagType.FLOAT, FlagType.INTEGER}),
    FlagType.OBJECT: frozenset({FlagType.OBJECT}),
}
"""Requested type → the stored flag types that can answer it (an integer is a float too)."""


def database_loader(sessions: async_sessionmaker[AsyncSession]) -> FlagLoader:
    """A loader reading the ``feature_flags`` table in a short session of its own."""

    async def load() -> Mapping[str, FlagDefinition]:
        async with sessions() as session:
            rows = await FlagRepository(session).all()
        return {row.key: definition(row) for row in rows}

    return load


class FlagProvider(AbstractProvider):
    """Resolves flags of every OpenFeature type from the snapshot, with OpenFeature's reasons.

    Args:
        load: Reads every flag (the database, or a fake in tests).
        clock: Decides when the snapshot is stale.
        ttl_s: Longest the snapshot is used before it is reloaded.
    """

    def __init__(self, load: FlagLoader, clock: Clock, *, ttl_s: float) -> None:
        super().__init__()
        self.domain = new_id("ombud-flags")
        self._load = load
        self._clock = clock
        self._ttl_s = ttl_s
        self._flags: Mapping[str, FlagDefinition] = {}
        self._loaded_at: float | None = None
        self._generation = 0
        """Bumped by every invalidation: a reload that began before one is not fresh."""
        self._lock = anyio.Lock()

    def get_metadata(self) -> Metadata:
        return Metadata(name="ombud")

    def shutdown(self) -> None:
        self._flags = {}
        self._loaded_at = None

    def invalidate(self) -> None:
        """Reload on the next asynchronous evaluation (after a change in this process).

        A reload already under way may have read the flags before the change committed: the
        generation it started under is then out of date, so its snapshot is served but not
        marked fresh, and the next evaluation reloads again.
        """
        self._generation += 1
        self._loaded_at = None

    async def refresh_if_stale(self) -> None:
        """Reload the snapshot if it is older than ``ttl_s``; one reload at a time."""
        if not self._stale():
            return
        async with self._lock:
            if not self._stale():
                return
            started = self._clock.monotonic()
            generation = self._generation
            try:
                flags = await self._load()
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("could not reload feature flags (%s); keeping the last snapshot", exc)
            else:
                self._flags = flags
            if generation == self._generation:
                self._loaded_at = started

    def _stale(self) -> bool:
        loaded_at = self._loaded_at
        return loaded_at is None or self._clock.monotonic() - loaded_at >= self._ttl_s

    # --- synchronous resolution (the snapshot as it is) --------------------------------

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: MaybeContext = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.BOOLEAN)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: MaybeContext = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.STRING)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: MaybeContext = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.INTEGER)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: MaybeContext = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.FLOAT)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: MaybeContext = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.OBJECT)

    # --- asynchronous resolution (reloads a stale snapshot first) ----------------------

    async def resolve_boolean_details_async(
        self, flag_key: str, default_value: bool, evaluation_context: MaybeContext = None
    ) -> FlagResolutionDetails[bool]:
        await self.refresh_if_stale()
        return self.resolve_boolean_details(flag_key, default_value, evaluation_context)

    async def resolve_string_details_async(
        self, flag_key: str, default_value: str, evaluation_context: MaybeContext = None
    ) -> FlagResolutionDetails[str]:
        await self.refresh_if_stale()
        return self.resolve_string_details(flag_key, default_value, evaluation_context)

    async def resolve_integer_details_async(
        self, flag_key: str, default_value: int, evaluation_context: MaybeContext = None
    ) -> FlagResolutionDetails[int]:
        await self.refresh_if_stale()
        return self.resolve_integer_details(flag_key, default_value, evaluation_context)

    async def resolve_float_details_async(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: MaybeContext = None,
    ) -> FlagResolutionDetails[float]:
        await self.refresh_if_stale()
        return self.resolve_float_details(flag_key, default_value, evaluation_context)

    async def resolve_object_details_async(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: MaybeContext = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        await self.refresh_if_stale()
        return self.resolve_object_details(flag_key, default_value, evaluation_context)

    # --- the one resolution -------------------------------------------------------------

    def _resolve(
        self, key: str, default: T, context: EvaluationContext | None, wanted: FlagType
    ) -> FlagResolutionDetails[T]:
        flag = self._flags.get(key)
        if flag is None:
            return FlagResolutionDetails(
                default, ErrorCode.FLAG_NOT_FOUND, f"no flag {key!r}", Reason.ERROR
            )
        if flag.type not in _SERVES[wanted]:
            return FlagResolutionDetails(
                default, ErrorCode.TYPE_MISMATCH,
                f"{key!r} is a {flag.type} flag, not {wanted}", Reason.ERROR,
            )  # fmt: skip
        tenant, targeting_key = targeting(context)
        resolved = evaluate(flag, tenant, targeting_key)
        metadata = {"type": flag.type.value}
        if resolved.value is None:
            return FlagResolutionDetails(default, reason=resolved.reason, flag_metadata=metadata)
        value = float(cast(float, resolved.value)) if wanted is FlagType.FLOAT else resolved.value
        return FlagResolutionDetails(
            cast(T, value), reason=resolved.reason, variant=resolved.variant,
            flag_metadata=metadata,
        )  # fmt: skip


def targeting(context: EvaluationContext | None) -> tuple[str | None, str | None]:
    """The tenant and the targeting key (falling back to the principal) of ``context``."""
    if context is None:
        return None, None
    tenant = context.attributes.get(TENANT)
    principal = context.attributes.get(PRINCIPAL)
    key = context.targeting_key or (principal if isinstance(principal, str) else None)
    return (tenant if isinstance(tenant, str) else None), key


def open_client(provider: FlagProvider) -> OpenFeatureClient:
    """Bind ``provider`` under its own domain and return a client for that domain."""
    api.set_provider_and_wait(provider, provider.domain)
    return api.get_client(provider.domain)


def close_client(provider: FlagProvider) -> None:
    """Unbind ``provider`` and shut it down.

    The SDK has no call that forgets a domain, so a no-op provider takes the domain over: a
    client left somewhere answers every flag with its default, never with stale flags.
    """
    api.set_provider_and_wait(NoOpProvider(), provider.domain)
    provider.shutdown()
