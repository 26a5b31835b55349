"""The policy engine: the active compiled bundle, hot reload, and decisions with their log.

One compiled bundle is active at a time. At most every ``reload_interval_s`` (by the injected
clock) an evaluation stats the bundle's files; when they changed, the bundle is read, compiled and
swapped in by one assignment, so a decision sees either the old or the new bundle, never a mix.
A bundle that does not compile is refused and the active one keeps answering.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

from ombud.core.clock import Clock, SystemClock
from ombud.core.ids import new_id
from ombud.policy._rego import JsonValue
from ombud.policy.bundle import CompiledBundle, fingerprint, load_bundle
from ombud.policy.decision import (
    InvalidResult,
    PolicyDecision,
    PolicyResult,
    deny,
    input_digest,
    parse_result,
)
from ombud.policy.errors import BundleError, EvaluationError
from ombud.policy.log import DecisionLog, InMemoryDecisionLog

logger = logging.getLogger(__name__)

DEFAULT_PENDING_LIMIT = 10_000


log = logging.getLogger(__name__)


class PolicyEngine:
    """Evaluates entrypoints of the active bundle and keeps every decision for the log.

    Evaluation is synchronous (≈ 0.1 ms): cheaper than a hop to a thread. Decisions wait in a
    bounded buffer until :meth:`flush` hands them to the :class:`DecisionLog`; the server
    flushes every second (and at shutdown), so no call waits for its decisions to commit.
    """

    def __init__(
        self,
        directory: Path,
        *,
        clock: Clock | None = None,
        log: DecisionLog | None = None,
        reload_interval_s: float = 5.0,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
        decision_cache_size: int = 4096,
    ) -> None:
        """Load the bundle in ``directory``.

        Raises:
            BundleError: the first bundle is refused (there is no older one to fall back on).
        """
        self.directory = directory
        self._clock = clock or SystemClock()
        self._log = log or InMemoryDecisionLog()
        self._interval = reload_interval_s
        self._stamp = fingerprint(directory)
        self._bundle: CompiledBundle = load_bundle(directory)
        self._next_check = self._clock.monotonic() + reload_interval_s
        self._reload_lock = threading.Lock()
        self._pending: deque[PolicyDecision] = deque(maxlen=pending_limit)
        # Results by (bundle version, entrypoint, input digest): a deterministic bundle answers
        # an identical input identically, so repeated inputs skip the evaluator. Every decision
        # is still logged, cached or not.
        self._memo: OrderedDict[tuple[str, str, str], PolicyResult] = OrderedDict()
        self._memo_size = decision_cache_size
        self._pure: dict[str, bool] = {}
        self.dropped = 0
        """Decisions pushed out of a full buffer before they were flushed."""
        self.last_error: BundleError | None = None
        """Why the most recent reload was refused; ``None`` after a successful one."""

    @property
    def bundle(self) -> CompiledBundle:
        return self._bundle

    @property
    def version(self) -> str:
        return self._bundle.version

    def reload(self) -> bool:
        """Read and compile the bundle now; True when a new version became active.

        A refused bundle leaves the active one in place and is kept in :attr:`last_error`.
        """
        with self._reload_lock:
            stamp = fingerprint(self.directory)
            try:
                bundle = load_bundle(self.directory)
            except BundleError as exc:
                self._stamp = stamp  # do not retry the same broken files on every check
                self.last_error = exc
                logger.error("policy bundle refused, keeping %s: %s", self.version[:12], exc)
                return False
            self._stamp = stamp
            self.last_error = None
            if bundle.version == self._bundle.version:
                return False
            self._bundle = bundle
            logger.info("policy bundle %s is active", bundle.version[:12])
            return True

    def maybe_reload(self) -> bool:
        """Reload if the check interval has passed and the files changed."""
        now = self._clock.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self._interval
        if fingerprint(self.directory) == self._stamp:
            return False
        return self.reload()

    def evaluate(self, entrypoint: str, value: JsonValue) -> PolicyDecision:
        """Decide ``entrypoint`` for the input ``value``; never raises for a policy fault.

        A missing or malformed result, or an evaluator error, is a deny with the reason.
        """
        self.maybe_reload()
        bundle = self._bundle  # one read: the whole decision uses one bundle
        started = time.perf_counter()
        error: str | None = None
        digest = "-"  # an input that cannot even be digested (NaN, say) is denied as such
        try:
            digest = input_digest(value)
            key = (bundle.version, entrypoint, digest)
            cached = self._memo.get(key)
            if cached is not None:
                result = cached
            else:
                result = parse_result(bundle.evaluate(entrypoint, value))
                self._remember(bundle, key, result)
        except (InvalidResult, EvaluationError) as exc:
            error = f"{entrypoint}: {exc}"
            result = deny(f"policy error (fail closed): {exc}")
        except Exception as exc:  # noqa: BLE001 - any other failure must still be a deny
            log.exception("policy %s failed unexpectedly; denying", entrypoint)
            error = f"{entrypoint}: {type(exc).__name__}"
            result = deny("policy error (fail closed)")
        latency_us = (time.perf_counter() - started) * 1e6
        decision = PolicyDecision(
            id=new_id("pdc"),
            bundle_version=bundle.version,
            entrypoint=entrypoint,
            input_digest=digest,
            result=result,
            latency_us=latency_us,
            decided_at=self._clock.now(),
            error=error,
        )
        self._keep(decision)
        return decision

    def _remember(
        self, bundle: CompiledBundle, key: tuple[str, str, str], result: PolicyResult
    ) -> None:
        if self._memo_size <= 0:
            return
        pure = self._pure.get(bundle.version)
        if pure is None:
            pure = self._pure[bundle.version] = bundle.source.deterministic
        if not pure:
            return
        self._memo[key] = result
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)

    def decide(self, entrypoint: str, value: JsonValue) -> PolicyResult:
        """:meth:`evaluate`, returning the result only."""
        return self.evaluate(entrypoint, value).result

    def _keep(self, decision: PolicyDecision) -> None:
        if self._pending.maxlen is not None and len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(decision)

    @property
    def pending(self) -> int:
        """Decisions not yet handed to the log."""
        return len(self._pending)

    async def flush(self) -> int:
        """Hand every pending decision to the log; how many were written.

        On a log failure the decisions go back to the buffer and the error propagates.
        """
        batch: list[PolicyDecision] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return 0
        try:
            await self._log.record(batch)
        except BaseException:
            self._pending.extendleft(reversed(batch))
            raise
        return len(batch)
