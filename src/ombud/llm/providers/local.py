"""Built-in models that run in-process: no network, no key, deterministic, cheap.

They let the gateway work (and be tested, demonstrated and benchmarked) with no upstream:

* ``local-echo`` answers with the last user message verbatim;
* ``local`` answers with a short sentence derived from the last user message;
* ``local-embed`` embeds by feature hashing: every lower-case word adds ±1 to one of
  ``dimensions`` (default 256) coordinates chosen by its hash, and the vector is L2-normalised,
  so equal texts get equal vectors and texts sharing words get close ones.

Answers honour ``stop`` (cut before the first stop sequence) and ``max_tokens`` (cut at that
many tokens of the offline estimate, finish reason ``length``), stream word by word, and report
usage counted with the same offline estimate that budgets use.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import AsyncIterator

from ombud.llm.tokens import estimate_embedding_tokens, estimate_request_tokens, estimate_tokens
from ombud.llm.types import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    FinishReason,
    StreamEnd,
    StreamEvent,
    Target,
    TextDelta,
    UpstreamError,
    Usage,
)

ECHO_MODEL = "local-echo"
TEMPLATE_MODEL = "local"
EMBED_MODEL = "local-embed"
DEFAULT_DIMENSIONS = 256
MAX_DIMENSIONS = 4096

_PIECES = re.compile(r"\s*\S+\s*")
_WORDS = re.compile(r"\w+")


class LocalProvider:
    async def chat(self, target: Target, request: ChatRequest) -> ChatResult:
        text, finish = _answer(target, request)
        usage = _usage(request, text)
        return ChatResult(text=text, finish_reason=finish, usage=usage, model=target.model)

    async def stream(self, target: Target, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        text, finish = _answer(target, request)
        for piece in _PIECES.findall(text) or ([text] if text else []):
            yield TextDelta(piece)
            await asyncio.sleep(0)  # let other tasks run between chunks, as a network stream would
        yield StreamEnd(finish_reason=finish, usage=_usage(request, text), model=target.model)

    async def embed(self, target: Target, request: EmbeddingRequest) -> EmbeddingResult:
        if target.model != EMBED_MODEL:
            raise UpstreamError(
                "status", f"{target.deployment}: {target.model!r} does not embed", status=400
            )
        dimensions = DEFAULT_DIMENSIONS if request.dimensions is None else request.dimensions
        if not 1 <= dimensions <= MAX_DIMENSIONS:
            raise UpstreamError(
                "status",
                f"{target.deployment}: dimensions must be between 1 and {MAX_DIMENSIONS}",
                status=400,
            )
        return EmbeddingResult(
            vectors=[hashed_vector(text, dimensions) for text in request.inputs],
            usage=Usage(input_tokens=estimate_embedding_tokens(request.inputs), output_tokens=0),
            model=target.model,
        )


def hashed_vector(text: str, dimensions: int) -> list[float]:
    """The feature-hashing embedding of ``text`` (all zeros for a text without words)."""
    vector = [0.0] * dimensions
    for word in _WORDS.findall(text.lower()):
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dimensions] += 1.0 if digest >> 63 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def _answer(target: Target, request: ChatRequest) -> tuple[str, FinishReason]:
    prompt = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    if target.model == ECHO_MODEL:
        text = prompt
    elif target.model == TEMPLATE_MODEL:
        text = _template(prompt)
    else:
        raise UpstreamError(
            "status", f"{target.deployment}: no local chat model {target.model!r}", status=404
        )
    finish: FinishReason = "stop"
    cuts = [index for index in (text.find(stop) for stop in request.stop if stop) if index >= 0]
    if cuts:
        text = text[: min(cuts)]
    if request.max_tokens is not None and estimate_tokens(text) > request.max_tokens:
        text, finish = _truncate(text, request.max_tokens), "length"
    return text, finish


def _template(prompt: str) -> str:
    words = prompt.split()
    if not words:
        return "You said nothing."
    plural = "word" if len(words) == 1 else "words"
    return f'You said {len(words)} {plural}; the first was "{words[0]}" and the last "{words[-1]}".'


def _truncate(text: str, max_tokens: int) -> str:
    """The longest run of whole words from the start of ``text`` within ``max_tokens``."""
    kept = ""
    for piece in _PIECES.findall(text):
        if estimate_tokens(kept + piece) > max_tokens:
            break
        kept += piece
    return kept.rstrip()


def _usage(request: ChatRequest, text: str) -> Usage:
    return Usage(
        input_tokens=estimate_request_tokens(request),
        output_tokens=estimate_tokens(text),
        estimated=False,
    )
