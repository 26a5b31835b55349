from __future__ import annotations

from ipaddress import ip_address

import pytest

from ombud.ratelimit.client_ip import client_ip, forwarded_chain, parse_trusted_proxies

TRUSTED = parse_trusted_proxies(["10.0.0.0/8", "fd00::/8", "192.0.2.1"])


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", v.encode()) for v in values]


def fwd(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"forwarded", v.encode()) for v in values]


def test_without_a_trusted_peer_the_header_is_ignored() -> None:
    spoofed = xff("1.1.1.1")
    assert client_ip("203.0.113.9", spoofed, TRUSTED) == ip_address("203.0.113.9")
    assert client_ip("203.0.113.9", spoofed, ()) == ip_address("203.0.113.9")


def test_a_trusted_proxy_is_believed_walking_from_the_right() -> None:
    # The client wrote 1.1.1.1 itself; the proxies appended the real addresses after it.
    headers = xff("1.1.1.1, 198.51.100.7", "10.1.2.3")
    assert client_ip("10.0.0.5", headers, TRUSTED) == ip_address("198.51.100.7")


def test_without_a_header_a_trusted_peer_is_the_client() -> None:
    assert client_ip("10.0.0.5", [], TRUSTED) == ip_address("10.0.0.5")


def test_a_chain_of_only_trusted_hops_gives_the_leftmost() -> None:
    assert client_ip("10.0.0.5", xff("10.9.9.9, 10.1.1.1"), TRUSTED) == ip_address("10.9.9.9")


@pytest.mark.parametrize("bad", ["unknown", "not-an-ip", "", "1.2.3.4.5", "[::1", "_hidden"])
def test_a_malformed_hop_stops_the_walk_at_the_proxy_that_reported_it(bad: str) -> None:
    headers = xff(f"1.1.1.1, {bad}, 10.1.1.1")
    assert client_ip("10.0.0.5", headers, TRUSTED) == ip_address("10.1.1.1")


def test_ports_brackets_and_ipv6() -> None:
    headers = xff("[2001:db8::7]:4711, 198.51.100.7:8080")
    assert client_ip("fd00::1", headers, TRUSTED) == ip_address("198.51.100.7")
    assert client_ip("fd00::1", xff("2001:db8::7"), TRUSTED) == ip_address("2001:db8::7")
    assert client_ip("[2001:db8::9]", [], TRUSTED) == ip_address("2001:db8::9")


def test_ipv4_mapped_addresses_are_ipv4() -> None:
    assert client_ip("::ffff:10.0.0.5", xff("198.51.100.7"), TRUSTED) == ip_address("198.51.100.7")
    assert client_ip("::ffff:203.0.113.9", [], ()) == ip_address("203.0.113.9")


def test_rfc7239_forwarded() -> None:
    headers = fwd('for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https', "For=10.2.2.2;by=x")
    assert client_ip("10.0.0.5", headers, TRUSTED, "forwarded") == ip_address("2001:db8:cafe::17")
    assert forwarded_chain(fwd("proto=http, for=_hidden"), "forwarded") == ["", "_hidden"]
    assert client_ip("10.0.0.5", fwd("for=1.1.1.1, proto=http"), TRUSTED, "forwarded") == (
        ip_address("10.0.0.5")
    )


def test_only_the_configured_header_counts() -> None:
    headers = fwd("for=1.1.1.1") + xff("198.51.100.7")
    assert client_ip("10.0.0.5", headers, TRUSTED) == ip_address("198.51.100.7")
    assert client_ip("10.0.0.5", headers, TRUSTED, "forwarded") == ip_address("1.1.1.1")


def test_header_names_are_matched_case_insensitively_and_bytes_are_tolerated() -> None:
    headers = [(b"X-Forwarded-For", b"198.51.100.7"), (b"x-forwarded-for", b"\xff\xfe")]
    assert client_ip("10.0.0.5", headers, TRUSTED) == ip_address("10.0.0.5")
    assert client_ip("10.0.0.5", headers[:1], TRUSTED) == ip_address("198.51.100.7")


def test_a_peer_that_is_not_an_address_gives_none() -> None:
    assert client_ip(None, xff("1.1.1.1"), TRUSTED) is None
    assert client_ip("testclient", xff("1.1.1.1"), TRUSTED) is None


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(ValueError, match="does not appear"):
        parse_trusted_proxies(["10.0.0.0/8", "proxy.internal"])
