"""A version's ``serving.feature_view`` checked against the declared feature views.

A version that names a view has the inputs a call leaves out read from the online store
(``model.features``, :mod:`ombud.serving.feature_fetch`). Registration
(``POST /v1/registry/models/{name}/versions``) and ``ombud registry check`` refuse a declaration
that could not feed the model:

- the view (name and version) must be declared, and be about data subjects (it is read for the
  call's ``X-Ombud-Subject``);
- at least one of its features must feed an input of the version (an ``input`` feature of the
  same name);
- each feeding feature's type must fit its input: ``category`` feeds ``category`` when every
  value its event field may hold is one of the input's categories; ``integer`` feeds
  ``integer`` or ``number``; ``number`` feeds ``number``; ``boolean`` feeds ``boolean``;
- each ``fallback`` value must be for a feeding feature and be a valid value of its input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ombud.core.errors import InvalidRequest, NotFound
from ombud.features.definitions import SUBJECT, Feature, FeatureCatalog, FeatureView
from ombud.registry.schemas import FeatureSpec, FeatureViewSource
from ombud.serving.features import build_validator, validate_features

_FEEDS: dict[str, frozenset[str]] = {
    "integer": frozenset({"integer", "number"}),
    "number": frozenset({"number"}),
    "boolean": frozenset({"boolean"}),
    "category": frozenset({"category"}),
}
"""The input types a view feature of each type may feed (``string`` feeds none)."""


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """One reason a feature-view declaration is refused, located under ``feature_view``."""

    loc: tuple[str, ...]
    message: str


def feature_view_problems(
    specs: list[FeatureSpec], source: FeatureViewSource, catalog: FeatureCatalog
) -> list[SourceProblem]:
    """Every problem with ``source`` for a version whose inputs are ``specs`` (none: valid)."""
    try:
        view = catalog.view(source.name, source.version)
    except NotFound:
        message = f"feature view {source.name} v{source.version} is not declared"
        return [SourceProblem(("name",), f"{message} (OMBUD_FEATURES__VIEWS_DIR)")]
    if view.entity != SUBJECT:
        message = f"feature view {view.id} is about {view.entity!r}, not data subjects"
        return [SourceProblem(("name",), f"{message}: it cannot be read for X-Ombud-Subject")]
    inputs = {s.name: s for s in specs if s.role == "input"}
    feeding = [f for f in view.features if f.name in inputs]
    if not feeding:
        offered = sorted(f.name for f in view.features)
        message = f"no feature of {view.id} ({offered}) is an input of this version"
        return [SourceProblem(("name",), message)]
    problems = [p for f in feeding for p in _type_problems(catalog, view, f, inputs[f.name])]
    problems += _fallback_problems(source, view, [inputs[f.name] for f in feeding])
    return problems


def _type_problems(
    catalog: FeatureCatalog, view: FeatureView, feature: Feature, spec: FeatureSpec
) -> Iterator[SourceProblem]:
    where, feeds = ("name",), f"{view.id}.{feature.name}"
    if spec.type not in _FEEDS.get(feature.type, frozenset()):
        yield SourceProblem(where, f"{feeds} is {feature.type}; input {spec.name!r} is {spec.type}")
        return
    if spec.type != "category":
        return
    field_name = feature.transformation.field
    event_type = catalog.event_types.get(view.source)
    declared = event_type.fields.get(field_name) if event_type and field_name else None
    served = declared.categories if declared is not None else None
    if served is None:
        accepted = f"input {spec.name!r} accepts only {spec.categories}"
        yield SourceProblem(where, f"{feeds} may hold any string; {accepted}")
        return
    extra = sorted(set(served) - set(spec.categories or ()))
    if extra:
        yield SourceProblem(where, f"{feeds} may hold {extra}, not accepted by input {spec.name!r}")


def _fallback_problems(
    source: FeatureViewSource, view: FeatureView, fed: list[FeatureSpec]
) -> list[SourceProblem]:
    names = {s.name for s in fed}
    problems = [
        SourceProblem(("fallback", name), f"{name!r} is not an input {view.id} feeds")
        for name in source.fallback
        if name not in names
    ]
    optional = [s.model_copy(update={"required": False}) for s in fed]
    values = {k: v for k, v in source.fallback.items() if k in names}
    try:
        validate_features(build_validator("fallback", optional), values)
    except InvalidRequest as exc:
        problems += [
            SourceProblem(("fallback", *(str(p) for p in e.loc[2:])), e.msg) for e in exc.errors
        ]
    return problems
