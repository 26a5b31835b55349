"""Models declared in the repository: one YAML file per model, checked like code.

A model file states what the registry should hold for a model (its versions, their input
contract, serving configuration and model card) so that a change to a model is reviewed and
tested in the same pipeline as a change to code. The shapes reuse the registry's own schemas,
so a file that passes :func:`check` describes versions the registry would accept.

An artifact path is optional: a trained artifact is not always reproducible byte for byte, so
a file may declare the format only. When a path is given (relative to the file), the file must
exist and match the declared SHA-256.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ombud.core.errors import InvalidRequest
from ombud.deployments.schemas import DeploymentCreate
from ombud.features.definitions import FeatureCatalog
from ombud.registry.feature_source import feature_view_problems
from ombud.registry.golden import check_rows
from ombud.registry.promotion_schemas import GoldenCreate, PromotionPolicy
from ombud.registry.schemas import (
    ArtifactFormat,
    CardFields,
    FeatureSpec,
    ModelCreate,
    ServingConfig,
)

SUFFIXES = (".yaml", ".yml")
DOCUMENT = "document"
"""The location of a problem that concerns a whole file."""


class DeclaredArtifact(BaseModel):
    """Where a version's artifact lies, if it is kept in the repository, and its digest."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, min_length=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _digest_for_path(self) -> Self:
        if self.path is not None and self.sha256 is None:
            raise ValueError("an artifact path needs its sha256")
        return self


class DeclaredVersion(CardFields):
    """One version: its artifact, input contract, serving configuration and model card."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    format: ArtifactFormat
    artifact: DeclaredArtifact = Field(default_factory=DeclaredArtifact)
    features: list[FeatureSpec] = Field(min_length=1, max_length=500)
    serving: ServingConfig = Field(default_factory=ServingConfig)


class DeclaredPromotion(PromotionPolicy):
    """The model's promotion gate: its thresholds and, optionally, its golden dataset (a JSON
    file of ``{"rows": [{"features", "label"}]}``, relative to the model file)."""

    golden: str | None = Field(default=None, min_length=1)


class DeclaredModel(ModelCreate):
    """A model file: the registry's model fields plus the versions it declares."""

    versions: list[DeclaredVersion] = Field(min_length=1)
    promotion: DeclaredPromotion | None = None
    deployment: dict[str, Any] | None = None
    """The model's rollout as ``POST /v1/deployments`` takes it, without ``model`` (the file's
    own); checked with :class:`~ombud.deployments.schemas.DeploymentCreate`."""


@dataclass(frozen=True)
class DeclarationProblem:
    """One reason a model file is refused: the file, where in it, and why."""

    file: Path
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.location}: {self.message}"


