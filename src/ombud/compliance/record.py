"""The record of processing activities (GDPR Art. 30), built from what ombud is configured with.

Nothing here is written by hand: purposes and data categories come from the purposes catalog,
models and their training sources from the registry, feature views from the feature catalog,
processors from the LLM catalog, security measures from the settings. :func:`build_record`
does no I/O: the caller gathers its :class:`RecordInputs` (see :mod:`ombud.compliance.service`),
so the same inputs always give the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlalchemy.engine import make_url

from ombud.config import Settings
from ombud.features.definitions import FeatureCatalog, FeatureView
from ombud.llm.catalog import LOCAL_PROVIDER, CatalogConfig
from ombud.privacy.purposes import LawfulBasis, PurposeCatalog
from ombud.registry.schemas import LineageEntry, ModelRead, VersionRead, VersionStatus

ARTICLE_6 = {
    LawfulBasis.CONSENT: "Art. 6(1)(a)",
    LawfulBasis.CONTRACT: "Art. 6(1)(b)",
    LawfulBasis.LEGAL_OBLIGATION: "Art. 6(1)(c)",
    LawfulBasis.VITAL_INTEREST: "Art. 6(1)(d)",
    LawfulBasis.PUBLIC_TASK: "Art. 6(1)(e)",
    LawfulBasis.LEGITIMATE_INTEREST: "Art. 6(1)(f)",
}


class PurposeEntry(BaseModel):
    """One processing purpose, as the catalog declares it."""

    name: str
    description: str
    lawful_basis: LawfulBasis
    article: str
    """Where GDPR states the basis, e.g. ``Art. 6(1)(a)``."""
    categories: list[str]
    retention_days: int
    recipients: list[str]
    models: list[str]
    """Approved models trained through a feature view whose categories this purpose may read."""


class CategoryEntry(BaseModel):
    name: str
    description: str
    retention_days: int


class VersionEntry(BaseModel):
    """An approved model version: what it is for, what it decides, what it was trained on."""

    version: int
    intended_use: str
    decisions: list[str]
    """The decisions its score maps to (above the threshold, then below)."""
    explained: bool
    training_sources: list[LineageEntry]


class ModelEntry(BaseModel):
    name: str
    owner: str
    description: str
    approved_versions: list[VersionEntry]


class FeatureViewEntry(BaseModel):
    id: str
    name: str
    version: int
    entity: str
    source_event_type: str
    data_categories: list[str]
    ttl_s: int


class ProcessorEntry(BaseModel):
    """An upstream model provider that receives prompts: a processor (Art. 28)."""

    name: str
    kind: str
    host: str | None
    """The base URL's host only (never a path, query or credentials); none for ``local``."""
    regions: list[str]
    deployments: list[str]


class Recipients(BaseModel):
    processors: list[ProcessorEntry]
    purpose_recipients: list[str]


class SecurityMeasure(BaseModel):
    name: str
    statement: str


class StorageLocation(BaseModel):
    """Where the subject data of one region is kept (residency); never a credential."""

    region: str
    store: str
    """``main`` (the main database) or ``own`` (a database of the region's own)."""
    backend: str
    """``sqlite`` or ``postgresql``."""
    host: str | None
    """The database server's host; ``None`` for an SQLite file on ombud's own machine."""


class Sources(BaseModel):
    """What the record was built from, so a reader can check it."""

    purposes_file: str
    feature_views_dir: str
    llm_catalog_file: str | None
    policy_bundle_version: str
    registry_models: int
    registry_approved_versions: int


class ProcessingRecord(BaseModel):
    generated_at: datetime
    purposes: list[PurposeEntry]
    data_categories: list[CategoryEntry]
    models: list[ModelEntry]
    feature_views: list[FeatureViewEntry]
    recipients: Recipients
    storage_locations: list[StorageLocation]
    security_measures: list[SecurityMeasure]
    sources: Sources


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    model: ModelRead
    versions: Sequence[VersionRead]


@dataclass(frozen=True, slots=True)
class RecordInputs:
    """Everything the record is built from, already read."""

    generated_at: datetime
    purposes: PurposeCatalog
    purposes_file: str
    features: FeatureCatalog
    llm: CatalogConfig
    models: Sequence[RegisteredModel]
    settings: Settings
    policy_bundle_version: str


def build_record(inputs: RecordInputs) -> ProcessingRecord:
    """The Art. 30 record for ``inputs``; deterministic (sorted by name throughout)."""
    models = [_model(m) for m in sorted(inputs.models, key=lambda m: m.model.name)]
    views = [inputs.features.views[k] for k in sorted(inputs.features.views)]
    settings = inputs.settings
    return ProcessingRecord(
        generated_at=inputs.generated_at,
        purposes=_purposes(inputs.purposes, models, views),
        data_categories=[
            CategoryEntry(name=n, description=c.description, retention_days=c.retention_days)
            for n, c in sorted(inputs.purposes.categories.items())
        ],
        models=models,
        feature_views=[_view(v) for v in views],
        recipients=Recipients(
            processors=_processors(inputs.llm),
            purpose_recipients=sorted(
                {r for p in inputs.purposes.purposes.values() for r in p.recipients}
            ),
        ),
        storage_locations=storage_locations(settings),
        security_measures=security_measures(settings),
        sources=Sources(
            purposes_file=inputs.purposes_file,
            feature_views_dir=str(settings.features.views_dir),
            llm_catalog_file=_path(settings.llm.catalog_file),
            policy_bundle_version=inputs.policy_bundle_version,
            registry_models=len(models),
            registry_approved_versions=sum(len(m.approved_versions) for m in models),
        ),
    )


