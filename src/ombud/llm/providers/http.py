"""The one HTTP client every provider adapter shares: pooled, policy-checked, failure-mapped.

One ``aiohttp.ClientSession`` serves all upstreams so that keep-alive connections are reused
across requests and the total number of sockets stays bounded (``pool_size``). Before the first
call to an origin (scheme, host, port), and again every ``recheck_after_s``, the URL passes the
outbound policy; the session's resolver then answers only with the addresses the policy vetted,
so a DNS answer that changes between check and connect (DNS rebinding) cannot steer a call to an
internal address. Redirects are never followed: a redirect could leave the allow-list.

Every failure leaves here as :class:`~ombud.llm.types.UpstreamError` with a message that names
the origin only, never a header or the request body.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import NEEDS_CLEANUP_CLOSED

from ombud.core.clock import Clock, SystemClock
from ombud.core.errors import OutboundRefused
from ombud.llm.types import UpstreamError
from ombud.net.outbound import Destination, OutboundPolicy

_USER_AGENT = "ombud-llm-gateway"
MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest non-streamed answer read (a batch of embeddings is the big case)."""
MAX_EVENT_BYTES = 1024 * 1024
"""Largest single server-sent event; a longer line is a broken or hostile upstream."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event: its ``event:`` name (``message`` when absent) and its data."""

    event: str
    data: str


@dataclass(slots=True)
class _Vetted:
    destination: Destination
    expires_at: float


class _VettedResolver(AbstractResolver):
    """Answers host lookups with the addresses the outbound policy vetted, nothing else.

    A host that was never vetted does not resolve, so no connection can reach an address that
    skipped the policy even if a caller bypassed :meth:`UpstreamClient._vet`.
    """

    def __init__(self) -> None:
        self._addresses: dict[str, tuple[str, ...]] = {}

    def remember(self, host: str, addresses: tuple[str, ...]) -> None:
        self._addresses[_host_key(host)] = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self._addresses.get(_host_key(host))
        if not addresses:
            raise OSError(f"{host!r} was not vetted by the outbound policy")
        results: list[ResolveResult] = []
        for raw in addresses:
            version = ipaddress.ip_address(raw).version
            address_family = socket.AF_INET6 if version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=raw,
                    port=port,
                    family=address_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        if not results:
            raise OSError(f"{host!r} has no vetted address of the requested family")
        return results

    async def close(self) -> None:
        self._addresses.clear()


def _host_key(host: str) -> str:
    return host.lower().rstrip(".")


