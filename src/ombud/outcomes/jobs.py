"""The ``outcomes.kpis`` job: every model version's KPIs as Prometheus gauges.

Every five minutes, for each registered model and each configured trailing window, the KPIs
of all tenants' predictions are computed and exported as ``ombud_model_kpi{model, version,
kpi, window}``. A KPI that is undefined (AUC with one class, anything without labels) is left
out rather than reported as 0, and a version that leaves every window leaves the gauges.

Gauges live in the process that ran the job: scrape the process whose worker runs it (with
several workers, each exports the values of its own last run).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ombud.jobs.registry import JobContext, JobRegistry
from ombud.observability.metrics import Metrics
from ombud.outcomes.report import KpiService, Period, parse_window
from ombud.outcomes.schemas import KpiReport, Kpis
from ombud.registry.repository import RegistryRepository

log = logging.getLogger(__name__)

KPI_JOB = "outcomes.kpis"
KPI_SCHEDULE = "outcomes.kpis.every-5-minutes"
KPI_CRON = "*/5 * * * *"
GAUGED = ("auc", "precision", "recall", "f1", "brier", "ece", "predictions", "labelled",
          "positives", "label_coverage")  # fmt: skip
"""The fields of :class:`~ombud.outcomes.schemas.Kpis` exported as the ``kpi`` label."""

Sample = tuple[tuple[str, str, str, str], float]


@dataclass(frozen=True)
class KpiJobs:
    """Handler of ``outcomes.kpis``.

    Attributes:
        metrics: Holds the ``ombud_model_kpi`` gauge.
        windows: Trailing windows exported (``OMBUD_OUTCOMES__KPI_WINDOWS``).
        max_rows: Labelled predictions scored per model and window at most.
    """

    metrics: Metrics
    windows: Sequence[str]
    max_rows: int

    def register(self, registry: JobRegistry) -> None:
        """Register the kind and its every-five-minutes schedule."""
        registry.register(KPI_JOB, self.refresh)
        registry.schedule(KPI_SCHEDULE, KPI_JOB, KPI_CRON)

    async def refresh(self, context: JobContext) -> None:
        """Compute every model's KPIs per window, then replace the gauges' values at once."""
        now = context.clock.now()
        service = KpiService(context.session, self.max_rows)
        models = [m.name for m in await RegistryRepository(context.session).models()]
        samples: list[Sample] = []
        for window in self.windows:
            when = Period(now - parse_window(window), now, window)
            for model in models:
                report = await service.report(model, when, tenant_id=None)
                samples += _samples(report, window)
        gauge = self.metrics.model_kpi
        # No await from here on: a scrape sees the old values or the new ones, never a mix.
        gauge.clear()
        for labels, value in samples:
            gauge.labels(*labels).set(value)
        log.info("model KPIs refreshed: %d models, %d values", len(models), len(samples))


def _samples(report: KpiReport, window: str) -> list[Sample]:
    out: list[Sample] = []
    for version in report.versions:
        values = _values(version.kpis)
        for kpi, value in values.items():
            out.append(((report.model, str(version.version), kpi, window), value))
    return out


def _values(kpis: Kpis) -> dict[str, float]:
    dumped = kpis.model_dump(include=set(GAUGED))
    return {name: float(dumped[name]) for name in GAUGED if dumped[name] is not None}
