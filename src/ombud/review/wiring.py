"""Builds the review domain's services from the container (which must not know about them)."""

from __future__ import annotations

from ombud.container import Container
from ombud.net.outbound import OutboundPolicy
from ombud.review.jobs import ReviewJobs
from ombud.review.opener import ReviewOpener
from ombud.review.webhooks import WebhookSender


def review_jobs(container: Container) -> ReviewJobs:
    """The review job handlers for a worker of ``container``'s process."""
    return ReviewJobs(
        keys=lambda: container.keys,
        sender=WebhookSender(OutboundPolicy(container.settings.network)),
        records=container.records,
        metrics=container.metrics,
        webhook_attempts=container.settings.jobs.max_attempts,
    )


def review_opener(container: Container) -> ReviewOpener:
    """What the request path calls to send a call to review (``open_for_call``)."""
    return ReviewOpener(container.sessions, container.clock, container.records, container.metrics)
