"""``ombud worker``: run background jobs in a process of their own.

Use it when the embedded worker is off (``OMBUD_JOBS__EMBEDDED_WORKER=false``), or to add
workers beside the servers: any number may run against one database.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import anyio
import typer

from ombud.cli.runtime import load_settings
from ombud.config import Settings
from ombud.container import Container
from ombud.deployments.wiring import deployment_jobs
from ombud.features.wiring import materialize_jobs
from ombud.jobs.catalog import default_registry
from ombud.jobs.worker import build_worker
from ombud.observability.logging import configure_logging
from ombud.outcomes.wiring import kpi_jobs
from ombud.privacy.wiring import privacy_jobs
from ombud.review.wiring import review_jobs


def worker() -> None:
    """Run jobs until SIGINT or SIGTERM; running jobs finish (or are handed back) first."""
    settings = load_settings()
    configure_logging(json=not sys.stderr.isatty())
    asyncio.run(_work(settings))
    typer.echo("ombud worker stopped")


async def _work(settings: Settings) -> None:
    container = Container.create(settings)
    try:
        job_worker = build_worker(
            sessions=container.sessions,
            clock=container.clock,
            settings=settings.jobs,
            metrics=container.metrics,
            registry=default_registry(
                review=review_jobs(container),
                deployments=deployment_jobs(container),
                outcomes=kpi_jobs(container),
                features=materialize_jobs(container),
                privacy=privacy_jobs(container),
            ),
        )
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, stop)
            typer.echo(f"ombud worker {job_worker.worker_id} is running (stop: Ctrl-C or SIGTERM)")
            await job_worker.run(stop)
            group.cancel_scope.cancel()
    finally:
        await container.aclose()


async def _stop_on_signal(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            typer.echo(f"received {signal.Signals(received).name}; stopping", err=True)
            stop.set()
