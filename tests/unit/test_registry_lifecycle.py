"""The version state machine: every allowed step, and every other one refused with 409."""

from __future__ import annotations

import pytest

from ombud.core.errors import Conflict
from ombud.registry.lifecycle import APPROVE, DECISIONS, WRITE, Action, next_status, permission
from ombud.registry.schemas import VersionStatus as S

ALLOWED = {
    (S.DRAFT, Action.SUBMIT): S.PENDING_REVIEW,
    (S.PENDING_REVIEW, Action.APPROVE): S.APPROVED,
    (S.PENDING_REVIEW, Action.REJECT): S.REJECTED,
    (S.APPROVED, Action.DEPRECATE): S.DEPRECATED,
    (S.REJECTED, Action.REVISE): S.DRAFT,
}
REFUSED = [(s, a) for s in S for a in Action if (s, a) not in ALLOWED]


@pytest.mark.parametrize(("current", "action"), list(ALLOWED))
def test_an_allowed_step_leads_to_its_status(current: S, action: Action) -> None:
    assert next_status(current, action) is ALLOWED[(current, action)]


@pytest.mark.parametrize(("current", "action"), REFUSED)
def test_every_other_step_is_a_conflict(current: S, action: Action) -> None:
    with pytest.raises(Conflict, match=f"cannot {action.value} a {current.value} version"):
        next_status(current, action)


def test_deprecated_is_final() -> None:
    assert all((S.DEPRECATED, a) in REFUSED for a in Action)


def test_decisions_need_the_approve_permission_and_authoring_the_write_one() -> None:
    assert {Action.APPROVE, Action.REJECT} == DECISIONS
    assert {a for a in Action if permission(a) == APPROVE} == {
        Action.APPROVE, Action.REJECT, Action.DEPRECATE,
    }  # fmt: skip
    assert {a for a in Action if permission(a) == WRITE} == {Action.SUBMIT, Action.REVISE}
