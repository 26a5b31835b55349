"""What the request path needs of a model runtime, wherever the models actually run.

:class:`~ombud.serving.runtime.ModelRuntime` runs them in this process;
:class:`~ombud.serving.remote.RemoteRuntime` asks an ``ombud inference-server``. The stages see
only this port: they get a handle for a version, validate features with it, and hand it back to
the same runtime to score or explain.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias, TypeVar

from ombud.registry.schemas import ModelVersion


class ServedModel(Protocol):
    """A runtime's handle for one model version: what the gateway itself does with it."""

    @property
    def version(self) -> ModelVersion: ...

    def validate(self, features: dict[str, Any]) -> dict[str, Any]:
        """The features as validated values, or ``InvalidRequest`` naming every bad field."""
        ...


ModelT = TypeVar("ModelT", bound=ServedModel)


class Runtime(Protocol[ModelT]):
    """Loads versions and scores or explains rows with them, never on the event loop.

    A runtime accepts back only the handles it gave out (hence the type parameter).
    """

    @property
    def loaded(self) -> list[ModelVersion]:
        """The versions this runtime holds handles for, least recently used first."""
        ...

    async def get(self, version: ModelVersion) -> ModelT:
        """A handle for ``version``; ``ModelUnavailable`` when it cannot be served."""
        ...

    async def score(self, model: ModelT, features: dict[str, Any]) -> float:
        """The probability of the positive class for one validated row."""
        ...

    async def explain(self, model: ModelT, features: dict[str, Any]) -> dict[str, Any]:
        """The row's explanation as plain JSON; ``NotExplainable`` for models ombud cannot."""
        ...

    async def aclose(self) -> None: ...


AnyRuntime: TypeAlias = Runtime[Any]
"""A runtime whose handle type is not known where it is held (the container chooses it from
``OMBUD_SERVING__MODE``). Handles still go only from a runtime back to itself."""
