"""The processing record built from fixed inputs, and its Markdown renderings."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from pydantic import SecretStr

from ombud.compliance.record import RecordInputs, RegisteredModel, build_record
from ombud.compliance.render import render_notice, render_record
from ombud.config import DatabaseSettings, PrivacySettings, ServingSettings, Settings
from ombud.features.definitions import FeatureCatalog, FeatureView
from ombud.llm.catalog import CatalogConfig
from ombud.privacy.purposes import PurposeCatalog
from ombud.registry.schemas import (
    Approval,
    ArtifactFormat,
    FeatureSpec,
    LineageEntry,
    ModelRead,
    ServingConfig,
    VersionRead,
    VersionStatus,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
CATALOG = PurposeCatalog.model_validate({
    "categories": {"financial": {"description": "Income and debts.", "retention_days": 730}},
    "purposes": {"scoring": {"description": "Deciding on credit.", "lawful_basis": "consent",
                             "categories": ["financial"], "retention_days": 730,
                             "recipients": ["credit_team"]}},
})  # fmt: skip
VIEW = FeatureView.model_validate({
    "name": "applicant", "version": 2, "source": "txn", "ttl_s": 60,
    "data_categories": ["financial"],
    "features": [{"name": "n", "type": "integer",
                  "transformation": {"kind": "count", "window": "1d"}}],
})  # fmt: skip
LLM = CatalogConfig.model_validate({
    "providers": {"openai": {"kind": "openai", "base_url": "https://user:pw@api.example.com/v1",
                             "credential": "openai-key"}},
    "deployments": [{"id": "gpt", "provider": "openai", "model": "gpt", "region": "eu"}],
}).with_builtins()  # fmt: skip


def _version(number: int, status: VersionStatus) -> VersionRead:
    return VersionRead(
        id=f"ver_{number}", model="risk", version=number, format=ArtifactFormat.SKOPS,
        artifact_uri="file:a", sha256="0" * 64,
        input_schema=[FeatureSpec(name="n", type="integer")], serving_config=ServingConfig(),
        created_by=None, created_at=NOW, intended_use="Scoring credit applications.",
        lineage=[LineageEntry(dataset_id="loans-2024", feature_view="applicant",
                              feature_view_version=2)],
        approval=Approval(status=status, submitted_by=None, submitted_at=None, decided_by=None,
                          decided_at=None, reason=None),
    )  # fmt: skip


def _record() -> RecordInputs:
    model = ModelRead(
        id="mdl_1", name="risk", owner="risk-team", description="", created_at=NOW,
        approved_version=1, latest_version=2,
    )  # fmt: skip
    return RecordInputs(
        generated_at=NOW, purposes=CATALOG, purposes_file="purposes.yaml",
        features=FeatureCatalog(views={("applicant", 2): VIEW}), llm=LLM,
        models=[RegisteredModel(model, [_version(1, VersionStatus.APPROVED),
                                        _version(2, VersionStatus.DRAFT)])],
        settings=Settings(serving=ServingSettings(require_signatures=False)),
        policy_bundle_version="abc",
    )  # fmt: skip


def test_the_record_links_models_to_purposes_through_feature_views() -> None:
    record = build_record(_record())
    [purpose] = record.purposes
    assert (purpose.article, purpose.models) == ("Art. 6(1)(a)", ["risk"])
    [model] = record.models
    assert [v.version for v in model.approved_versions] == [1]
    assert record.sources.registry_approved_versions == 1
    [processor] = record.recipients.processors
    assert (processor.host, processor.regions) == ("api.example.com", ["eu"])


def test_the_record_says_where_each_regions_subject_data_is_kept() -> None:
    inputs = _record()
    settings = Settings(
        database=DatabaseSettings(url=SecretStr("sqlite:///var/main.db")),
        privacy=PrivacySettings(
            regions=["us", "eu"],
            region_databases={"us": SecretStr("postgresql://ombud:s3cret@db.us.example:5432/o")},
        ),
    )
    record = build_record(dataclasses.replace(inputs, settings=settings))
    located = [(s.region, s.store, s.backend, s.host) for s in record.storage_locations]
    assert located == [("eu", "main", "sqlite", None), ("us", "own", "postgresql", "db.us.example")]
    text = render_record(record)
    assert "| us | own | postgresql | db.us.example |" in text.splitlines()
    assert "s3cret" not in text
    assert "s3cret" not in record.model_dump_json()


def test_the_markdown_record_has_every_section() -> None:
    text = render_record(build_record(_record()))
    expected = [
        "# Record of processing activities (GDPR Art. 30)",
        "Generated at 2025-01-02T03:04:05+00:00 from the configuration.",
        "### scoring",
        "- Lawful basis: consent (Art. 6(1)(a))",
        "- Data categories: financial",
        "- Retention: 730 days",
        "- Recipients: credit_team",
        "- Models: risk",
        "| financial | Income and debts. | 730 |",
        "- Version 1: Scoring credit applications.",
        "  - Trained on: loans-2024 via feature view applicant v2",
        "| applicant_v2 | subject | txn | financial | 60 |",
        "- Processor openai (openai): host api.example.com, regions eu",
        "- Purpose recipients: credit_team",
        "- Model artifact signatures are not required (OMBUD_SERVING__REQUIRE_SIGNATURES is off).",
        "- policy_bundle_version: abc",
    ]
    lines = text.splitlines()
    for line in expected:
        assert line in lines, line
    assert "pw" not in text
    assert "openai-key" not in text
    assert "Version 2" not in text


def test_the_notice_speaks_plainly_of_each_purpose_and_of_human_review() -> None:
    lines = render_notice(build_record(_record())).splitlines()
    for line in [
        "### Deciding on credit",
        "We use: financial data.",
        "Why we may: you gave us your consent, which you may withdraw at any time "
        "(Art. 6(1)(a) GDPR).",
        "How long we keep it: 2 years.",
        "Who receives it: credit_team.",
        "Automated decisions: made with the models risk.",
        "- risk: decides decline or approve.",
    ]:
        assert line in lines, line
    assert "human review" in "\n".join(lines)
    assert "PUT /v1/subjects/{id}/preferences" in "\n".join(lines)
