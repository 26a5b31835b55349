"""Validating a request's features against a model version's declared inputs.

A strict Pydantic model is built once per version from its :class:`FeatureSpec` list, so unknown,
missing and mistyped features are all reported together, each with its location.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ombud.core.errors import FieldError, InvalidRequest
from ombud.registry.schemas import FeatureSpec

_SCALARS: dict[str, type] = {"number": float, "integer": int, "boolean": bool}


def build_validator(model_name: str, specs: list[FeatureSpec]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for spec in specs:
        annotation: Any = (
            Literal[tuple(spec.categories or ())]
            if spec.type == "category"
            else _SCALARS[spec.type]
        )
        if not spec.required:
            annotation = annotation | None
        fields[spec.name] = (
            annotation,
            Field(
                default=... if spec.required else None,
                ge=spec.minimum,
                le=spec.maximum,
                description=spec.description or None,
            ),
        )
    # NaN and infinity are not feature values (and would poison policies and records).
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    return create_model(f"Features[{model_name}]", __config__=config, **fields)


def validate_features(validator: type[BaseModel], payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's features as validated values, or :class:`InvalidRequest` listing every
    offending field under ``body.features``."""
    try:
        parsed = validator.model_validate(payload)
    except ValidationError as exc:
        errors = [
            FieldError(
                loc=("body", "features", *(str(p) for p in err["loc"])),
                msg=_message(err["type"], err["msg"]),
                type=err["type"],
            )
            for err in exc.errors()
        ]
        names = ", ".join(sorted({str(e.loc[2]) for e in errors if len(e.loc) > 2}))
        raise InvalidRequest(detail=f"invalid features: {names}", errors=errors) from None
    return parsed.model_dump(exclude_none=True)


def _message(kind: str, msg: str) -> str:
    return "Unknown feature" if kind == "extra_forbidden" else msg
