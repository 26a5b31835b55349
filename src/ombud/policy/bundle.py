"""Policy bundles: a folder of ``.rego`` modules (with ``*_test.rego`` unit tests) and data.

A bundle's version is the SHA-256 over its sorted file names and contents, so the same policies
always carry the same version wherever they are loaded. Loading parses and compiles every policy
module once; the compiled program then answers every decision of that version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ombud.policy._rego import Evaluator, JsonValue, compile_program
from ombud.policy.errors import BundleError

DATA_FILE = "data.json"
"""The bundle's base document, loaded as ``data`` (e.g. ``data.ombud.config``)."""
TEST_SUFFIX = "_test.rego"
DECISION_RULE = "decision"

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_DECISION = re.compile(rf"^{DECISION_RULE}\s*(:=|=|if\b|contains\b)", re.MULTILINE)


def default_bundle_dir() -> Path:
    """The default bundle shipped inside the package (``ombud/policy/bundles/default``)."""
    return Path(str(resources.files("ombud.policy").joinpath("bundles", "default")))


def bundle_files(directory: Path) -> list[Path]:
    """The files that make up a bundle: its ``.rego`` modules and ``data.json``, sorted by name."""
    if not directory.is_dir():
        raise BundleError(f"not a bundle directory: {directory}")
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and (path.suffix == ".rego" or path.name == DATA_FILE)
    )


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """A cheap stamp of the files (name, size, mtime) that changes whenever one is edited."""
    try:
        files = bundle_files(directory)
        return tuple(
            (str(p.relative_to(directory)), (s := p.stat()).st_size, s.st_mtime_ns) for p in files
        )
    except (OSError, BundleError):
        return ()


_IMPURE = re.compile(r"\b(time\.now_ns|rand\.|uuid\.|http\.send|net\.lookup|opa\.runtime)")


@dataclass(frozen=True, slots=True)
class BundleSource:
    """A bundle's files as read from disk, before compiling.

    Attributes:
        directory: Where it was read from.
        modules: ``(relative name, source)`` of each policy module, tests excluded.
        tests: ``(relative name, source)`` of each ``*_test.rego`` module.
        data: The ``data.json`` text, if any.
        version: SHA-256 (hex) over the sorted file names and contents.
    """

    directory: Path
    modules: tuple[tuple[str, str], ...]
    tests: tuple[tuple[str, str], ...]
    data: str | None
    version: str

    @property
    def deterministic(self) -> bool:
        """Whether a decision depends on input and data alone: no clock, randomness or I/O
        built-ins (``time.now_ns``, ``rand.intn``, ``uuid.rfc4122``, ``http.send``, ...), so a
        decision may be reused for an identical input."""
        return not any(_IMPURE.search(source) for _, source in self.modules)

    def entrypoints(self) -> list[str]:
        """``data.<package>.decision`` for every policy package that defines ``decision``."""
        found: set[str] = set()
        for _, source in self.modules:
            package = _PACKAGE.search(source)
            if package and _DECISION.search(source):
                found.add(f"data.{package.group(1)}.{DECISION_RULE}")
        return sorted(found)


def read_bundle(directory: Path) -> BundleSource:
    """Read a bundle folder.

    Raises:
        BundleError: the folder is missing, unreadable, or its ``data.json`` is not a JSON object.
    """
    digest = hashlib.sha256()
    modules: list[tuple[str, str]] = []
    tests: list[tuple[str, str]] = []
    data: str | None = None
    for path in bundle_files(directory):
        name = path.relative_to(directory).as_posix()
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BundleError(f"cannot read: {exc}", file=name) from exc
        # Length-prefixed, so that moving bytes between a name and a content changes the hash.
        for part in (name.encode(), raw):
            digest.update(len(part).to_bytes(8, "big") + part)
        if path.name == DATA_FILE:
            data = _checked_data(name, text)
        elif path.name.endswith(TEST_SUFFIX):
            tests.append((name, text))
        else:
            modules.append((name, text))
    if not modules:
        raise BundleError(f"no policy modules (*.rego) in {directory}")
    return BundleSource(directory, tuple(modules), tuple(tests), data, digest.hexdigest())


def _checked_data(name: str, text: str) -> str:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(exc.msg, file=name, line=exc.lineno, column=exc.colno) from exc
    if not isinstance(parsed, dict):
        raise BundleError("data must be a JSON object", file=name, line=1)
    return text


def _plan_name(entrypoint: str) -> str:
    """``data.ombud.authz.decision`` → ``ombud/authz/decision`` (regopy's entrypoint form)."""
    return entrypoint.removeprefix("data.").replace(".", "/")


@dataclass(slots=True)
class CompiledBundle:
    """A bundle compiled once; :meth:`evaluate` answers decisions against it.

    Attributes:
        source: The files it was compiled from.
        entrypoints: The queries it has plans for (``data.<package>.decision``).
    """

    source: BundleSource
    entrypoints: tuple[str, ...]
    _evaluator: Evaluator = field(repr=False)

    @property
    def version(self) -> str:
        return self.source.version

    def evaluate(self, entrypoint: str, value: JsonValue) -> JsonValue:
        """The value of ``entrypoint`` for ``value`` as input (``None`` when undefined).

        Raises:
            EvaluationError: the entrypoint is unknown to the bundle or the evaluator failed.
        """
        return self._evaluator.evaluate(_plan_name(entrypoint), value)


def compile_bundle(source: BundleSource) -> CompiledBundle:
    """Compile every policy module of ``source`` once, with a plan per entrypoint.

    Each entrypoint is evaluated once on an empty input, so that a reference to a function that
    does not exist is refused now rather than failing decisions later.

    Raises:
        BundleError: a module does not compile; the error names the file and line.
    """
    entrypoints = source.entrypoints()
    if not entrypoints:
        raise BundleError(f"no package in {source.directory} defines `{DECISION_RULE}`")
    program = compile_program(source.modules, source.data, [_plan_name(e) for e in entrypoints])
    evaluator = Evaluator(program)
    for entrypoint in entrypoints:
        try:
            evaluator.evaluate(_plan_name(entrypoint), {})
        except Exception as exc:  # noqa: BLE001 - any evaluator failure refuses the bundle
            raise BundleError(f"{entrypoint} fails on an empty input: {exc}") from exc
    return CompiledBundle(source, tuple(entrypoints), evaluator)


def load_bundle(directory: Path) -> CompiledBundle:
    """Read and compile the bundle in ``directory``.

    Raises:
        BundleError: the bundle is refused; nothing of it is used.
    """
    return compile_bundle(read_bundle(directory))
