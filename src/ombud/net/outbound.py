"""The outbound allow-list: every URL ombud calls (identity provider keys, key providers, model
providers) passes here first, so neither configuration nor request input can point ombud at an
internal service (SSRF).

Two checks: the URL itself (scheme, no credentials in it, host on the allow-list — matched as
written, so encodings such as ``2130706433`` or ``0x7f.1`` for 127.0.0.1 never match), and the
addresses the host resolves to (no private, loopback, link-local, reserved or multicast address
unless private networks are explicitly allowed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ombud.config import NetworkSettings
from ombud.core.errors import OutboundRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: str
    host: str
    port: int
    url: str
    addresses: tuple[str, ...] = ()
    """The vetted addresses (set by :meth:`OutboundPolicy.check`): connect to one of these, not
    to a fresh resolution of ``host``, so a DNS answer cannot change between check and use."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class OutboundPolicy:
    def __init__(self, settings: NetworkSettings, resolver: Resolver = system_resolver) -> None:
        self._allowed = [h.lower().rstrip(".") for h in settings.allowed_hosts]
        self._schemes = {s.lower() for s in settings.allowed_schemes}
        self._allow_private = settings.allow_private_networks
        self._resolve = resolver

    def check_url(self, url: str) -> Destination:
        """Parse ``url`` and refuse it unless scheme and host are allowed."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise OutboundRefused(detail=f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in self._schemes:
            raise OutboundRefused(detail=f"scheme {scheme or '(none)'!r} is not allowed")
        if parts.username is not None or parts.password is not None:
            raise OutboundRefused(detail="credentials in the URL are not allowed")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise OutboundRefused(detail="the URL has no host")
        if not self._host_allowed(host):
            raise OutboundRefused(detail=f"host {host!r} is not on the outbound allow-list")
        return Destination(scheme, host, port or _DEFAULT_PORTS.get(scheme, 443), url)

    async def check(self, url: str) -> Destination:
        """:meth:`check_url`, then refuse hosts resolving to internal addresses."""
        destination = self.check_url(url)
        try:
            addresses = await self._resolve(destination.host, destination.port)
        except OSError as exc:
            raise OutboundRefused(detail=f"cannot resolve {destination.host!r}: {exc}") from None
        if not addresses:
            raise OutboundRefused(detail=f"{destination.host!r} resolves to nothing")
        for raw in addresses:
            address = ipaddress.ip_address(raw.split("%", 1)[0])
            if _internal(address) and not self._allow_private:
                raise OutboundRefused(
                    detail=f"{destination.host!r} resolves to the internal address {address}"
                )
        return dataclasses.replace(
            destination, addresses=tuple(raw.split("%", 1)[0] for raw in addresses)
        )

    def _host_allowed(self, host: str) -> bool:
        for allowed in self._allowed:
            if allowed.startswith("*.") and host.endswith(allowed[1:]) and host != allowed[2:]:
                return True
            if host == allowed:
                return True
        return False


def _internal(address: IPAddress) -> bool:
    """Anything not globally routable, including addresses hidden inside IPv6 (mapped, 6to4,
    Teredo) and shared address space such as 100.64.0.0/10 (home of some metadata services)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _internal(embedded)
        if address.teredo is not None:
            return True
    return not address.is_global or address.is_multicast
