from __future__ import annotations

from typing import Any

import pytest

from ombud.core.errors import InvalidRequest
from ombud.registry.schemas import FeatureSpec
from ombud.serving.features import build_validator, validate_features

SPECS = [
    FeatureSpec(name="amount", type="number", minimum=0, maximum=1000),
    FeatureSpec(name="months", type="integer"),
    FeatureSpec(name="housing", type="category", categories=["own", "rent"]),
    FeatureSpec(name="phone", type="boolean"),
    FeatureSpec(name="sex", type="category", categories=["female", "male"], role="protected",
                required=False),
]  # fmt: skip
VALID: dict[str, Any] = {"amount": 10, "months": 3, "housing": "own", "phone": False}


def _errors(payload: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        validate_features(build_validator("m", SPECS), payload)
    return {str(e.loc[-1]): e.type for e in caught.value.errors}


def test_valid_features_pass_and_optional_ones_may_be_absent() -> None:
    validator = build_validator("m", SPECS)
    assert validate_features(validator, VALID) == VALID
    assert validate_features(validator, {**VALID, "sex": "male"})["sex"] == "male"


def test_an_int_is_accepted_for_a_number_but_not_the_reverse() -> None:
    assert _errors({**VALID, "amount": 10, "months": 3.0}) == {"months": "int_type"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"months": "3"}, {"months": "int_type"}),
        ({"phone": "yes"}, {"phone": "bool_type"}),
        ({"amount": 1000.5}, {"amount": "less_than_equal"}),
        ({"housing": "castle"}, {"housing": "literal_error"}),
        ({"sex": "unknown"}, {"sex": "literal_error"}),
        ({"zip": "12345"}, {"zip": "extra_forbidden"}),
    ],
)
def test_each_offending_field_is_reported(change: dict[str, Any], expected: dict[str, str]) -> None:
    assert _errors({**VALID, **change}) == expected


def test_all_missing_fields_are_reported_together() -> None:
    assert _errors({}) == dict.fromkeys(("amount", "months", "housing", "phone"), "missing")


def test_category_specs_need_categories() -> None:
    with pytest.raises(ValueError, match="categories"):
        FeatureSpec(name="x", type="category")
    with pytest.raises(ValueError, match="categories"):
        FeatureSpec(name="x", type="integer", categories=["a"])
