"""The stage port."""

from __future__ import annotations

from typing import Protocol

from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome


class Stage(Protocol):
    """One small step of the request path.

    Return ``None`` to continue, or an :data:`~ombud.gateway.outcomes.Outcome`. Raising a
    :class:`~ombud.core.errors.Problem` is the same as returning ``Deny(problem)``.
    """

    name: str

    async def __call__(self, call: Call) -> Outcome: ...