def _path(value: object | None) -> str | None:
    return None if value is None else str(value)


def _model(registered: RegisteredModel) -> ModelEntry:
    approved = [v for v in registered.versions if v.approval.status is VersionStatus.APPROVED]
    return ModelEntry(
        name=registered.model.name,
        owner=registered.model.owner,
        description=registered.model.description,
        approved_versions=[
            VersionEntry(
                version=v.version,
                intended_use=v.intended_use,
                decisions=[v.serving_config.positive_decision, v.serving_config.negative_decision],
                explained=v.serving_config.explain,
                training_sources=v.lineage,
            )
            for v in sorted(approved, key=lambda v: v.version)
        ],
    )


def _purposes(
    catalog: PurposeCatalog, models: list[ModelEntry], views: list[FeatureView]
) -> list[PurposeEntry]:
    categories = {(v.name, v.version): set(v.data_categories) for v in views}
    entries = []
    for name, purpose in sorted(catalog.purposes.items()):
        allowed = set(purpose.categories)
        entries.append(
            PurposeEntry(
                name=name,
                description=purpose.description,
                lawful_basis=purpose.lawful_basis,
                article=ARTICLE_6[purpose.lawful_basis],
                categories=list(purpose.categories),
                retention_days=purpose.retention_days,
                recipients=list(purpose.recipients),
                models=[m.name for m in models if _reads_within(m, categories, allowed)],
            )  # fmt: skip
        )
    return entries


def _reads_within(
    model: ModelEntry, views: dict[tuple[str, int], set[str]], allowed: set[str]
) -> bool:
    """Whether ``model`` was trained through feature views, all of whose categories are in
    ``allowed`` (a model with no feature view in its lineage is linked to no purpose)."""
    used = [
        views.get((s.feature_view, s.feature_view_version or 1))
        for v in model.approved_versions
        for s in v.training_sources
        if s.feature_view is not None
    ]
    return bool(used) and all(c is not None and c <= allowed for c in used)


def _view(view: FeatureView) -> FeatureViewEntry:
    return FeatureViewEntry(
        id=view.id, name=view.name, version=view.version, entity=view.entity,
        source_event_type=view.source, data_categories=list(view.data_categories),
        ttl_s=view.ttl_s,
    )  # fmt: skip


def _processors(catalog: CatalogConfig) -> list[ProcessorEntry]:
    """Every configured provider except the in-process ``local`` one (it sends nothing out)."""
    entries = []
    for name, provider in sorted(catalog.providers.items()):
        if provider.kind == LOCAL_PROVIDER:
            continue
        deployments = [d for d in catalog.deployments if d.provider == name]
        entries.append(
            ProcessorEntry(
                name=name,
                kind=provider.kind,
                host=urlsplit(provider.base_url).hostname,
                regions=sorted({d.region for d in deployments}),
                deployments=sorted(d.id for d in deployments),
            )  # fmt: skip
        )
    return entries


def storage_locations(settings: Settings) -> list[StorageLocation]:
    """Per region, which database keeps its subjects' data (backend and host only)."""
    own = settings.privacy.region_databases
    locations = []
    for region in sorted(settings.privacy.regions):
        url = make_url(own.get(region, settings.database.url).get_secret_value())
        backend = url.get_backend_name()
        locations.append(
            StorageLocation(
                region=region, store="own" if region in own else "main", backend=backend,
                host=None if backend == "sqlite" else url.host,
            )
        )  # fmt: skip
    return locations


def security_measures(settings: Settings) -> list[SecurityMeasure]:
    """Art. 30(1)(g): the technical measures in force, stated from the configuration."""
    provider = settings.crypto.provider
    signing = settings.serving.require_signatures
    tls = settings.server.tls
    return [
        SecurityMeasure(
            name="envelope_encryption",
            statement=f"Personal data at rest is encrypted under per-owner data keys, wrapped by "
            f"a key-encryption key from the {provider!r} key provider.",
        ),
        SecurityMeasure(
            name="crypto_shredding",
            statement="Each data subject has their own data key; erasing a subject destroys it, "
            "so nothing encrypted under it can be read again.",
        ),
        SecurityMeasure(
            name="tamper_evident_audit",
            statement="Every audit event is hash-chained (SHA-256) to the one before it and the "
            "chain head is pinned by signed (Ed25519) checkpoints.",
        ),
        SecurityMeasure(
            name="artifact_signing",
            statement="Model artifacts must carry a signature by a trusted key before they load."
            if signing
            else "Model artifact signatures are not required (OMBUD_SERVING__REQUIRE_SIGNATURES "
            "is off).",
        ),
        SecurityMeasure(
            name="transport_encryption",
            statement="ombud serves HTTPS (TLS configured)."
            if tls
            else "ombud itself serves plain HTTP (no TLS configured); TLS must be terminated in "
            "front of it.",
        ),
    ]
