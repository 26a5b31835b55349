"""Feature views declared in the repository: ``*.yaml`` files of event types and views, read
and checked together, so that a bad declaration stops the service at start, not a request.

A file holds ``event_types`` (a mapping of name to type) and ``views`` (a list); either may be
absent. Names are global across the directory's files: an event type or a view (name and
version) declared twice is an error, as is a view whose source or fields do not exist.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ombud.features.definitions import EventType, FeatureCatalog, FeatureView, view_problems

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml")


class FeatureDeclarationError(ValueError):
    """The declarations are unusable; ``problems`` says each thing wrong, file by file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid feature declarations:\n  " + "\n  ".join(problems))
        self.problems = problems


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_types: dict[str, dict[str, Any]] = {}
    views: list[FeatureView] = []


def load_views(directory: Path) -> FeatureCatalog:
    """Every event type and view declared in ``directory`` (sorted file order).

    A missing directory declares nothing (logged); an empty catalog refuses every event.

    Raises:
        FeatureDeclarationError: a file does not parse or validate, a name is declared twice,
            or a view's source, entity, fields or types do not fit its event type.
    """
    if not directory.is_dir():
        log.warning("no feature declarations: %s is not a directory", directory)
        return FeatureCatalog()
    problems: list[str] = []
    event_types: dict[str, EventType] = {}
    views: dict[tuple[str, int], FeatureView] = {}
    origin: dict[object, str] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES):
        document = _read(path, problems)
        if document is None:
            continue
        for name, body in document.event_types.items():
            parsed = _event_type(path, name, body, problems)
            if parsed is None:
                continue
            if name in event_types:
                problems.append(f"{path.name}: event type {name!r} already in {origin[name]}")
                continue
            event_types[name], origin[name] = parsed, path.name
        for view in document.views:
            key = (view.name, view.version)
            if key in views:
                problems.append(f"{path.name}: view {view.id} already in {origin[key]}")
                continue
            views[key], origin[key] = view, path.name
    for key, view in views.items():
        problems.extend(f"{origin[key]}: {p}" for p in view_problems(view, event_types))
    if problems:
        raise FeatureDeclarationError(problems)
    return FeatureCatalog(event_types=event_types, views=views)


def _read(path: Path, problems: list[str]) -> _Document | None:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        problems.append(f"{path.name}: cannot read: {error}")
        return None
    try:
        return _Document.model_validate(raw if raw is not None else {})
    except ValidationError as error:
        problems.extend(f"{path.name}: {_where(e['loc'])}: {e['msg']}" for e in error.errors())
        return None


def _event_type(
    path: Path, name: str, body: dict[str, Any], problems: list[str]
) -> EventType | None:
    try:
        return EventType.model_validate({**body, "name": name})
    except ValidationError as error:
        problems.extend(
            f"{path.name}: event_types.{name}.{_where(e['loc'])}: {e['msg']}"
            for e in error.errors()
        )
        return None


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "document"
