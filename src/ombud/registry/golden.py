"""Golden datasets: the labelled rows every candidate version of a model is judged on.

The rows are validated against the input contract of the model's newest version (the one a
candidate is most likely to share), written to the artifact store as canonical JSON, so they
are addressed and verified by digest like a model artifact, and referenced by one row per
model. Replacing a golden dataset keeps the old artifact: earlier reports still name its digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from pydantic import ValidationError

from ombud.core.clock import Clock
from ombud.core.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    PromotionRefused,
    ServiceUnavailable,
)
from ombud.registry._views import serving_view
from ombud.registry.promotion_repository import PromotionRepository
from ombud.registry.promotion_schemas import GoldenCreate, GoldenRead, GoldenRow
from ombud.registry.promotion_tables import GoldenDatasetRow
from ombud.registry.schemas import FeatureSpec
from ombud.registry.tables import RegisteredModelRow
from ombud.serving.artifacts import STORE_UNAVAILABLE, ArtifactIntegrityError, ArtifactStore
from ombud.serving.features import build_validator, validate_features

SUFFIX = "json"
MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True)
class GoldenData:
    """A golden dataset read back from the store and checked against its digest."""

    sha256: str
    rows: list[GoldenRow]
    created_by: str
    """Who set it: promotion reports name it next to the digest."""

    @property
    def labels(self) -> list[int]:
        return [row.label for row in self.rows]


class GoldenService:
    """Stores and reads golden datasets; never commits (the caller owns the unit of work)."""

    def __init__(self, repository: PromotionRepository, artifacts: ArtifactStore, clock: Clock):
        self._repo = repository
        self._artifacts = artifacts
        self._clock = clock

    async def store(
        self, model: RegisteredModelRow, body: GoldenCreate, *, actor: str
    ) -> GoldenRead:
        """Validate every row and write them to the artifact store; the caller saves the row.

        Raises:
            Conflict: the model has no version yet, so there is no input contract to check.
            InvalidRequest: rows that do not fit the contract, or labels of one class only.
        """
        newest = await self._repo.newest_version(model.id)
        if newest is None:
            raise Conflict(detail=f"model {model.name!r} has no version to check golden rows on")
        check_rows(model.name, serving_view(model, newest).features, body.rows)
        data = canonical_json(body.rows)
        stored = await anyio.to_thread.run_sync(self._artifacts.put, data, SUFFIX)
        return GoldenRead(
            model=model.name, uri=stored.uri, sha256=stored.sha256, rows=len(body.rows),
            description=body.description, created_by=actor, created_at=self._clock.now(),
        )  # fmt: skip

    async def load(self, row: GoldenDatasetRow) -> GoldenData:
        """The stored rows, verified against the registered digest (off the event loop).

        Raises:
            PromotionRefused: the rows are missing, altered or unreadable: nothing can pass.
            ServiceUnavailable: the artifact store cannot be reached now: try again.
        """
        try:
            data = await anyio.to_thread.run_sync(
                self._artifacts.read_digest_verified, row.uri, row.sha256
            )
        except ArtifactIntegrityError as exc:
            if exc.reason == STORE_UNAVAILABLE:
                raise ServiceUnavailable(
                    detail=f"the golden dataset cannot be read now: {exc}"
                ) from exc
            raise PromotionRefused(detail=f"the golden dataset cannot be read: {exc}") from exc
        return GoldenData(sha256=row.sha256, rows=parse_rows(data), created_by=row.created_by)


def check_rows(model: str, specs: list[FeatureSpec], rows: list[GoldenRow]) -> None:
    """Raise :class:`InvalidRequest` naming every bad row (``body.rows[i].features.<name>``)."""
    validator = build_validator(model, specs)
    errors: list[FieldError] = []
    bad: list[int] = []
    for i, row in enumerate(rows):
        try:
            validate_features(validator, row.features)
        except InvalidRequest as exc:
            bad.append(i)
            errors += [
                FieldError(("body", "rows", i, "features", *e.loc[2:]), e.msg, e.type)
                for e in exc.errors
            ]
    if bad:
        shown = ", ".join(str(i) for i in bad[:20]) + (" …" if len(bad) > 20 else "")
        raise InvalidRequest(
            detail=f"{len(bad)} golden rows do not fit the model's inputs: rows {shown}",
            errors=errors[:MAX_REPORTED_ERRORS],
        )
    if len({row.label for row in rows}) < 2:
        message = "golden rows need both labels (0 and 1) to measure the model"
        raise InvalidRequest(
            detail=message, errors=[FieldError(("body", "rows"), message, "value_error")]
        )


def canonical_json(rows: list[GoldenRow]) -> bytes:
    """The rows as JSON with sorted keys and no spaces, so equal rows get equal digests."""
    body = {"rows": [row.model_dump(mode="json") for row in rows]}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_rows(data: bytes) -> list[GoldenRow]:
    try:
        raw: Any = json.loads(data)
        return [GoldenRow.model_validate(row) for row in raw["rows"]]
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise PromotionRefused(detail=f"the stored golden dataset cannot be read: {exc}") from exc


def golden_read(model: str, row: GoldenDatasetRow) -> GoldenRead:
    return GoldenRead(
        model=model, uri=row.uri, sha256=row.sha256, rows=row.row_count,
        description=row.description, created_by=row.created_by, created_at=row.created_at,
    )  # fmt: skip
