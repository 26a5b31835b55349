"""The version lifecycle as data: which action moves a version from which status to which.

::

    draft --submit--> pending_review --approve--> approved --deprecate--> deprecated
      ^                     |
      |                     +--reject--> rejected --revise--> draft

Every other move is a :class:`~ombud.core.errors.Conflict` (409). Nothing here does I/O: the
approval service applies what :func:`next_status` answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ombud.core.errors import Conflict
from ombud.registry.schemas import VersionStatus

READ = "registry.read"
WRITE = "registry.write"
APPROVE = "registry.approve"


class Action(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    DEPRECATE = "deprecate"
    REVISE = "revise"


@dataclass(frozen=True, slots=True)
class Rule:
    sources: frozenset[VersionStatus]
    target: VersionStatus
    permission: str
    """The ``authorize`` action a principal needs to take this step."""


RULES: dict[Action, Rule] = {
    Action.SUBMIT: Rule(frozenset({VersionStatus.DRAFT}), VersionStatus.PENDING_REVIEW, WRITE),
    Action.APPROVE: Rule(
        frozenset({VersionStatus.PENDING_REVIEW}), VersionStatus.APPROVED, APPROVE
    ),
    Action.REJECT: Rule(frozenset({VersionStatus.PENDING_REVIEW}), VersionStatus.REJECTED, APPROVE),
    Action.DEPRECATE: Rule(frozenset({VersionStatus.APPROVED}), VersionStatus.DEPRECATED, APPROVE),
    Action.REVISE: Rule(frozenset({VersionStatus.REJECTED}), VersionStatus.DRAFT, WRITE),
}

DECISIONS = frozenset({Action.APPROVE, Action.REJECT})
"""The actions that decide a review: nobody may take them on their own submission."""


def next_status(current: VersionStatus, action: Action) -> VersionStatus:
    """The status ``action`` leads to from ``current``; :class:`Conflict` when not allowed."""
    rule = RULES[action]
    if current not in rule.sources:
        allowed = " or ".join(sorted(s.value for s in rule.sources))
        raise Conflict(detail=f"cannot {action.value} a {current.value} version (needs {allowed})")
    return rule.target


def permission(action: Action) -> str:
    return RULES[action].permission
