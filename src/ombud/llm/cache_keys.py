"""Response-cache keys and per-request cache directives.

A key is SHA-256 over a JSON header (key format version, route, alias, the plan's sorted
(deployment, version) pairs, tenant and the semantic request fields) followed by each text as
its byte length and bytes, so splitting texts differently never collides. ``stream`` and
``user`` are not part of it; ``\\r\\n`` is normalised to ``\\n`` and numbers to floats.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ombud.llm.types import ChatRequest, EmbeddingRequest

Directive = Literal["use", "refresh", "off"]

_KEY_VERSION = "ombud.llmcache/1"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Where an answer is cached.

    Attributes:
        digest: Hex SHA-256 of the request's canonical form (:func:`cache_key`).
        tenant_id: The tenant: also part of the digest, and of the Redis key so that tenants never
            share an entry even by accident.
        subject: The data subject the call was made for, if any: not part of the digest (two
            subjects sending the same request share the answer), used to index the entry for
            erasure.
    """

    digest: str
    tenant_id: str
    subject: str | None


def _text(value: str) -> str:
    """Line endings normalised, nothing else: clients on different platforms send the same text
    with ``\\r\\n`` or ``\\n``; any other difference (whitespace included) may change the answer."""
    return value.replace("\r\n", "\n") if "\r" in value else value


def _number(value: float | None) -> float | None:
    """``0`` and ``0.0`` are the same setting."""
    return None if value is None else float(value)


def cache_key(
    *,
    tenant_id: str,
    subject: str | None,
    route: str,
    alias: str,
    deployment_versions: Sequence[tuple[str, str]],
    request: ChatRequest | EmbeddingRequest,
) -> CacheKey:
    """The key of a request: SHA-256 over a canonical form of what can change its answer.

    Part of the key: the tenant, the route, the alias the request resolved to, the candidate
    deployments with their versions (sorted: load balancing reorders the plan per call, but the set
    of deployments that may answer is what matters), and for chat the system prompt, the messages'
    roles and contents, ``max_tokens``, ``temperature``, ``top_p``, ``stop`` and ``seed``; for
    embeddings the inputs and ``dimensions``.

    Not part of the key: ``stream`` (a streamed and a non-streamed call share an entry), ``user``
    (an end-user tag for the upstream's abuse monitoring) and the model name as the client spelled
    it (``alias`` stands for it).

    Chat texts have ``\\r\\n`` normalised to ``\\n`` and are otherwise exact. Embedding inputs are
    exact: a vector is a function of its input's exact bytes, and a hit must return the vector that
    very input would get.
    """
    versions = sorted(deployment_versions)
    header: list[Any]
    texts: list[str]
    if isinstance(request, ChatRequest):
        texts = [_text(m.content) for m in request.messages]
        if request.system is not None:
            texts.insert(0, _text(request.system))
        header = [
            _KEY_VERSION,
            tenant_id,
            route,
            versions,
            "chat",
            alias,
            request.system is not None,
            [m.role for m in request.messages],
            request.max_tokens,
            _number(request.temperature),
            _number(request.top_p),
            request.stop,
            request.seed,
        ]
    else:
        texts = request.inputs
        header = [
            _KEY_VERSION,
            tenant_id,
            route,
            versions,
            "embedding",
            alias,
            len(texts),
            request.dimensions,
        ]
    # The canonical form: the JSON header (ASCII, so it holds no raw newline) and a newline, then
    # every text as its UTF-8 byte length and its bytes. Texts skip JSON escaping, which would
    # cost several times the hashing of long prompts.
    digest = hashlib.sha256(json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n")
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(b"%d:" % len(data))
        digest.update(data)
    return CacheKey(digest.hexdigest(), tenant_id, subject)


def cache_directive(headers: Mapping[str, str]) -> Directive:
    """What a request asks of the cache, from its headers (names matched case-insensitively).

    * ``off``: neither read nor store: ``Cache-Control: no-store`` or ``X-Ombud-Cache: off``.
    * ``refresh``: do not read, but store the fresh answer: ``Cache-Control: no-cache`` or
      ``X-Ombud-Cache: refresh``.
    * ``use``: read, and store on a miss.

    ``off`` wins over ``refresh``; unknown directives are ignored.
    """
    result: Directive = "use"
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "cache-control":
            for directive in value.split(","):
                token = directive.split("=", 1)[0].strip().lower()
                if token == "no-store":
                    return "off"
                if token == "no-cache":
                    result = "refresh"
        elif lowered == "x-ombud-cache":
            token = value.strip().lower()
            if token == "off":
                return "off"
            if token == "refresh":
                result = "refresh"
    return result
