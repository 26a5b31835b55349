"""Scoring on an ``ombud inference-server``: the gateway half of the hybrid pattern.

The gateway keeps everything that governs a call (authentication, policy, feature validation,
records, audit) and sends only the scoring to a dedicated process, which may sit on bigger
machines. The gateway names the exact version it resolved (its id and artifact digest); the
inference server reads that version from its own registry (inputs, serving config, artifact,
status), refuses it unless it is approved and has that digest, and loads and verifies the
artifact itself. A compromised gateway can choose which approved version runs, never what that
version is.

One pooled ``aiohttp.ClientSession`` (created lazily, in the running loop) carries every call.
Failures come back as ombud's own problems: no answer in time or no connection is
``ModelUnavailable`` (503), the server's load shedding is ``Overloaded`` (503, ``Retry-After``),
and the server's own ``model_unavailable`` (an artifact that fails verification) passes through,
as do its refusals of a version its registry does not serve (unknown, another digest, not
approved), as ``ModelUnavailable``.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp.connector import NEEDS_CLEANUP_CLOSED
from pydantic import BaseModel, SecretStr

from ombud.config import ServingSettings
from ombud.core.errors import (
    PROBLEM_BASE,
    FieldError,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
)
from ombud.registry.schemas import ModelVersion
from ombud.serving.explain import NotExplainable
from ombud.serving.features import build_validator, validate_features

log = logging.getLogger(__name__)

SCORE_PATH = "/v1/internal/models/{version_id}/score"
EXPLAIN_PATH = "/v1/internal/models/{version_id}/explain"
NOT_EXPLAINABLE = "not_explainable"
"""The problem kind the inference server answers for a model ombud cannot explain."""
VERSION_MISMATCH = "version_mismatch"
"""The inference server's kind (409) for a digest that is not the registered version's."""
VERSION_NOT_APPROVED = "version_not_approved"
"""The inference server's kind (409) for a version its registry has, but not as approved."""
_NOT_SERVED = frozenset({VERSION_MISMATCH, VERSION_NOT_APPROVED, ModelNotFound.kind})
MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""Largest answer read from the inference server; scores and explanations are far smaller."""
_USER_AGENT = "ombud-gateway"

VersionKey = tuple[str, str]


@dataclass(frozen=True)
class RemoteModel:
    """The gateway's handle for a version served remotely: its validator, no estimator."""

    version: ModelVersion
    validator: type[BaseModel]

    def validate(self, features: dict[str, Any]) -> dict[str, Any]:
        return validate_features(self.validator, features)


class RemoteRuntime:
    """A :class:`~ombud.serving.ports.Runtime` whose models run on an inference server."""

    def __init__(
        self,
        base_url: str,
        *,
        token: SecretStr | None,
        timeout_s: float,
        pool_size: int = 100,
        max_models: int = 1024,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._pool_size = pool_size
        self._max_models = max_models
        self._models: OrderedDict[VersionKey, RemoteModel] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, serving: ServingSettings) -> RemoteRuntime:
        if serving.inference_url is None:
            raise ValueError("remote serving needs OMBUD_SERVING__INFERENCE_URL")
        return cls(
            serving.inference_url,
            token=serving.inference_token,
            timeout_s=serving.inference_timeout_s,
            pool_size=serving.inference_pool_size,
            # Handles hold only a validator, so many more fit than loaded estimators do.
            max_models=max(serving.max_loaded_models, 1024),
        )

    @property
    def loaded(self) -> list[ModelVersion]:
        """The versions the gateway holds validators for (not what the server has loaded)."""
        return [model.version for model in self._models.values()]

    async def get(self, version: ModelVersion) -> RemoteModel:
        """The version's handle. No round trip: the server loads it on its first score."""
        key = (version.id, version.sha256)
        model = self._models.get(key)
        if model is None:
            model = RemoteModel(version, build_validator(version.model, version.features))
            self._models[key] = model
            while len(self._models) > self._max_models:
                self._models.popitem(last=False)
        self._models.move_to_end(key)
        return model

    async def score(self, model: RemoteModel, features: dict[str, Any]) -> float:
        body = {"sha256": model.version.sha256, "rows": [features]}
        answer = await self._post(model.version, SCORE_PATH, body)
        scores = answer.get("scores")
        if not isinstance(scores, list) or len(scores) != 1 or not _is_number(scores[0]):
            raise _unavailable(model.version, "the inference server's answer has no score")
        return float(scores[0])

    async def explain(self, model: RemoteModel, features: dict[str, Any]) -> dict[str, Any]:
        body = {"sha256": model.version.sha256, "features": features}
        return await self._post(model.version, EXPLAIN_PATH, body)

    async def aclose(self) -> None:
        """Close the pooled connections; a later call opens a new session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, enable_cleanup_closed=NEEDS_CLEANUP_CLOSED
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": _USER_AGENT},
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        return headers

    async def _post(self, version: ModelVersion, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self._base_url + path.format(version_id=quote(version.id, safe=""))
        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            async with self._ensure_session().post(
                url, data=data, headers=self._headers(), timeout=self._timeout,
                allow_redirects=False,
            ) as response:  # fmt: skip
                payload = await response.content.read(MAX_ANSWER_BYTES + 1)
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.warning("inference server %s: %s v%s %s", self._base_url, version.model,
                        version.version, why)  # fmt: skip
            raise _unavailable(version, f"the inference server did not answer ({why})") from None
        if len(payload) > MAX_ANSWER_BYTES:
            raise _unavailable(version, "the inference server's answer is too large")
        parsed = _json_object(payload)
        if status == 200 and parsed is not None:
            return parsed
        raise _refusal(version, status, headers.get("Retry-After"), parsed or {})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(payload)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _unavailable(version: ModelVersion, why: str) -> ModelUnavailable:
    return ModelUnavailable(detail=f"{version.model} v{version.version}: {why}")


def _refusal(
    version: ModelVersion, status: int, retry_after: str | None, problem: dict[str, Any]
) -> Exception:
    """The inference server's problem+json answer as the gateway's own exception."""
    type_uri = str(problem.get("type", ""))
    kind = type_uri.removeprefix(PROBLEM_BASE) if type_uri.startswith(PROBLEM_BASE) else ""
    detail = str(problem.get("detail", ""))[:500]
    if kind == Overloaded.kind:
        return Overloaded(detail=detail, headers={"Retry-After": retry_after or "1"})
    if kind == ModelUnavailable.kind:
        return ModelUnavailable(detail=detail)
    if kind in _NOT_SERVED:
        # The two registries disagree for a moment (a cached approval), or are not the same one.
        log.warning("the inference server does not serve %s v%s: %s", version.model,
                    version.version, detail)  # fmt: skip
        return ModelUnavailable(detail=detail)
    if kind == NOT_EXPLAINABLE:
        return NotExplainable(detail)
    if kind == InvalidRequest.kind:
        return InvalidRequest(detail=detail, errors=_field_errors(problem.get("errors")))
    if status in (401, 403):
        # The gateway's own configuration is wrong; the caller can do nothing about it.
        log.error("the inference server refused this gateway's token (%d)", status)
        return _unavailable(version, "the inference server refused this gateway's credentials")
    log.error("inference server answered %d (%s): %s", status, kind or "no problem type", detail)
    return _unavailable(version, f"the inference server failed ({status})")


def _field_errors(raw: object) -> list[FieldError]:
    if not isinstance(raw, list):
        return []
    return [
        FieldError(tuple(e.get("loc", ())), str(e.get("msg", "")), str(e.get("type", "")))
        for e in raw
        if isinstance(e, dict)
    ]
