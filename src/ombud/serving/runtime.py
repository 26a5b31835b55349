"""Loaded models and off-loop inference.

Artifacts are verified (sha256) and deserialized in a worker thread, once per version, and every
prediction runs in a bounded thread pool, so the event loop never does model work. Concurrent
calls to one version are micro-batched (:mod:`ombud.serving.batching`) into vectorized calls.
At most ``max_loaded_models`` versions stay in memory (least recently used out first), and each
is warmed up on load so its first real call does not pay for lazy initialisation.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
from pydantic import BaseModel

from ombud.config import ServingSettings
from ombud.core.clock import Clock, SystemClock
from ombud.core.errors import ModelUnavailable
from ombud.registry.schemas import FeatureSpec, ModelVersion
from ombud.serving.artifacts import ArtifactIntegrityError, ArtifactStore
from ombud.serving.batching import BatchLimits, MicroBatcher
from ombud.serving.features import build_validator, validate_features
from ombud.serving.loader import ArtifactRejected, Classifier, load_classifier

log = logging.getLogger(__name__)

VersionKey = tuple[str, str]


def version_key(version: ModelVersion) -> VersionKey:
    return (version.id, version.sha256)


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    classifier: Classifier
    validator: type[BaseModel]

    @cached_property
    def input_names(self) -> tuple[str, ...]:
        """The estimator's columns, in order (protected attributes are never among them)."""
        return tuple(spec.name for spec in self.version.input_features)

    def validate(self, features: dict[str, Any]) -> dict[str, Any]:
        return validate_features(self.validator, features)

    def score(self, features: dict[str, Any]) -> float:
        """Probability of the positive class. Blocking: call through :class:`ModelRuntime`."""
        return self.score_many([features])[0]

    def score_many(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        """One probability per row, from one ``predict_proba`` over one feature matrix.

        Blocking. A row's score does not depend on the other rows of its batch.
        """
        names = self.input_names
        # An optional input left out reaches the model as missing (None), not as a KeyError.
        matrix = np.array([[row.get(name) for name in names] for row in rows], dtype=object)
        return [float(p) for p in self.classifier.predict_proba(matrix)[:, 1]]


def synthetic_row(specs: Sequence[FeatureSpec]) -> dict[str, Any]:
    """A valid-looking row for warm-up: each category's first value, numbers mid-range."""
    row: dict[str, Any] = {}
    for spec in specs:
        if spec.type == "category":
            row[spec.name] = (spec.categories or [""])[0]
        elif spec.type == "boolean":
            row[spec.name] = False
        else:
            low = spec.minimum if spec.minimum is not None else 0.0
            high = spec.maximum if spec.maximum is not None else max(low, 0.0) + 1.0
            middle = (low + high) / 2.0
            row[spec.name] = round(middle) if spec.type == "integer" else middle
    return row


class ModelRuntime:
    """Process-wide cache of loaded model versions and the pool that runs them."""

    def __init__(
        self,
        store: ArtifactStore,
        threads: int,
        *,
        settings: ServingSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._settings = settings or ServingSettings()
        self._clock = clock or SystemClock()
        self._limiter = anyio.CapacityLimiter(threads)
        self._limits = BatchLimits(
            max_batch_size=self._settings.max_batch_size,
            max_wait_ms=self._settings.max_wait_ms,
            max_queue_delay_ms=self._settings.max_queue_delay_ms,
            max_queue_rows=self._settings.max_queue_rows,
        )
        self._loaded: OrderedDict[VersionKey, LoadedModel] = OrderedDict()
        self._batchers: dict[VersionKey, MicroBatcher] = {}
        self._load_lock = anyio.Lock()

    @property
    def loaded(self) -> list[ModelVersion]:
        """The versions in memory, least recently used first."""
        return [model.version for model in self._loaded.values()]

    def batcher(self, version: ModelVersion) -> MicroBatcher | None:
        return self._batchers.get(version_key(version))

    async def get(self, version: ModelVersion) -> LoadedModel:
        key = version_key(version)
        loaded = self._loaded.get(key)
        if loaded is None:
            async with self._load_lock:
                loaded = self._loaded.get(key)
                if loaded is None:
                    loaded = await anyio.to_thread.run_sync(self._load, version)
                    self._admit(key, loaded)
        self._loaded.move_to_end(key)
        return loaded

    def _admit(self, key: VersionKey, loaded: LoadedModel) -> None:
        self._loaded[key] = loaded
        if self._settings.batching:
            self._batchers[key] = MicroBatcher(
                loaded.score_many, limiter=self._limiter, clock=self._clock,
                limits=self._limits, name=f"{loaded.version.model} v{loaded.version.version}",
            )  # fmt: skip
        while len(self._loaded) > self._settings.max_loaded_models:
            evicted, model = self._loaded.popitem(last=False)
            batcher = self._batchers.pop(evicted, None)
            if batcher is not None:
                batcher.close()  # its queued rows are still scored; callers holding it go direct
            log.info("unloaded %s v%s", model.version.model, model.version.version)

    def _load(self, version: ModelVersion) -> LoadedModel:
        try:
            data = self._store.read_verified(version.artifact_uri, version.sha256)
            classifier = load_classifier(data, version.format)
        except (ArtifactIntegrityError, ArtifactRejected) as exc:
            log.error("refusing to load %s v%s: %s", version.model, version.version, exc)
            raise ModelUnavailable(
                detail=f"{version.model} v{version.version} failed verification and was not loaded"
            ) from exc
        loaded = LoadedModel(
            version=version,
            classifier=classifier,
            validator=build_validator(version.model, version.features),
        )
        self._warm_up(loaded)
        return loaded

    @staticmethod
    def _warm_up(loaded: LoadedModel) -> None:
        """Score one synthetic row, so lazy imports and caches are paid for here, not by a call.

        A model that cannot score the synthetic row still loads: real rows may well be fine.
        """
        try:
            loaded.score_many([synthetic_row(loaded.version.input_features)])
        except Exception as exc:  # noqa: BLE001 - warm-up is best effort by design
            log.warning(
                "warm-up of %s v%s failed: %s", loaded.version.model, loaded.version.version, exc
            )

    async def score(self, model: LoadedModel, features: dict[str, Any]) -> float:
        """The model's score for one row, batched with concurrent rows when batching is on."""
        batcher = self._batchers.get(version_key(model.version))
        if (
            batcher is None
            or batcher.closed
            or self._loaded.get(version_key(model.version)) is not model
        ):
            return await anyio.to_thread.run_sync(model.score, features, limiter=self._limiter)
        return await batcher.score(features)

    async def aclose(self) -> None:
        """Stop every batcher after its queued rows are scored."""
        batchers = list(self._batchers.values())
        self._batchers.clear()
        for batcher in batchers:
            await batcher.aclose()
