"""The LLM gateway's own types: one request and result shape whatever the protocol or provider.

The OpenAI- and Anthropic-compatible routes parse their wire format into these; provider
adapters turn them into an upstream's wire format and back. Nothing here knows HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(slots=True)
class ChatRequest:
    """A chat completion request, protocol-neutral.

    ``model`` is what the client asked for (an alias); the router maps it to deployments.
    ``system`` holds the system prompt(s) apart from ``messages`` (Anthropic keeps it apart too).
    """

    model: str
    messages: list[Message]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    user: str | None = None
    seed: int | None = None

    def texts(self) -> list[str]:
        """Every text of the request, system first: what input guards read."""
        head = [self.system] if self.system else []
        return head + [m.content for m in self.messages]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call; ``estimated`` when the provider reported none and they were counted
    offline."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ChatResult:
    text: str
    finish_reason: FinishReason
    usage: Usage | None
    model: str
    """The model that answered, as the upstream named it."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of a streamed answer."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The end of a streamed answer (the usage block, if the upstream sent one)."""

    finish_reason: FinishReason
    usage: Usage | None
    model: str


StreamEvent = TextDelta | StreamEnd


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    dimensions: int | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    vectors: list[list[float]]
    usage: Usage | None
    model: str


@dataclass(frozen=True, slots=True)
class Target:
    """Where one attempt goes: what an adapter needs, credentials included (never printed)."""

    deployment: str
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    """Adapter options from the deployment (e.g. ``anthropic_version``)."""


class UpstreamError(Exception):
    """An attempt at one deployment failed.

    Attributes:
        kind: ``status`` (the upstream answered an error status), ``timeout``, ``connection``
            (refused or reset), ``protocol`` (malformed answer, a stream cut mid-way).
        status: The upstream's HTTP status for ``status`` errors.
        retryable: Whether another attempt (same or another deployment) may succeed: 408, 409,
            429 and 5xx statuses, timeouts, connection and protocol errors; other 4xx are the
            request's own fault and are not retried.
        message: Safe to show to the client (never holds credentials).
    """

    def __init__(
        self,
        kind: Literal["status", "timeout", "connection", "protocol"],
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        if self.kind != "status":
            return True
        return self.status is not None and (self.status in (408, 409, 429) or self.status >= 500)

    def __repr__(self) -> str:
        return f"UpstreamError({self.kind!r}, {self.message!r}, status={self.status})"
