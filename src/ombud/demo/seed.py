"""Seeding the demo: a tenant, an analyst key, and the credit-risk model (trained if missing)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.container import Container
from ombud.core.errors import ModelNotFound, NotFound
from ombud.demo import credit_model
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.registry.promotion_repository import PromotionRepository
from ombud.registry.promotion_schemas import GoldenCreate
from ombud.registry.promotion_service import PromotionService
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import (
    ArtifactFormat,
    CardFields,
    LineageEntry,
    ModelVersion,
    VersionStatus,
)
from ombud.registry.service import RegistryService
from ombud.serving.artifacts import ArtifactIntegrityError

log = logging.getLogger(__name__)

DEMO_TENANT = "demo"
DEMO_PRINCIPAL = "demo-analyst"
DEMO_KEY_NAME = "demo key"
SYSTEM_PRINCIPAL = "system"
"""Who registers, submits and approves the demo version: the operator's seed, not a person."""
DEMO_DATASET = "uci-statlog-german-credit"
GOLDEN_DESCRIPTION = "The held-out 20% (200 applications) of the UCI German credit data."


@dataclass(frozen=True)
class DemoSeed:
    api_key: str
    model: ModelVersion


async def seed_demo(container: Container) -> DemoSeed:
    """Idempotent: reuses the registered model; issues a fresh key and revokes older demo keys."""
    async with container.sessions.begin() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        model = await _ensure_model(container, registry)
        await _ensure_golden(container, session)
        for key in await identity.list_api_keys(DEMO_TENANT):
            if key.name == DEMO_KEY_NAME and key.revoked_at is None:
                await identity.revoke_api_key(key.id)
        created = await identity.create_api_key(
            tenant=DEMO_TENANT, roles=["analyst"], principal=DEMO_PRINCIPAL, name=DEMO_KEY_NAME
        )
    return DemoSeed(api_key=created.token, model=model)


async def _ensure_model(container: Container, registry: RegistryService) -> ModelVersion:
    try:
        version = await registry.serving_version(credit_model.MODEL_NAME)
        # Off the loop: reading verifies the digest and the signature (hashing, ECDSA).
        await anyio.to_thread.run_sync(
            container.artifacts.read_verified, version.artifact_uri, version.sha256
        )
    except (ModelNotFound, ArtifactIntegrityError) as exc:
        log.info("training the demo model (%s)", exc)
    else:
        return version
    pipeline, metrics = credit_model.train()
    stored = await anyio.to_thread.run_sync(
        container.artifacts.put, credit_model.to_skops(pipeline), "skops"
    )
    log.info("trained %s: %s", credit_model.MODEL_NAME, metrics)
    return await registry.register_version(
        model=credit_model.MODEL_NAME,
        artifact_uri=stored.uri,
        sha256=stored.sha256,
        artifact_format=ArtifactFormat.SKOPS,
        features=credit_model.feature_specs(),
        serving=credit_model.explaining_serving_config(),
        status=VersionStatus.APPROVED,
        description="Demo credit-risk classifier (logistic regression, UCI German credit).",
        owner="ombud demo",
        card=_card(metrics),
        actor=SYSTEM_PRINCIPAL,
    )


async def _ensure_golden(container: Container, session: AsyncSession) -> None:
    """Register the held-out split as the golden dataset, once, so a v2 can pass the gate."""
    promotion = PromotionService(
        PromotionRepository(session), RegistryRepository(session), container.artifacts,
        container.clock,
    )  # fmt: skip
    try:
        await promotion.golden(credit_model.MODEL_NAME)
    except NotFound:
        body = GoldenCreate.model_validate(
            {"rows": credit_model.golden_rows(), "description": GOLDEN_DESCRIPTION}
        )
        prepared = await promotion.prepare_golden(
            credit_model.MODEL_NAME, body, actor=SYSTEM_PRINCIPAL
        )
        await promotion.save_golden(prepared)


def _card(metrics: dict[str, float]) -> CardFields:
    """The demo version's model card; ``metrics`` are its held-out (20%) accuracy and ROC AUC."""
    return CardFields(
        description="Logistic regression over one-hot categories and scaled amounts.",
        intended_use=(
            "Demo credit scoring on the UCI German credit data: shows how ombud serves, records, "
            "reviews and audits a credit decision. Not for real lending decisions."
        ),
        limitations=(
            "Trained on 800 of the 1,000 applications of one German bank in the UCI Statlog data "
            "(1994); the population, currency and credit practices are not today's. Scores are "
            "not calibrated for any "
            "real portfolio. Sex and age are kept out of the model but may be proxied by other "
            "inputs; monitor decisions by protected attribute before any real use."
        ),
        lineage=[LineageEntry(dataset_id=DEMO_DATASET)],
        metrics=metrics,
    )