class UpstreamStream:
    """An upstream answer being streamed: status and headers now, the body as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, origin: str) -> None:
        self._response = response
        self._origin = origin
        self.status = response.status
        self.headers = _headers(response)

    async def read(self) -> bytes:
        """The whole body (for an error answer, which is not an event stream)."""
        try:
            return await _read_body(self._response, self._origin)
        except UpstreamError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _map_error(exc, self._origin) from None

    async def drain(self, limit: int = 64 * 1024) -> None:
        """Read what follows the stream's terminal event (normally just the body's end), so the
        connection goes back to the pool instead of being closed; failures here are moot."""
        content = self._response.content
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            while limit > 0:
                chunk = await content.readany()
                if not chunk:
                    return
                limit -= len(chunk)

    async def events(self) -> AsyncGenerator[SseEvent, None]:
        """The server-sent events of the body, in order, until the upstream ends it.

        A connection dropped mid-body raises ``UpstreamError("connection")``; a silence longer
        than the read timeout raises ``UpstreamError("timeout")``.
        """
        buffer = b""
        event = ""
        data: list[str] = []
        content = self._response.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if len(buffer) > MAX_EVENT_BYTES:
                    raise UpstreamError(
                        "protocol", f"{self._origin} sent an over-long event stream line"
                    )
                for raw in lines:
                    line = _decode_line(raw, self._origin)
                    if not line:
                        if data:
                            yield SseEvent(event or "message", "\n".join(data))
                        event, data = "", []
                        continue
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "data":
                        data.append(value)
                    elif field == "event":
                        event = value
                    # Comments (``:``), ``id`` and ``retry`` carry nothing an adapter uses.
        except UpstreamError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _map_error(exc, self._origin) from None


def _decode_line(raw: bytes, origin: str) -> str:
    try:
        return raw.removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        message = f"{origin} sent an event stream that is not UTF-8"
        raise UpstreamError("protocol", message) from None


class UpstreamClient:
    """The one shared, pooled ``aiohttp.ClientSession`` for all providers.

    The session is created lazily, inside the running loop, on first use.
    """

    def __init__(
        self,
        *,
        outbound: OutboundPolicy,
        pool_size: int = 256,
        pool_size_per_host: int = 0,
        clock: Clock | None = None,
        recheck_after_s: float = 300.0,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._outbound = outbound
        self._pool_size = pool_size
        self._pool_size_per_host = pool_size_per_host
        self._recheck_after_s = recheck_after_s
        self._max_body_bytes = max_body_bytes
        self.clock: Clock = clock or SystemClock()
        self._resolver = _VettedResolver()
        self._vetted: dict[tuple[str, str, int], _Vetted] = {}
        self._session: aiohttp.ClientSession | None = None
        self._connector: aiohttp.TCPConnector | None = None

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The live session, if one was created (for inspection)."""
        return self._session

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._connector = aiohttp.TCPConnector(
                limit=self._pool_size,
                limit_per_host=self._pool_size_per_host,
                ttl_dns_cache=max(1, int(self._recheck_after_s)),
                enable_cleanup_closed=NEEDS_CLEANUP_CLOSED,
                resolver=self._resolver,
            )
            self._session = aiohttp.ClientSession(
                connector=self._connector,
                headers={"User-Agent": _USER_AGENT},
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _vet(self, url: str) -> str:
        """Check ``url`` against the outbound policy (cached per origin); return the origin."""
        try:
            parsed = self._outbound.check_url(url)
        except OutboundRefused as exc:
            raise UpstreamError("connection", f"outbound call refused: {exc.detail}") from None
        key = (parsed.scheme, _host_key(parsed.host), parsed.port)
        origin = f"{parsed.scheme}://{parsed.host}:{parsed.port}"
        now = self.clock.monotonic()
        cached = self._vetted.get(key)
        if cached is not None and cached.expires_at > now:
            return origin
        try:
            destination = await self._outbound.check(url)
        except OutboundRefused as exc:
            self._vetted.pop(key, None)
            raise UpstreamError("connection", f"outbound call refused: {exc.detail}") from None
        self._vetted[key] = _Vetted(destination, now + self._recheck_after_s)
        self._resolver.remember(destination.host, destination.addresses)
        if self._connector is not None and cached is not None:
            # Drop the connector's cached lookup so new connections use the fresh vetting.
            self._connector.clear_dns_cache()
        return origin

    async def post(
        self,
        url: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        connect_timeout_s: float,
    ) -> tuple[int, dict[str, str], bytes]:
        """POST ``body`` as JSON; return status, response headers (lower-case names) and body.

        Any status is returned: mapping non-2xx answers is the adapter's job, since only it
        knows the provider's error shape.
        """
        origin = await self._vet(url)
        session = self._ensure_session()
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        try:
            async with session.post(
                url,
                data=_encode(body),
                headers=_request_headers(headers, "application/json"),
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                payload = await _read_body(response, origin, self._max_body_bytes)
                return response.status, _headers(response), payload
        except UpstreamError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _map_error(exc, origin) from None

    @asynccontextmanager
    async def post_stream(
        self,
        url: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        connect_timeout_s: float,
        read_timeout_s: float | None = None,
    ) -> AsyncIterator[UpstreamStream]:
        """POST ``body`` as JSON and yield the answer as it streams.

        ``timeout_s`` bounds connecting plus the wait for the answer's head (the first byte);
        ``read_timeout_s`` (default ``timeout_s``) bounds each silence between chunks, so a long
        answer may stream for longer than ``timeout_s`` as long as it keeps flowing.
        """
        origin = await self._vet(url)
        session = self._ensure_session()
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=connect_timeout_s,
            sock_read=read_timeout_s if read_timeout_s is not None else timeout_s,
        )
        try:
            async with asyncio.timeout(timeout_s):
                response = await session.post(
                    url,
                    data=_encode(body),
                    headers=_request_headers(headers, "text/event-stream"),
                    timeout=timeout,
                    allow_redirects=False,
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _map_error(exc, origin) from None
        try:
            yield UpstreamStream(response, origin)
        finally:
            response.release()

    async def aclose(self) -> None:
        """Close the session and its pooled connections; a later call opens a new one."""
        session, self._session, self._connector = self._session, None, None
        if session is not None:
            await session.close()


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _request_headers(headers: Mapping[str, str], accept: str) -> dict[str, str]:
    merged = {"Content-Type": "application/json", "Accept": accept}
    merged.update(headers)
    return merged


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


async def _read_body(
    response: aiohttp.ClientResponse, origin: str, limit: int = MAX_BODY_BYTES
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise UpstreamError("protocol", f"{origin} sent an answer over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _map_error(exc: BaseException, origin: str) -> UpstreamError:
    """Turn a transport failure into an :class:`UpstreamError` whose message names only the
    origin and the kind of failure (aiohttp's own messages may quote request details)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamError("timeout", f"timed out connecting to {origin}")
    if isinstance(exc, TimeoutError):
        return UpstreamError("timeout", f"timed out waiting for {origin}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return UpstreamError("connection", f"cannot connect to {origin}: {reason}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return UpstreamError("connection", f"{origin} closed the connection")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError("connection", f"the answer from {origin} was cut short")
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamError("protocol", f"{origin} sent a malformed HTTP answer")
    if isinstance(exc, ConnectionResetError):
        return UpstreamError("connection", f"{origin} reset the connection")
    return UpstreamError("connection", f"connection to {origin} failed ({type(exc).__name__})")
