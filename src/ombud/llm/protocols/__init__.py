"""Wire codecs of the client-facing routes: OpenAI- and Anthropic-compatible request bodies in,
protocol-neutral types (``ombud.llm.types``) out, and results back in each protocol's exact shape.

Nothing here knows HTTP frameworks: the routes hand over the body bytes and write what comes
back. The helpers below are the validation both codecs share, kept as plain dict access because
parsing runs on every request.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn


class ProtocolError(Exception):
    """A request body the protocol refuses: becomes 400 invalid_request_error.

    ``param`` names the offending field in the protocol's own terms (``messages[2].content``)
    so that a client sees which part of its request to fix.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def __repr__(self) -> str:
        return f"ProtocolError({self.message!r}, param={self.param!r})"


def refuse(message: str, param: str | None = None) -> NoReturn:
    raise ProtocolError(message, param=param)


def _no_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


def load_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a ProtocolError saying why not."""
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON and bytes that are not UTF-8/16/32.
        raise ProtocolError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        refuse("The request body must be a JSON object.")
    return value


def type_name(value: object) -> str:
    """A JSON-flavoured name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def required_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        refuse("'model' is required.", "model")
    if not isinstance(model, str) or not model:
        refuse(f"'model' must be a non-empty string, not {type_name(model)}.", "model")
    return model


def optional_str(body: dict[str, Any], name: str, param: str | None = None) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    refuse(f"'{name}' must be a string, not {type_name(value)}.", param or name)


def optional_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    refuse(f"'{name}' must be a boolean, not {type_name(value)}.", name)


def optional_int(body: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    # bool is an int in Python but not a number in JSON; 3.0 is accepted as the integer it is.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        refuse(f"'{name}' must be an integer, not {type_name(value)}.", name)
    if minimum is not None and value < minimum:
        refuse(f"'{name}' must be at least {minimum}, got {value}.", name)
    return value


def optional_number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        refuse(f"'{name}' must be a number, not {type_name(value)}.", name)
    if not low <= value <= high:
        refuse(f"'{name}' must be between {low:g} and {high:g}, got {value}.", name)
    return float(value)


def optional_str_list(body: dict[str, Any], name: str, *, allow_str: bool) -> list[str]:
    """A list of strings (or one string when ``allow_str``), empty when absent."""
    value = body.get(name)
    if value is None:
        return []
    if allow_str and isinstance(value, str):
        return [value]
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                refuse(
                    f"'{name}[{index}]' must be a string, not {type_name(item)}.",
                    f"{name}[{index}]",
                )
        return value
    expected = "a string or an array of strings" if allow_str else "an array of strings"
    refuse(f"'{name}' must be {expected}, not {type_name(value)}.", name)


def text_parts(parts: list[Any], param: str, *, block: str) -> str:
    """The texts of a content list of ``{"type": "text", "text": ...}`` parts, joined by newlines.

    ``block`` is what the protocol calls a part (``part``, ``block``), for the messages.
    """
    if not parts:
        refuse(f"'{param}' must not be an empty array.", param)
    texts: list[str] = []
    for index, part in enumerate(parts):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            refuse(f"'{where}' must be an object, not {type_name(part)}.", where)
        kind = part.get("type")
        if kind != "text":
            refuse(
                f"'{where}.type' {kind!r} is not supported: only text {block}s are accepted.",
                f"{where}.type",
            )
        text = part.get("text")
        if not isinstance(text, str):
            refuse(f"'{where}.text' must be a string, not {type_name(text)}.", f"{where}.text")
        texts.append(text)
    return texts[0] if len(texts) == 1 else "\n".join(texts)
