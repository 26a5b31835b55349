"""Loaded models and off-loop inference.

Artifacts are verified (sha256) and deserialized in a worker thread, once per version, and every
prediction runs in a bounded thread pool, so the event loop never does model work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
from pydantic import BaseModel

from ombud.core.errors import ModelUnavailable
from ombud.registry.schemas import ModelVersion
from ombud.serving.artifacts import ArtifactIntegrityError, ArtifactStore
from ombud.serving.features import build_validator, validate_features
from ombud.serving.loader import ArtifactRejected, Classifier, load_classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    classifier: Classifier
    validator: type[BaseModel]

    def validate(self, features: dict[str, Any]) -> dict[str, Any]:
        return validate_features(self.validator, features)

    def score(self, features: dict[str, Any]) -> float:
        """Probability of the positive class. Blocking: call through :class:`ModelRuntime`."""
        names = [spec.name for spec in self.version.input_features]
        # An optional input left out reaches the model as missing (None), not as a KeyError.
        row = np.array([[features.get(name) for name in names]], dtype=object)
        return float(self.classifier.predict_proba(row)[0, 1])


class ModelRuntime:
    """Process-wide cache of loaded model versions and the pool that runs them."""

    def __init__(self, store: ArtifactStore, threads: int) -> None:
        self._store = store
        self._limiter = anyio.CapacityLimiter(threads)
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._load_lock = anyio.Lock()

    async def get(self, version: ModelVersion) -> LoadedModel:
        key = (version.id, version.sha256)
        loaded = self._loaded.get(key)
        if loaded is not None:
            return loaded
        async with self._load_lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = await anyio.to_thread.run_sync(self._load, version)
                self._loaded[key] = loaded
        return loaded

    def _load(self, version: ModelVersion) -> LoadedModel:
        try:
            data = self._store.read_verified(version.artifact_uri, version.sha256)
            classifier = load_classifier(data, version.format)
        except (ArtifactIntegrityError, ArtifactRejected) as exc:
            log.error("refusing to load %s v%s: %s", version.model, version.version, exc)
            raise ModelUnavailable(
                detail=f"{version.model} v{version.version} failed verification and was not loaded"
            ) from exc
        return LoadedModel(
            version=version,
            classifier=classifier,
            validator=build_validator(version.model, version.features),
        )

    async def score(self, model: LoadedModel, features: dict[str, Any]) -> float:
        return await anyio.to_thread.run_sync(model.score, features, limiter=self._limiter)
