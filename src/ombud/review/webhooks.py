"""Outcome webhooks: registration, signing and delivery.

Each delivery is a JSON ``POST`` signed Stripe-style: ``Ombud-Signature: t=<unix>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256 under the tenant's secret of ``"<t>.<body>"``. Receivers recompute
it and refuse stale timestamps, which defeats replays. The secret is shown once at registration
and stored only encrypted under a system data key of the tenant's webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import secrets
import urllib.error
import urllib.request
from datetime import datetime

import anyio.to_thread

from ombud.core.clock import Clock
from ombud.crypto.service import KeyManager
from ombud.net.outbound import OutboundPolicy
from ombud.review.repository import ReviewRepository
from ombud.review.schemas import WebhookRead

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Ombud-Signature"
EVENT_HEADER = "Ombud-Event-Id"
KEY_SCOPE = "system"
DELIVERY_TIMEOUT_S = 5.0
MAX_RESPONSE_BYTES = 64 * 1024


class DeliveryFailed(Exception):
    """The receiver did not accept the delivery; the job runner retries it with backoff."""


def key_owner(tenant_id: str) -> str:
    return f"webhook:{tenant_id}"


def _aad(tenant_id: str) -> bytes:
    # Binds the ciphertext to its row: a secret copied onto another tenant's row will not open.
    return f"review_webhooks:{tenant_id}".encode()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Ombud-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: recompute the signature and refuse stale or altered deliveries."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class WebhookRegistry:
    """Registers and removes a tenant's webhook, in the caller's unit of work."""

    def __init__(
        self, repository: ReviewRepository, keys: KeyManager, policy: OutboundPolicy, clock: Clock
    ) -> None:
        self._repo = repository
        self._keys = keys
        self._policy = policy
        self._clock = clock

    async def register(self, tenant_id: str, url: str) -> WebhookRead:
        """Store ``url`` with a fresh secret and return the secret, this once.

        Raises:
            OutboundRefused: The URL is not on the outbound allow-list (SSRF).
        """
        self._policy.check_url(url)
        secret = f"whsec_{secrets.token_urlsafe(32)}"
        ciphertext = await self._keys.encrypt(
            secret.encode(), scope=KEY_SCOPE, owner=key_owner(tenant_id), aad=_aad(tenant_id)
        )
        now = self._clock.now()
        await self._repo.put_webhook(tenant_id, url, ciphertext, now)
        return WebhookRead(url=url, secret=secret, created_at=now)

    async def remove(self, tenant_id: str) -> bool:
        return await self._repo.delete_webhook(tenant_id)


async def reveal_secret(keys: KeyManager, tenant_id: str, ciphertext: bytes) -> str:
    plain = await keys.decrypt(
        ciphertext, aad=_aad(tenant_id), scope=KEY_SCOPE, owner=key_owner(tenant_id)
    )
    return plain.decode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead anywhere, past the allow-list check made on the registered URL.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class WebhookSender:
    """Posts one signed delivery; raises :class:`DeliveryFailed` unless the receiver says 2xx.

    Args:
        policy: Checked again, with DNS, right before connecting: the host's addresses may
            have changed since registration.
        timeout_s: For connecting and for the answer; a slow receiver fails and is retried.
    """

    def __init__(self, policy: OutboundPolicy, *, timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        self._policy = policy
        self._timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirects())

    async def send(self, url: str, secret: str, body: bytes, *, event_id: str, at: datetime) -> int:
        """Deliver ``body`` to ``url``; returns the receiver's status code."""
        await self._policy.check(url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ombud-webhooks",
            SIGNATURE_HEADER: sign(secret, body, int(at.timestamp())),
            EVENT_HEADER: event_id,
        }
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with anyio.fail_after(self._timeout_s * 2):
            return await anyio.to_thread.run_sync(self._post, request)

    def _post(self, request: urllib.request.Request) -> int:
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                response.read(MAX_RESPONSE_BYTES)
                status = int(response.status)
        except urllib.error.HTTPError as exc:  # non-2xx answers and refused redirects
            raise DeliveryFailed(f"receiver answered HTTP {exc.code}") from None
        # OSError covers URLError, timeouts and refused connections.
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= status < 300:
            raise DeliveryFailed(f"receiver answered HTTP {status}")
        return status
