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
from collections.abc import Awaitable, Callable, Sequence
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
from ombud.serving.explain import Explainer, NotExplainable, build_explainer, explain
from ombud.serving.features import build_validator, validate_features
from ombud.serving.loader import ArtifactRejected, Classifier, load_classifier

log = logging.getLogger(__name__)

VersionKey = tuple[str, str]
RejectionHook = Callable[[ModelVersion, str], Awaitable[None]]
"""Told of every artifact refused at load, with the reason (``sha256 mismatch``, ...)."""


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

        Blocking. A row's score does not depend on the other rows of its batch, up to
        floating-point rounding in the last bits.
        """
        names = self.input_names
        # An optional input left out reaches the model as missing (None), not as a KeyError.
        matrix = np.array([[row.get(name) for name in names] for row in rows], dtype=object)
        return [float(p) for p in self.classifier.predict_proba(matrix)[:, 1]]

    def explain_many(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One explanation per row as plain JSON, from one vectorized pass. Blocking.

        Raises:
            NotExplainable: the model is not of a kind ombud explains.
        """
        return [e.model_dump(mode="json") for e in self.explainer.explain_many(rows)]

    @cached_property
    def explainer(self) -> Explainer:
        """The version's SHAP explainer, built once (at warm-up for explaining versions).

        Raises:
            NotExplainable: the model is not of a kind ombud explains (not cached: re-raised).
        """
        return build_explainer(
            self.classifier, self.input_names, self.version.serving.explanation_background
        )


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


def _warm_up_explainer(loaded: LoadedModel) -> None:
    """Build the explainer (importing shap) and explain one row, so no call pays for it.

    A version whose model cannot be explained still serves; its calls record no explanation.
    """
    try:
        explain(loaded, synthetic_row(loaded.version.input_features))
    except NotExplainable as exc:
        log.error("%s v%s cannot explain: %s", loaded.version.model, loaded.version.version, exc)
    except Exception as exc:  # noqa: BLE001 - warm-up is best effort by design
        log.warning(
            "explainer warm-up of %s v%s failed: %s",
            loaded.version.model, loaded.version.version, exc,
        )  # fmt: skip


class ModelRuntime:
    """Process-wide cache of loaded model versions and the pool that runs them."""

    def __init__(
        self,
        store: ArtifactStore,
        threads: int,
        *,
        settings: ServingSettings | None = None,
        clock: Clock | None = None,
        on_rejected: RejectionHook | None = None,
    ) -> None:
        self._store = store
        self._on_rejected = on_rejected
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
        self._batchers: dict[VersionKey, MicroBatcher[float]] = {}
        self._explainers: dict[VersionKey, MicroBatcher[dict[str, Any]]] = {}
        """Explanations of explaining versions, batched like scores (when batching is on)."""
        self._load_lock = anyio.Lock()

    @property
    def loaded(self) -> list[ModelVersion]:
        """The versions in memory, least recently used first."""
        return [model.version for model in self._loaded.values()]

    def batcher(self, version: ModelVersion) -> MicroBatcher[float] | None:
        return self._batchers.get(version_key(version))

    async def get(self, version: ModelVersion) -> LoadedModel:
        key = version_key(version)
        loaded = self._loaded.get(key)
        if loaded is None:
            async with self._load_lock:
                loaded = self._loaded.get(key)
                if loaded is None:
                    loaded = await self._load_reporting(version)
                    self._admit(key, loaded)
        self._loaded.move_to_end(key)
        return loaded

    def _admit(self, key: VersionKey, loaded: LoadedModel) -> None:
        self._loaded[key] = loaded
        if self._settings.batching:
            name = f"{loaded.version.model} v{loaded.version.version}"
            self._batchers[key] = MicroBatcher(
                loaded.score_many, limiter=self._limiter, clock=self._clock,
                limits=self._limits, name=name,
            )  # fmt: skip
            if loaded.version.serving.explain:
                self._explainers[key] = MicroBatcher(
                    loaded.explain_many, limiter=self._limiter, clock=self._clock,
                    limits=self._limits, name=f"{name} explanations",
                )  # fmt: skip
        while len(self._loaded) > self._settings.max_loaded_models:
            evicted, model = self._loaded.popitem(last=False)
            for batchers in (self._batchers, self._explainers):
                batcher = batchers.pop(evicted, None)
                if batcher is not None:
                    batcher.close()  # queued rows still run; callers holding it go direct
            log.info("unloaded %s v%s", model.version.model, model.version.version)

    async def _load_reporting(self, version: ModelVersion) -> LoadedModel:
        """Load in a worker thread; a refused artifact is reported to ``on_rejected`` first."""
        try:
            return await anyio.to_thread.run_sync(self._load, version)
        except ModelUnavailable as exc:
            if self._on_rejected is not None and exc.__cause__ is not None:
                await self._on_rejected(version, _rejection_reason(exc.__cause__))
            raise

    def _load(self, version: ModelVersion) -> LoadedModel:
        try:
            data = self._store.read_verified(version.artifact_uri, version.sha256)
            names = [spec.name for spec in version.input_features]
            classifier = load_classifier(data, version.format, names)
        except (ArtifactIntegrityError, ArtifactRejected) as exc:
            log.error("refusing to load %s v%s: %s", version.model, version.version, exc)
            raise ModelUnavailable(
                detail=f"{version.model} v{version.version} failed verification: "
                f"{_rejection_reason(exc)}"
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
        if loaded.version.serving.explain:
            _warm_up_explainer(loaded)

    async def explain(self, model: LoadedModel, features: dict[str, Any]) -> dict[str, Any]:
        """The SHAP explanation of one row, as plain JSON (:class:`Explanation`'s fields).

        Runs in the inference pool, never on the event loop.

        Raises:
            NotExplainable: the model is not of a kind ombud explains.
        """
        key = version_key(model.version)
        batcher = self._explainers.get(key)
        if batcher is None or batcher.closed or self._loaded.get(key) is not model:
            explanation = await anyio.to_thread.run_sync(
                explain, model, features, limiter=self._limiter
            )
            return explanation.model_dump(mode="json")
        return await batcher.score(features)

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
        batchers: list[MicroBatcher[Any]] = [*self._batchers.values(), *self._explainers.values()]
        self._batchers.clear()
        self._explainers.clear()
        for batcher in batchers:
            await batcher.aclose()


def _rejection_reason(exc: BaseException) -> str:
    """The short, stable reason an artifact was refused, for problem details and audit."""
    if isinstance(exc, ArtifactIntegrityError):
        return exc.reason
    return "unsafe or unreadable content"
