"""Whether a candidate takes every call its stable version takes.

Callers send what the stable version declares (its validator refuses anything else), and a
subject's arm is sticky: a candidate that refuses such a call answers that subject 422 on every
call, and the rollback monitor never sees it (a refused payload is not a model failure). So a
deployment is refused up front when its candidate's input schema is narrower than the stable
version's.
"""

from __future__ import annotations

from collections.abc import Sequence

from ombud.registry.schemas import FeatureSpec


def narrower_features(stable: Sequence[FeatureSpec], candidate: Sequence[FeatureSpec]) -> list[str]:
    """Why ``candidate`` would refuse features ``stable`` accepts, one line per feature.

    Returns:
        Empty when every payload valid for ``stable`` is valid for ``candidate``.
    """
    old = {spec.name: spec for spec in stable}
    new = {spec.name: spec for spec in candidate}
    problems: list[str] = []
    for name, spec in new.items():
        before = old.get(name)
        if before is None:
            if spec.required:
                problems.append(f"{name}: required, but the stable version does not declare it")
            continue
        problems.extend(f"{name}: {why}" for why in _narrowed(before, spec))
    problems.extend(
        f"{name}: declared by the stable version, unknown to the candidate"
        for name in old
        if name not in new
    )
    return problems


def _narrowed(before: FeatureSpec, after: FeatureSpec) -> list[str]:
    """How ``after`` refuses values of the same feature that ``before`` accepts."""
    if before.type != after.type and (before.type, after.type) != ("integer", "number"):
        return [f"its type changed from {before.type} to {after.type}"]
    why: list[str] = []
    if after.required and not before.required:
        why.append("required, but optional in the stable version")
    if after.type == "category":
        dropped = sorted(set(before.categories or ()) - set(after.categories or ()))
        if dropped:
            why.append(f"categories {', '.join(dropped)} are no longer allowed")
    if after.minimum is not None and (before.minimum is None or after.minimum > before.minimum):
        why.append(f"minimum raised to {after.minimum:g}")
    if after.maximum is not None and (before.maximum is None or after.maximum < before.maximum):
        why.append(f"maximum lowered to {after.maximum:g}")
    return why
