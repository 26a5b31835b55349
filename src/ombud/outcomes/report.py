"""KPI reports: which window, which predictions, and the numbers per version and arm.

Counts (predictions, labelled, positives) are exact SQL aggregates over the whole window. The
metrics are computed on at most ``max_rows`` labelled predictions, the newest, and the report
says when it was cut; past :data:`INLINE_ROWS` they are computed in a worker thread, so a big
window never holds the event loop.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.core.errors import FieldError, InvalidRequest
from ombud.outcomes.kpis import Labelled, quality
from ombud.outcomes.repository import Group, LabelCounts, OutcomeRepository, Scope
from ombud.outcomes.schemas import ArmKpis, KpiReport, Kpis, ReliabilityBin, VersionKpis

INLINE_ROWS = 2_000
"""Up to this many rows the arithmetic (well under a millisecond) stays on the event loop."""
DEFAULT_WINDOW = "24h"
MAX_WINDOW = timedelta(days=400)
WINDOW = re.compile(r"([1-9][0-9]{0,3})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime
    until: datetime
    window: str | None


def parse_window(text: str) -> timedelta:
    """``30m``, ``1h``, ``24h``, ``7d`` … as a duration.

    Raises:
        ValueError: not a number (1-9999) followed by ``m``, ``h`` or ``d``, or over 400 days.
    """
    match = WINDOW.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a window such as 1h, 24h, 7d or 30d")
    duration = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if duration > MAX_WINDOW:
        raise ValueError(f"{text!r} is longer than the 400 days a report may cover")
    return duration


def period(
    now: datetime, window: str | None, since: datetime | None, until: datetime | None
) -> Period:
    """The ``[since, until)`` a request asks for: a trailing ``window`` (default 24h) ending
    now, or explicit bounds (``until`` defaults to now).

    Raises:
        InvalidRequest: both forms at once, ``until`` alone, an empty or over-long period, or a
            window that does not parse.
    """
    if window is not None and (since is not None or until is not None):
        raise _invalid("window", "give either window or since/until, not both")
    if since is None:
        if until is not None:
            raise _invalid("since", "until needs a since")
        try:
            return Period(
                now - parse_window(window or DEFAULT_WINDOW), now, window or DEFAULT_WINDOW
            )
        except ValueError as exc:
            raise _invalid("window", str(exc)) from None
    end = until or now
    if since >= end:
        raise _invalid("since", "since must be before until")
    if end - since > MAX_WINDOW:
        raise _invalid("since", "a report covers at most 400 days")
    return Period(since, end, None)


class KpiService:
    """KPI reports over one session.

    Args:
        session: The caller's unit of work (read only).
        max_rows: Labelled predictions scored per report at most.
    """

    def __init__(self, session: AsyncSession, max_rows: int) -> None:
        self._repository = OutcomeRepository(session)
        self._max_rows = max_rows

    async def report(self, model: str, when: Period, *, tenant_id: str | None,
                     version: int | None = None) -> KpiReport:  # fmt: skip
        """KPIs of ``model``'s versions (or of ``version``) over ``when``, in ``tenant_id``'s
        predictions (``None``: every tenant's)."""
        scope = Scope(model, when.since, when.until, tenant_id=tenant_id, version=version)
        predictions = await self._repository.prediction_counts(scope)
        labels = await self._repository.label_counts(scope)
        rows = await self._repository.labelled(scope, limit=self._max_rows + 1)
        truncated = len(rows) > self._max_rows
        rows = rows[: self._max_rows]
        if len(rows) > INLINE_ROWS:
            versions = await anyio.to_thread.run_sync(by_version, predictions, labels, rows)
        else:
            versions = by_version(predictions, labels, rows)
        return KpiReport(
            model=model, window=when.window, since=when.since, until=when.until,
            row_cap=self._max_rows, truncated=truncated, versions=versions,
        )  # fmt: skip


def by_version(
    predictions: dict[Group, int],
    labels: dict[Group, LabelCounts],
    rows: Sequence[tuple[Group, Labelled]],
) -> list[VersionKpis]:
    """KPIs per version, newest version first, each with its arms when a deployment served it."""
    groups = sorted(set(predictions) | set(labels), key=lambda g: (-g[0], g[1] or ""))
    scored: dict[Group, list[Labelled]] = defaultdict(list)
    for group, row in rows:
        scored[group].append(row)
    out = []
    for version in sorted({v for v, _ in groups}, reverse=True):
        arms = [g for g in groups if g[0] == version]
        overall = _kpis(
            sum(predictions.get(g, 0) for g in arms),
            LabelCounts(
                sum(labels[g].labelled for g in arms if g in labels),
                sum(labels[g].positives for g in arms if g in labels),
            ),
            [r for g in arms for r in scored[g]],
        )
        per_arm = [
            ArmKpis(
                arm=g[1],
                kpis=_kpis(predictions.get(g, 0), labels.get(g, LabelCounts(0, 0)), scored[g]),
            )
            for g in arms
        ]
        served_by_deployment = any(arm is not None for _, arm in arms)
        out.append(VersionKpis(version=version, kpis=overall,
                               arms=per_arm if served_by_deployment else []))  # fmt: skip
    return out


def _kpis(predictions: int, labels: LabelCounts, rows: Sequence[Labelled]) -> Kpis:
    q = quality(rows)
    return Kpis(
        predictions=predictions,
        labelled=labels.labelled,
        positives=labels.positives,
        label_coverage=labels.labelled / predictions if predictions else None,
        scored=q.scored,
        auc=q.auc,
        precision=q.precision,
        recall=q.recall,
        f1=q.f1,
        brier=q.brier,
        ece=q.ece,
        reliability=[
            ReliabilityBin(
                lower=b.lower,
                upper=b.upper,
                count=b.count,
                mean_predicted=b.mean_predicted,
                observed_rate=b.observed_rate,
            )
            for b in q.reliability
        ],  # fmt: skip
    )


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        detail=message, errors=[FieldError(("query", field), message, "value_error")]
    )
