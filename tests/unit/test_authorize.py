from __future__ import annotations

import pytest

from ombud.authz import Authorizer, Resource, RoleBasedDecider
from ombud.core.errors import Forbidden, NotFound
from ombud.identity.principal import Principal, PrincipalKind


def _principal(*roles: str, tenant: str = "ten_a") -> Principal:
    return Principal(
        id="prn_1", name="p", kind=PrincipalKind.SERVICE, roles=frozenset(roles),
        tenant_id=tenant, tenant_slug="a", tenant_tier="standard", credential_id="key_1",
    )  # fmt: skip


AUTHORIZER = Authorizer(RoleBasedDecider())


def test_a_granted_role_is_allowed() -> None:
    decision = AUTHORIZER.authorize(_principal("analyst"), "model.predict", Resource("model"))
    assert decision.allowed
    assert decision.decider == "rbac"


def test_a_missing_role_is_forbidden_with_the_roles_needed() -> None:
    with pytest.raises(Forbidden, match="analyst"):
        AUTHORIZER.authorize(_principal("auditor"), "model.predict", Resource("model"))


def test_admin_may_do_everything_and_unknown_actions_are_refused() -> None:
    assert AUTHORIZER.authorize(_principal("admin"), "crypto.rotate", Resource("keys")).allowed
    with pytest.raises(Forbidden, match="unknown action"):
        AUTHORIZER.authorize(_principal("analyst"), "made.up", Resource("x"))


def test_another_tenants_object_looks_exactly_like_a_missing_one() -> None:
    foreign = Resource("prediction", "pred_1", tenant_id="ten_b")
    with pytest.raises(NotFound) as caught:
        AUTHORIZER.authorize(_principal("admin"), "prediction.read", foreign)
    assert caught.value.status == 404
    assert caught.value.kind == "not_found"


def test_even_admin_is_refused_an_unknown_action() -> None:
    with pytest.raises(Forbidden, match="unknown action"):
        AUTHORIZER.authorize(_principal("admin"), "model.predcit", Resource("model"))
