"""The client address of a request, for per-IP limits, that a client cannot forge.

A forwarding header (``X-Forwarded-For``, or RFC 7239 ``Forwarded``) is believed only when the
connection comes from a configured trusted proxy. Each proxy appends the address it received the
request from, so the chain is read from the right: trusted hops are skipped and the first
address that is not a trusted proxy is the client. Whatever a client wrote into the header
itself lies further left and is never reached, unless every hop to its right is trusted.

The header must be one that the trusted proxies actually write: if they write
``X-Forwarded-For`` but pass ``Forwarded`` through untouched, a client controls all of the
latter. Hence one configured header (``OMBUD_RATELIMIT__CLIENT_IP_HEADER``), never both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ForwardingHeader = Literal["x-forwarded-for", "forwarded"]


def parse_trusted_proxies(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse ``OMBUD_RATELIMIT__TRUSTED_PROXIES``: CIDRs or single addresses.

    Raises:
        ValueError: An entry is not a network; misconfiguration must not pass silently.
    """
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def parse_address(text: str) -> IPAddress | None:
    """An address from a header or peer, or ``None`` when it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:443``; an IPv4-mapped IPv6 address is returned as the IPv4 address, so one
    client has one spelling.
    """
    value = text.strip().strip('"')
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        value = value[1:end]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    # Repeated header lines form one comma-separated list, in order (RFC 9110, 5.3).
    return [value.decode("latin-1") for key, value in headers if key.lower() == name]


def _forwarded_for(element: str) -> str | None:
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if sep and name.strip().lower() == "for":
            return value.strip()
    return None


def forwarded_chain(
    headers: Iterable[tuple[bytes, bytes]], header: ForwardingHeader = "x-forwarded-for"
) -> list[str]:
    """The hops a forwarding header lists, leftmost (claimed original client) first.

    An RFC 7239 element without ``for=`` is kept as an empty hop, so it still breaks the chain.
    """
    hops: list[str] = []
    for line in _header_values(headers, header.encode()):
        for element in line.split(","):
            if header == "forwarded":
                hops.append(_forwarded_for(element) or "")
            else:
                hops.append(element.strip())
    return hops


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_ip(
    peer: str | None,
    headers: Iterable[tuple[bytes, bytes]],
    trusted: Sequence[IPNetwork],
    header: ForwardingHeader = "x-forwarded-for",
) -> IPAddress | None:
    """The client address of a request.

    Args:
        peer: The connection's remote address (the host of ASGI ``scope["client"]``).
        headers: The raw request headers (ASGI ``scope["headers"]``).
        trusted: Networks of the proxies whose forwarding header is believed.
        header: The forwarding header those proxies write.

    Returns:
        The peer address unless it is a trusted proxy; else the rightmost hop of the chain
        that is not a trusted proxy. A malformed or obfuscated hop (``unknown``, ``_hidden``)
        ends the walk at the trusted proxy that reported it. ``None`` when the peer is not an
        IP address (a Unix socket, a test client).
    """
    current = parse_address(peer) if peer is not None else None
    if current is None or not _is_trusted(current, trusted):
        return current
    for hop in reversed(forwarded_chain(headers, header)):
        address = parse_address(hop)
        if address is None:
            return current
        current = address
        if not _is_trusted(current, trusted):
            return current
    # Every hop was a trusted proxy: the request began inside the trusted network.
    return current
