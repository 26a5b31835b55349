"""SSRF: configured or requested URLs that must never be called."""

from __future__ import annotations

import pytest

from ombud.config import NetworkSettings
from ombud.core.errors import OutboundRefused
from ombud.net import OutboundPolicy

pytestmark = pytest.mark.anyio

ALLOWED = NetworkSettings(
    allowed_hosts=["api.openai.com", "*.vault.example.com", "idp.example.com"]
)


def _resolver(addresses: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return addresses[host]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://api.openai.com/v1",  # plain http
        "file:///etc/passwd",
        "gopher://api.openai.com:70/_",
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata
        "https://127.0.0.1:6379/",
        "https://2130706433/",  # 127.0.0.1 as a decimal integer
        "https://0x7f.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost/",
        "https://api.openai.com@evil.example.net/",  # userinfo trick: the host is evil
        "https://user:pass@api.openai.com/",  # credentials in the URL
        "https://api.openai.com.evil.example.net/",  # suffix trick
        "https://vault.example.com/",  # the wildcard covers subdomains only
        "https://api.openai.com:99999/",  # bad port
        "",
        "not a url",
    ],
)
def test_urls_off_the_allow_list_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy(ALLOWED).check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "https://API.OPENAI.COM./v1",
        "https://eu.vault.example.com:8200/",
    ],
)
def test_allowed_urls_pass(url: str) -> None:
    destination = OutboundPolicy(ALLOWED).check_url(url)
    assert destination.scheme == "https"


async def test_an_allowed_name_resolving_to_an_internal_address_is_refused() -> None:
    """DNS pointing an allowed name at the metadata service or the loopback is refused."""
    policy = OutboundPolicy(
        ALLOWED,
        resolver=_resolver(
            {"idp.example.com": ["169.254.169.254"], "api.openai.com": ["10.0.0.5", "1.2.3.4"]}
        ),
    )
    with pytest.raises(OutboundRefused, match="internal address 169.254.169.254"):
        await policy.check("https://idp.example.com/jwks")
    with pytest.raises(OutboundRefused, match="internal address 10.0.0.5"):
        await policy.check("https://api.openai.com/v1")


async def test_public_addresses_pass_and_private_ones_only_when_allowed() -> None:
    public = OutboundPolicy(ALLOWED, resolver=_resolver({"api.openai.com": ["104.18.7.192"]}))
    assert (await public.check("https://api.openai.com/v1")).port == 443
    private = OutboundPolicy(
        NetworkSettings(allowed_hosts=["vllm.internal"], allow_private_networks=True,
                        allowed_schemes=["http", "https"]),
        resolver=_resolver({"vllm.internal": ["10.1.2.3"]}),
    )  # fmt: skip
    assert (await private.check("http://vllm.internal:8000/v1")).port == 8000


async def test_check_returns_the_vetted_addresses_to_connect_to() -> None:
    """The caller connects to what was checked, never to a second DNS answer (rebinding)."""
    from ombud.review.webhooks import _pinned_connection

    answers = iter([["104.18.7.192"], ["169.254.169.254"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    policy = OutboundPolicy(ALLOWED, resolver=rebinding)
    destination = await policy.check("https://api.openai.com/hooks")
    assert destination.addresses == ("104.18.7.192",)
    connection = _pinned_connection(destination, timeout=1.0)
    assert connection.host == "104.18.7.192"  # not whatever the name resolves to next
