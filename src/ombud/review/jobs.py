"""The review domain's jobs: outcome webhook delivery and deadline escalation.

Handlers need services a bare ``JobContext`` does not carry (keys, the outbound policy, the
record writer, metrics), so they are methods of :class:`ReviewJobs`, built from the container
by whoever builds a worker and registered through ``default_registry(review=...)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ombud.core.errors import OutboundRefused
from ombud.crypto.service import KeyManager
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.observability.metrics import Metrics
from ombud.records.writer import RecordWriter
from ombud.review.repository import ReviewRepository
from ombud.review.service import WEBHOOK_JOB, ReviewService
from ombud.review.webhooks import DeliveryFailed, WebhookSender, reveal_secret

log = logging.getLogger(__name__)

ESCALATE_JOB = "review.escalate"
ESCALATE_SCHEDULE = "review.escalate.every-minute"
ESCALATE_CRON = "* * * * *"


@dataclass(frozen=True)
class ReviewJobs:
    """Handlers of ``review.webhook`` and ``review.escalate``.

    Attributes:
        keys: Returns the key manager (built lazily: workers that never deliver need no keyring).
        sender: Delivers signed webhook posts.
        records: The audit record writer.
        metrics: Escalation and delivery counters.
        webhook_attempts: Attempts given to webhooks enqueued by escalations.
    """

    keys: Callable[[], KeyManager]
    sender: WebhookSender
    records: RecordWriter
    metrics: Metrics
    webhook_attempts: int = 8

    def register(self, registry: JobRegistry) -> None:
        """Register both kinds and the every-minute escalation schedule."""
        registry.register(WEBHOOK_JOB, self.deliver)
        registry.register(ESCALATE_JOB, self.escalate)
        registry.schedule(ESCALATE_SCHEDULE, ESCALATE_JOB, ESCALATE_CRON)

    async def escalate(self, context: JobContext) -> None:
        """Escalate overdue reviews; their webhooks commit with this job."""
        service = ReviewService(
            context.session, context.clock, self.records, self.metrics,
            webhook_attempts=self.webhook_attempts,
        )  # fmt: skip
        escalated = await service.escalate_overdue()
        if escalated:
            log.info("escalated %d overdue reviews", len(escalated))

    async def deliver(self, context: JobContext) -> None:
        """POST one event to the tenant's webhook; raising makes the runner retry it.

        Payload: ``tenant_id``, ``review_id``, ``event``, ``event_id`` and the ``body`` to send
        (a snapshot taken at the transition, so a retry sends the same document).
        """
        tenant_id = str(context.payload["tenant_id"])
        event_id = str(context.payload["event_id"])
        webhook = await ReviewRepository(context.session).webhook(tenant_id)
        if webhook is None:
            log.info("webhook event %s dropped: tenant has no webhook any more", event_id)
            self.metrics.review_webhook_deliveries.labels(outcome="dropped").inc()
            return
        secret = await reveal_secret(self.keys(), tenant_id, webhook.secret_ciphertext)
        body = json.dumps(context.payload["body"], separators=(",", ":"), sort_keys=True).encode()
        try:
            await self.sender.send(
                webhook.url, secret, body, event_id=event_id, at=context.clock.now()
            )
        except (DeliveryFailed, OutboundRefused, TimeoutError):
            self.metrics.review_webhook_deliveries.labels(outcome="failed").inc()
            raise
        self.metrics.review_webhook_deliveries.labels(outcome="delivered").inc()
