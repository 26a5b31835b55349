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
import socket
import ssl
import time
from datetime import datetime
from urllib.parse import urlsplit

import anyio.to_thread

from ombud.core.clock import Clock
from ombud.crypto.service import KeyManager
from ombud.net.outbound import Destination, OutboundPolicy
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


class WebhookSender:
    """Posts one signed delivery; raises :class:`DeliveryFailed` unless the receiver says 2xx.

    The host is checked against the outbound policy with DNS right before connecting, and the
    connection goes to the address that was checked (the certificate is still verified for the
    host name), so a DNS answer cannot change between the check and the connection. Redirects
    are not followed. The whole exchange has one deadline, however slowly the receiver trickles.

    Args:
        policy: The outbound allow-list.
        timeout_s: Deadline for connecting, sending and reading the answer.
    """

    def __init__(self, policy: OutboundPolicy, *, timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        self._policy = policy
        self._timeout_s = timeout_s

    async def send(self, url: str, secret: str, body: bytes, *, event_id: str, at: datetime) -> int:
        """Deliver ``body`` to ``url``; returns the receiver's status code."""
        destination = await self._policy.check(url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ombud-webhooks",
            SIGNATURE_HEADER: sign(secret, body, int(at.timestamp())),
            EVENT_HEADER: event_id,
        }
        return await anyio.to_thread.run_sync(self._post, destination, body, headers)

    def _post(self, destination: Destination, body: bytes, headers: dict[str, str]) -> int:
        deadline = time.monotonic() + self._timeout_s
        connection = _pinned_connection(destination, self._timeout_s)
        try:
            path = urlsplit(destination.url)
            target = (path.path or "/") + (f"?{path.query}" if path.query else "")
            connection.request("POST", target, body=body, headers={**headers, "Host": path.netloc})
            response = connection.getresponse()
            _read_until(response, deadline)
            status = int(response.status)
        except (OSError, http.client.HTTPException) as exc:
            # OSError covers refused connections, timeouts and TLS failures.
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        finally:
            connection.close()
        if not 200 <= status < 300:
            raise DeliveryFailed(f"receiver answered HTTP {status}")
        return status


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a vetted address, with SNI and certificate checks for the original host name."""

    def __init__(self, address: str, port: int, host: str, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = host

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self._server_name
        )


def _pinned_connection(destination: Destination, timeout: float) -> http.client.HTTPConnection:
    if not destination.addresses:
        raise DeliveryFailed("the destination was not vetted")
    address = destination.addresses[0]
    if destination.scheme == "https":
        return _PinnedHTTPSConnection(address, destination.port, destination.host, timeout)
    return http.client.HTTPConnection(address, destination.port, timeout=timeout)


def _read_until(response: http.client.HTTPResponse, deadline: float) -> None:
    """Read at most ``MAX_RESPONSE_BYTES`` of the answer, giving up at ``deadline``."""
    remaining = MAX_RESPONSE_BYTES
    while remaining > 0:
        if time.monotonic() > deadline:
            raise DeliveryFailed("the receiver answered too slowly")
        chunk = response.read1(min(remaining, 8192))
        if not chunk:
            return
        remaining -= len(chunk)
