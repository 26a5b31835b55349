"""``context``: the declared purpose, subject and feature headers, checked for shape."""

from __future__ import annotations

import re

from ombud.core.errors import FieldError, InvalidRequest
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome

PURPOSE_HEADER = "x-ombud-purpose"
SUBJECT_HEADER = "x-ombud-subject"
FEATURE_HEADER = "x-ombud-feature"

_SLUG = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")
_OPAQUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_RULES = {
    PURPOSE_HEADER: (_SLUG, "a lower-case slug such as credit_scoring"),
    SUBJECT_HEADER: (_OPAQUE_ID, "a pseudonymous id of up to 128 characters [A-Za-z0-9_.:-]"),
    FEATURE_HEADER: (_SLUG, "a lower-case slug naming the product feature"),
}


class DeclaredContext:
    name = "context"

    async def __call__(self, call: Call) -> Outcome:
        errors: list[FieldError] = []
        values: dict[str, str | None] = {}
        for header, (pattern, shape) in _RULES.items():
            value = call.headers.get(header)
            if value is not None and not pattern.match(value):
                errors.append(
                    FieldError(("header", header), f"must be {shape}", "string_pattern_mismatch")
                )
            values[header] = value
        if errors:
            raise InvalidRequest(detail="invalid context headers", errors=errors)
        call.purpose = values[PURPOSE_HEADER]
        call.subject = values[SUBJECT_HEADER]
        call.feature = values[FEATURE_HEADER]
        return None
