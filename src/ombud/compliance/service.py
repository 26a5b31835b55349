"""Gathering what the processing record is built from: the registry (read through its service,
in the caller's session), the catalogs already loaded, and the settings."""

from __future__ import annotations

from ombud.compliance.record import ProcessingRecord, RecordInputs, RegisteredModel, build_record
from ombud.container import Container
from ombud.features.definitions import FeatureCatalog
from ombud.privacy.purposes import default_purposes_file
from ombud.registry.service import RegistryService


async def processing_record(
    container: Container, registry: RegistryService, features: FeatureCatalog
) -> ProcessingRecord:
    """The record as of now (the container's clock); reads only, writes nothing."""
    models = [
        RegisteredModel(model, await registry.list_versions(model.name))
        for model in await registry.list_models()
    ]
    settings = container.settings
    inputs = RecordInputs(
        generated_at=container.clock.now(),
        purposes=container.data_access.catalog,
        purposes_file=str(settings.privacy.purposes_file or default_purposes_file()),
        features=features,
        llm=container.llm.catalog,
        models=models,
        settings=settings,
        policy_bundle_version=container.policy.version,
    )
    return build_record(inputs)