class DeclarationError(ValueError):
    """Raised by :func:`load_declared` when the directory does not pass :func:`check`."""

    def __init__(self, problems: list[DeclarationProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def check(
    directory: Path,
    regions: Collection[str] | None = None,
    views: FeatureCatalog | None = None,
) -> list[DeclarationProblem]:
    """Every problem with the model files in ``directory``, in file order; empty when valid.

    With ``regions`` (the configured ones), a version's ``serving.regions`` must name only
    those. With ``views`` (the declared feature views), a version's ``serving.feature_view``
    must fit them (:mod:`ombud.registry.feature_source`).
    """
    return _scan(directory, regions, views)[1]


def load_declared(
    directory: Path,
    regions: Collection[str] | None = None,
    views: FeatureCatalog | None = None,
) -> list[DeclaredModel]:
    """The models declared in ``directory``, sorted by file name; raises if any file is refused
    (checked as :func:`check` does)."""
    models, problems = _scan(directory, regions, views)
    if problems:
        raise DeclarationError(problems)
    return models


def _scan(
    directory: Path, regions: Collection[str] | None, views: FeatureCatalog | None = None
) -> tuple[list[DeclaredModel], list[DeclarationProblem]]:
    if not directory.is_dir():
        return [], [DeclarationProblem(directory, DOCUMENT, "not a directory")]
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    models: list[DeclaredModel] = []
    problems: list[DeclarationProblem] = []
    seen: dict[str, Path] = {}
    for file in files:
        model, found = _load_file(file, regions, views)
        problems += found
        if model is None:
            continue
        if model.name in seen:
            problems.append(
                DeclarationProblem(
                    file, "name", f"model {model.name!r} is also declared in {seen[model.name]}"
                )
            )
            continue
        seen[model.name] = file
        models.append(model)
    return models, problems


def _load_file(
    file: Path, regions: Collection[str] | None, views: FeatureCatalog | None = None
) -> tuple[DeclaredModel | None, list[DeclarationProblem]]:
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else DOCUMENT
        return None, [DeclarationProblem(file, where, f"invalid YAML: {exc.problem or exc}")]
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, [DeclarationProblem(file, DOCUMENT, f"invalid YAML: {exc}")]
    try:
        model = DeclaredModel.model_validate(raw)
    except ValidationError as exc:
        return None, [
            DeclarationProblem(file, _location(error["loc"]), error["msg"])
            for error in exc.errors()
        ]
    problems: list[DeclarationProblem] = []
    if file.name != f"{model.name}.yaml":
        problems.append(
            DeclarationProblem(file, "name", f"model {model.name!r} belongs in {model.name}.yaml")
        )
    counts = Counter(v.version for v in model.versions)
    for i, version in enumerate(model.versions):
        if counts[version.version] > 1:
            problems.append(
                DeclarationProblem(
                    file, f"versions[{i}].version", f"version {version.version} is declared twice"
                )
            )
        problems += _check_artifact(file, f"versions[{i}].artifact", version.artifact)
        problems += _check_regions(file, f"versions[{i}].serving.regions", version, regions)
        problems += _check_feature_view(file, f"versions[{i}].serving.feature_view", version, views)
    problems += _check_golden(file, model)
    problems += _check_deployment(file, model)
    return model, problems


def _check_deployment(file: Path, model: DeclaredModel) -> list[DeclarationProblem]:
    """The declared rollout must be a valid deployment of two versions this file declares."""
    if model.deployment is None:
        return []
    if "model" in model.deployment:
        return [DeclarationProblem(file, "deployment.model", "the model is the file's own")]
    try:
        rollout = DeploymentCreate.model_validate({**model.deployment, "model": model.name})
    except ValidationError as exc:
        return [
            DeclarationProblem(file, _location(("deployment", *e["loc"])), e["msg"])
            for e in exc.errors()
        ]
    declared = {v.version for v in model.versions}
    return [
        DeclarationProblem(file, f"deployment.{field}", f"version {number} is not declared here")
        for field, number in (
            ("stable_version", rollout.stable_version),
            ("candidate_version", rollout.candidate_version),
        )
        if number not in declared
    ]


def _check_golden(file: Path, model: DeclaredModel) -> list[DeclarationProblem]:
    """The golden file must exist, parse, and fit the newest declared version's inputs."""
    if model.promotion is None or model.promotion.golden is None:
        return []
    where, target = "promotion.golden", file.parent / model.promotion.golden
    if not target.is_file():
        return [DeclarationProblem(file, where, f"no golden dataset at {target}")]
    try:
        body = GoldenCreate.model_validate_json(target.read_bytes())
        newest = max(model.versions, key=lambda v: v.version)
        check_rows(model.name, newest.features, body.rows)
    except ValidationError as exc:
        return [
            DeclarationProblem(file, where, f"{target.name}: {_location(e['loc'])}: {e['msg']}")
            for e in exc.errors()
        ]
    except InvalidRequest as exc:
        return [
            DeclarationProblem(file, where, f"{target.name}: {_location(e.loc[1:])}: {e.msg}")
            for e in exc.errors
        ]
    return []


def _check_regions(
    file: Path, where: str, version: DeclaredVersion, regions: Collection[str] | None
) -> list[DeclarationProblem]:
    """The regions a version may serve must be configured ones (when they are given)."""
    unknown = version.serving.unknown_regions(regions) if regions is not None else []
    if not unknown:
        return []
    known = sorted(regions or ())
    message = f"unknown regions {unknown}; OMBUD_PRIVACY__REGIONS lists {known}"
    return [DeclarationProblem(file, where, message)]


def _check_feature_view(
    file: Path, where: str, version: DeclaredVersion, views: FeatureCatalog | None
) -> list[DeclarationProblem]:
    """The feature view a version reads inputs from must be declared and fit its inputs."""
    source = version.serving.feature_view
    if source is None or views is None:
        return []
    return [
        DeclarationProblem(file, f"{where}.{'.'.join(p.loc)}", p.message)
        for p in feature_view_problems(version.features, source, views)
    ]


def _check_artifact(
    file: Path, location: str, artifact: DeclaredArtifact
) -> list[DeclarationProblem]:
    if artifact.path is None:
        return []
    target = file.parent / artifact.path
    if not target.is_file():
        return [DeclarationProblem(file, f"{location}.path", f"no artifact at {target}")]
    with target.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    if digest != artifact.sha256:
        return [
            DeclarationProblem(
                file,
                f"{location}.sha256",
                f"{artifact.path} has sha256 {digest}",
            )
        ]
    return []


def _location(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a field path: ``versions[0].features[2].type``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or DOCUMENT
