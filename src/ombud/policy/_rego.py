"""A small typed adapter over ``regopy``: compile modules into a bundle, evaluate entrypoints.

regopy's ``Output`` wrapper parses every result twice and ``set_input_term`` re-parses the input
as Rego source (≈ 110 µs); building the input with ``Input`` and reading the output string once
halves the cost of a decision. Only this module touches regopy's API.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import regopy
from regopy.rego_shared import (
    rego_bundle_query,
    rego_bundle_query_entrypoint,
    rego_free_output,
    rego_output_ok,
    rego_output_string,
)

from ombud.policy.errors import BundleError, EvaluationError

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
"""A JSON document as Python values."""

# regopy reports a location as ``(error <len>:<file>|<offset>|<length>`` then ``(errormsg <len>:``.
_ERROR_LOCATION = re.compile(r"\(error \d+:(?P<file>[^|\s]+)\|(?P<offset>\d+)\|")
_ERROR_MESSAGE = re.compile(r"\(errormsg \d+:(?P<message>[^\n]*?)\)?\n")
# ``with`` aborts the whole process inside rego-cpp 1.5.2 (a C++ exception escapes), so it is
# refused before compiling rather than discovered by a crash.
_WITH_KEYWORD = re.compile(r"^[^#\"`\n]*\bwith\b", re.MULTILINE)

_UNDEFINED = "undefined"


def _line_and_column(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def located_error(message: str, sources: Mapping[str, str]) -> BundleError:
    """Turn a regopy compile error into a :class:`BundleError` with file and line."""
    location = _ERROR_LOCATION.search(message)
    found = _ERROR_MESSAGE.search(message)
    text = found.group("message").strip() if found else message.strip().splitlines()[0]
    if location is None or location.group("file") not in sources:
        return BundleError(text, detail=message)
    name = location.group("file")
    line, column = _line_and_column(sources[name], int(location.group("offset")))
    return BundleError(text, file=name, line=line, column=column, detail=message)


def refuse_unsupported(name: str, source: str) -> None:
    """Raise :class:`BundleError` for constructs the embedded evaluator cannot run safely."""
    for match in _WITH_KEYWORD.finditer(source):
        line, _ = _line_and_column(source, match.start())
        raise BundleError(
            "the `with` keyword is not supported by the embedded evaluator; "
            "pass the input as a function argument instead",
            file=name,
            line=line,
        )


@dataclass(frozen=True, slots=True)
class Program:
    """Compiled modules and data with plans for the given entrypoints (``pkg/path/rule``)."""

    handle: regopy.Bundle
    entrypoints: frozenset[str]


def compile_program(
    modules: Sequence[tuple[str, str]], data: str | None, entrypoints: Sequence[str]
) -> Program:
    """Parse and compile ``modules`` (name, source) once.

    Raises:
        BundleError: a module does not parse or compile; the error names its file and line.
    """
    sources = dict(modules)
    for name, source in modules:
        refuse_unsupported(name, source)
    interpreter = regopy.Interpreter()
    try:
        for name, source in modules:
            interpreter.add_module(name, source)
        if data is not None:
            interpreter.add_data_json(data)
        handle = interpreter.build(None, list(entrypoints))
    except regopy.RegoError as exc:
        raise located_error(str(exc), sources) from exc
    if not handle.ok():
        raise BundleError("the bundle did not compile", detail=handle.node().json())
    return Program(handle, frozenset(entrypoints))


def compile_query(modules: Sequence[tuple[str, str]], data: str | None, query: str) -> Program:
    """Compile ``modules`` with one ad-hoc query (used to run Rego unit tests)."""
    sources = dict(modules)
    for name, source in modules:
        refuse_unsupported(name, source)
    interpreter = regopy.Interpreter()
    try:
        for name, source in modules:
            interpreter.add_module(name, source)
        if data is not None:
            interpreter.add_data_json(data)
        return Program(interpreter.build(query), frozenset())
    except regopy.RegoError as exc:
        raise located_error(str(exc), sources) from exc


class Evaluator:
    """Evaluates a :class:`Program`; one interpreter per thread, since an input is its state."""

    def __init__(self, program: Program) -> None:
        self._program = program
        self._local = threading.local()

    def _interpreter(self) -> regopy.Interpreter:
        interpreter: regopy.Interpreter | None = getattr(self._local, "interpreter", None)
        if interpreter is None:
            interpreter = regopy.Interpreter()
            self._local.interpreter = interpreter
        return interpreter

    def evaluate(self, entrypoint: str | None, value: JsonValue) -> JsonValue:
        """The entrypoint's value for ``value`` as input; ``None`` when undefined.

        With ``entrypoint=None`` the program's query runs and its first binding is returned.

        Raises:
            EvaluationError: the evaluator reported an error (an unknown function, a type error).
        """
        interpreter = self._interpreter()
        interpreter.set_input(regopy.Input(value))
        handle = self._program.handle._impl
        if entrypoint is None:
            output = rego_bundle_query(interpreter._impl, handle)
        else:
            if entrypoint not in self._program.entrypoints:
                raise EvaluationError(f"no plan for entrypoint {entrypoint!r}")
            output = rego_bundle_query_entrypoint(interpreter._impl, handle, entrypoint)
        try:
            text: str = rego_output_string(output)
            ok = bool(rego_output_ok(output))
        finally:
            rego_free_output(output)
        return _first_value(text, ok, bindings=entrypoint is None)


def _first_value(text: str, ok: bool, *, bindings: bool) -> JsonValue:
    if text == _UNDEFINED:
        return None
    if not ok or text.startswith("("):
        found = _ERROR_MESSAGE.search(text)
        raise EvaluationError(found.group("message") if found else text.strip()[:200])
    try:
        # strict=False: rego-cpp writes control characters in strings unescaped.
        parsed = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"unreadable evaluator output: {exc}") from exc
    first = parsed[0] if isinstance(parsed, list) else parsed
    if bindings:
        values = list(first.get("bindings", {}).values())
        return values[0] if values else None
    expressions = first.get("expressions", [])
    result: JsonValue = expressions[0] if expressions else None
    return result
