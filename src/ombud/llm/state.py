"""What the LLM stages of one call share: kept on ``Call.llm``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ombud.llm.types import ChatRequest, ChatResult, EmbeddingRequest, EmbeddingResult, StreamEvent

if TYPE_CHECKING:
    from ombud.llm.cache import CachedAnswer, CacheKey
    from ombud.llm.routing import Attempted, Plan
    from ombud.llm.usage.budgets import Reservation

Protocol = Literal["openai", "anthropic"]
Kind = Literal["chat", "embedding"]
CacheDirective = Literal["use", "refresh", "off"]


@dataclass(eq=False)
class LlmState:
    """One LLM call: the parsed request, its route, budget hold, cache entry and answer."""

    protocol: Protocol
    kind: Kind
    alias: str
    chat: ChatRequest | None = None
    embedding: EmbeddingRequest | None = None
    include_usage: bool = False
    encoding_format: Literal["float", "base64"] = "float"
    input_tokens: int = 0
    max_output_tokens: int = 0
    plan: Plan | None = None
    reservation: Reservation | None = None
    cache_directive: CacheDirective = "use"
    cache_key: CacheKey | None = None
    cached: CachedAnswer | None = None
    cache_tier: str | None = None
    attempted: Attempted[Any] | None = None
    answer: ChatResult | EmbeddingResult | None = None
    stream: AsyncIterator[StreamEvent] | None = None
    """For a streamed call: the upstream's events after the first one (consumed by the route)."""
    first: list[StreamEvent] = field(default_factory=list)
    """Events already read from the upstream (the first one) while routing."""
    started: float = 0.0
    soft_limits: list[str] = field(default_factory=list)
    recorded: bool = False
    """The usage record is written (or being written): nothing may charge the call again."""
    deferred: AsyncExitStack | None = None
    """A streamed call's clean-ups, closed by the route when the stream ends."""

    @property
    def streaming(self) -> bool:
        return self.chat is not None and self.chat.stream

    def require_chat(self) -> ChatRequest:
        if self.chat is None:
            raise RuntimeError("not a chat call")
        return self.chat
