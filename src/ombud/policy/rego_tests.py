"""Runs a bundle's Rego unit tests: every rule named ``test_*`` in a ``*_test.rego`` module.

A test passes when its rule is true. Each test package is compiled with the bundle's policies
and data and queried once; a rule that is undefined or false is a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ombud.policy._rego import Evaluator, compile_query
from ombud.policy.bundle import read_bundle
from ombud.policy.errors import BundleError, EvaluationError

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """One Rego unit test.

    Attributes:
        file: The ``*_test.rego`` file.
        name: ``package.test_rule``.
        passed: Whether the rule was true.
        detail: Why it failed, when it did.
    """

    __test__ = False  # not a pytest test class

    file: str
    name: str
    passed: bool
    detail: str = ""


def _declared_tests(source: str) -> tuple[str | None, list[str]]:
    package = _PACKAGE.search(source)
    names = list(dict.fromkeys(_TEST_RULE.findall(source)))
    return (package.group(1) if package else None), names


def run_bundle_tests(directory: Path) -> list[TestOutcome]:
    """Run every test of the bundle in ``directory``.

    Raises:
        BundleError: the bundle or its tests do not compile.
    """
    source = read_bundle(directory)
    modules = source.modules + source.tests
    outcomes: list[TestOutcome] = []
    for file, text in source.tests:
        package, names = _declared_tests(text)
        if package is None:
            raise BundleError("a test module needs a package", file=file, line=1)
        program = compile_query(modules, source.data, f"x = data.{package}")
        try:
            results = Evaluator(program).evaluate(None, {})
        except EvaluationError as exc:
            outcomes += [TestOutcome(file, f"{package}.{n}", False, str(exc)) for n in names]
            continue
        passed = results if isinstance(results, dict) else {}
        for name in names:
            ok = passed.get(name) is True
            outcomes.append(
                TestOutcome(file, f"{package}.{name}", ok, "" if ok else "false or undefined")
            )
    return outcomes
