"""Counting a routed call whose model failed: prediction rows hold only successes, so without
this a candidate that fails every call would look healthy to the rollback monitor."""

from __future__ import annotations

import logging
from types import TracebackType

import anyio

from ombud.core.clock import Clock
from ombud.core.errors import Problem
from ombud.core.ids import new_id
from ombud.deployments.records import DeploymentFailure
from ombud.gateway.call import Call
from ombud.records.writer import RecordWriter

log = logging.getLogger(__name__)

TIMEOUT = "timeout"


def error_kind(exc: BaseException | None) -> str:
    """A short, stable name for a failure: a problem's kind, else the exception's type."""
    if exc is None or isinstance(exc, TimeoutError):
        return TIMEOUT
    if isinstance(exc, Problem):
        return exc.kind
    return type(exc).__name__[:64]


class FailureWatch:
    """Pushed on a routed call's exit stack: when the chain ends without the model having
    answered (it failed to load, raised, or the call timed out in it), one
    :class:`DeploymentFailure` is recorded for the call's arm. Never raises into the call."""

    def __init__(
        self, records: RecordWriter, clock: Clock, call: Call, deployment_id: str, arm: str
    ) -> None:
        self._records = records
        self._clock = clock
        self._call = call
        self._deployment_id = deployment_id
        self._arm = arm
        self.loaded = False
        """Set once the routed version is loaded; before that, any failure is a load failure."""

    def model_failed(self, exc: BaseException | None) -> bool:
        if exc is not None and not isinstance(exc, Exception):
            return False  # cancelled: the client went away, not the model
        if self._call.output or (exc is None and self._call.result is not None):
            return False
        return not self.loaded or bool(self._call.payload)

    async def on_exit(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if not self.model_failed(exc):
            return False
        failure = DeploymentFailure(
            id=new_id("dfl"), deployment_id=self._deployment_id, arm=self._arm,
            error=error_kind(exc), request_id=self._call.request_id,
            created_at=self._clock.now(),
        )  # fmt: skip
        try:
            with anyio.CancelScope(shield=True):
                await self._records.write([failure])
        except Exception as error:  # noqa: BLE001 - accounting must never change the answer
            log.error("could not record a failure of deployment %s: %s", self._deployment_id,
                      type(error).__name__)  # fmt: skip
        return False
