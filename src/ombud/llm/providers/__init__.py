"""Provider adapters: the gateway's neutral requests in each upstream's wire protocol.

:func:`build_providers` gives one adapter per catalog provider kind, all sharing one pooled
:class:`UpstreamClient` (the built-in local models need no network).
"""

from __future__ import annotations

from ombud.llm.providers.anthropic import AnthropicProvider
from ombud.llm.providers.base import Provider
from ombud.llm.providers.http import SseEvent, UpstreamClient, UpstreamStream
from ombud.llm.providers.local import LocalProvider
from ombud.llm.providers.openai import OpenAIProvider

__all__ = [
    "AnthropicProvider",
    "LocalProvider",
    "OpenAIProvider",
    "Provider",
    "SseEvent",
    "UpstreamClient",
    "UpstreamStream",
    "build_providers",
]


def build_providers(client: UpstreamClient) -> dict[str, Provider]:
    """One adapter per catalog ``ProviderKind``."""
    openai = OpenAIProvider(client)
    return {
        "openai": openai,
        "openai_compatible": openai,
        "anthropic": AnthropicProvider(client),
        "local": LocalProvider(),
    }
