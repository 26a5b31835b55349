"""A fake LLM upstream that speaks both the OpenAI and the Anthropic wire protocol over real HTTP.

Routes (``aiohttp.web``, bound to 127.0.0.1):

- ``POST /v1/chat/completions`` — OpenAI Chat Completions, plain or streamed (``data:`` chunks,
  a usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``);
- ``POST /v1/embeddings`` — OpenAI embeddings (``float`` or ``base64`` encoding);
- ``POST /v1/messages`` — Anthropic Messages, plain or streamed in Anthropic's exact event
  sequence (``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``…,
  ``content_block_stop``, ``message_delta``, ``message_stop``);
- ``GET /v1/models`` — the model list (Anthropic's shape when ``anthropic-version`` is sent).

Answers are deterministic: ``echo: <last user message>``, streamed word by word, honouring
``max_tokens`` (in words; finish ``length``/``max_tokens``) and stop sequences. Token counts are
words (plus 3 per message for the prompt). Every request is recorded (:attr:`FakeUpstream.
requests`) with its path, headers, JSON body and the client's port (the same port twice: one
pooled connection reused).

Faults are queued and consumed one per model request (chat, messages, embeddings), in order:
in-process with :meth:`FakeUpstream.inject` (``upstream.inject(Fault.status(503), times=2)``) or
over HTTP with ``POST /_faults`` (``{"faults": [{"kind": "status", "code": 503, "times": 2}]}``).
``GET /_requests`` lists the recorded requests, ``DELETE /_requests`` forgets them, ``POST
/_config`` sets ``omit_usage``, ``delay_ms`` and ``chunk_delay_ms``.

Use :func:`running_fake_upstream` in the test's own event loop, :class:`FakeUpstreamThread` when
the code under test runs in another loop, or ``python -m tests.fakes.llm_upstream --port N`` for
benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import web

FaultKind = Literal[
    "latency", "status", "error_page", "reset", "cut", "truncate", "malformed", "hang",
    "stream_error",
]  # fmt: skip

Protocol = Literal["openai", "anthropic"]
_REASONS = {529: "Site Overloaded"}
"""Reason phrases for statuses outside the IANA registry (aiohttp sends none for them)."""
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour, for one request.

    - ``latency``: wait ``delay_s``, then answer normally;
    - ``status``: answer ``code`` with the protocol's error body (``Retry-After`` when
      ``retry_after`` is set, and 1 s by default for 429);
    - ``error_page``: answer ``code`` with an HTML page, as a proxy in front of the API would;
    - ``reset``: close the connection with a TCP reset, without any response;
    - ``cut``: send ``after_chunks`` chunks (half the body when not streaming), then drop the
      connection mid-body;
    - ``truncate``: stream ``after_chunks`` chunks, then end the body cleanly but without the
      stream's terminal event;
    - ``malformed``: malformed JSON (the whole body, or one stream chunk after ``after_chunks``);
    - ``hang``: never answer (until the client gives up or the server stops);
    - ``stream_error``: stream ``after_chunks`` chunks, then the protocol's in-stream error
      (Anthropic ``event: error`` with ``overloaded_error``; OpenAI a ``data: {"error": …}``).
    """

    kind: FaultKind
    code: int = 500
    delay_s: float = 0.0
    retry_after: float | None = None
    after_chunks: int = 1
    message: str | None = None
    """For ``status``: the error body's message instead of the API's usual one."""

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        return cls("latency", delay_s=seconds)

    @classmethod
    def status(
        cls, code: int, *, retry_after: float | None = None, message: str | None = None
    ) -> Fault:
        if retry_after is None and code == 429:
            retry_after = 1.0
        return cls("status", code=code, retry_after=retry_after, message=message)

    @classmethod
    def error_page(cls, code: int = 502) -> Fault:
        return cls("error_page", code=code)

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def cut(cls, after_chunks: int = 1) -> Fault:
        return cls("cut", after_chunks=after_chunks)

    @classmethod
    def truncate(cls, after_chunks: int = 1) -> Fault:
        return cls("truncate", after_chunks=after_chunks)

    @classmethod
    def malformed(cls, after_chunks: int = 1) -> Fault:
        return cls("malformed", after_chunks=after_chunks)

    @classmethod
    def hang(cls) -> Fault:
        return cls("hang")

    @classmethod
    def stream_error(cls, after_chunks: int = 1) -> Fault:
        return cls("stream_error", after_chunks=after_chunks)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if data.get("kind") not in FaultKind.__args__:  # type: ignore[attr-defined]
            raise ValueError(f"unknown fault kind: {data.get('kind')!r}")
        if data["kind"] == "status":
            return cls.status(
                int(data.get("code", 500)),
                retry_after=data.get("retry_after"),
                message=data.get("message"),
            )
        return cls(**data)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    json: Any
    """The parsed body (``None`` when absent or not JSON)."""
    client_port: int | None
    """The client's source port: equal ports mean one reused keep-alive connection."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_OPENAI_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error", None),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found"),
    408: ("Request timed out.", "server_error", None),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    529: ("The service is overloaded.", "server_error", None),
}

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource was not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(protocol: Protocol, code: int, message: str | None = None) -> dict[str, Any]:
    """The error body ``protocol``'s API sends with status ``code``."""
    if protocol == "anthropic":
        kind, default = _ANTHROPIC_ERRORS.get(code, ("api_error", "Internal server error."))
        return {"type": "error", "error": {"type": kind, "message": message or default}}
    text, kind, err_code = _OPENAI_ERRORS.get(code, (f"HTTP {code}", "server_error", None))
    return {"error": {"message": message or text, "type": kind, "param": None, "code": err_code}}


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


@dataclass(slots=True)
class _Answer:
    pieces: list[str]
    finish: Literal["stop", "length"]
    stop_sequence: str | None
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)


def _answer(messages: list[Any], system: str, max_tokens: Any, stop: Any) -> _Answer:
    texts = [_text_of(m.get("content")) for m in messages if isinstance(m, dict)]
    last_user = next(
        (
            _text_of(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    prompt_tokens = sum(len(t.split()) for t in [system, *texts]) + 3 * max(1, len(texts))
    text = f"echo: {last_user}"
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    hit: str | None = None
    for sequence in stops:
        index = text.find(sequence) if sequence else -1
        if index >= 0 and (hit is None or index < text.find(hit)):
            hit = sequence
    if hit is not None:
        text = text[: text.find(hit)]
    words = text.split(" ")
    pieces = [word + " " for word in words[:-1]] + [words[-1]]
    pieces = [p for p in pieces if p]
    finish: Literal["stop", "length"] = "stop"
    if isinstance(max_tokens, int) and 0 <= max_tokens < len(pieces):
        pieces, finish, hit = pieces[:max_tokens], "length", None
    return _Answer(pieces, finish, hit, prompt_tokens)


def _vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


class FakeUpstream:
    """The fake's state (faults, recorded requests, options) and its ``aiohttp`` app."""

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        omit_usage: bool = False,
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-gpt", "fake-claude", "fake-embed"),
        record_limit: int = 10_000,
    ) -> None:
        self.delay_s = delay_s
        self.chunk_delay_s = chunk_delay_s
        self.omit_usage = omit_usage
        self.api_key = api_key
        """When set, requests without it (Bearer / ``x-api-key``) get 401."""
        self.models = models
        self._lock = threading.Lock()
        self._faults: deque[list[Any]] = deque()
        self._requests: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._ids = itertools.count(1)
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/chat/completions", self._chat_completions),
                web.post("/v1/embeddings", self._embeddings),
                web.post("/v1/messages", self._messages),
                web.get("/v1/models", self._models),
                web.post("/_faults", self._post_faults),
                web.delete("/_faults", self._delete_faults),
                web.get("/_requests", self._get_requests),
                web.delete("/_requests", self._delete_requests),
                web.post("/_config", self._post_config),
            ]
        )

    # -- control -------------------------------------------------------------------------

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` model requests (after those already queued)."""
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append([fault, times])

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(times for _, times in self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            head = self._faults[0]
            head[1] -= 1
            if head[1] == 0:
                self._faults.popleft()
            fault: Fault = head[0]
            return fault

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in the running loop; return the base URL (``http://127.0.0.1:PORT``)."""
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plumbing ------------------------------------------------------------------------

    async def _begin(self, request: web.Request) -> tuple[Any, Fault | None]:
        """Record the request, wait the configured delays; return the body and the fault."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
            client_port=peer[1] if isinstance(peer, tuple) else None,
        )
        with self._lock:
            self._requests.append(record)
        fault = self._next_fault()
        delay = self.delay_s + (fault.delay_s if fault and fault.kind == "latency" else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        return body, fault

    def _authorised(self, request: web.Request, protocol: Protocol) -> bool:
        if self.api_key is None:
            return True
        bearer = request.headers.get("Authorization", "")
        if protocol == "anthropic" and request.headers.get("x-api-key") == self.api_key:
            return True
        return bearer == f"Bearer {self.api_key}"

    async def _fault_response(
        self, request: web.Request, protocol: Protocol, fault: Fault | None
    ) -> web.StreamResponse | None:
        """The response for a fault that replaces the whole answer, if it is one of those."""
        if fault is None:
            return None
        if fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return web.json_response(
                error_body(protocol, fault.code, fault.message),
                status=fault.code,
                reason=_REASONS.get(fault.code),
                headers=headers,
            )
        if fault.kind == "error_page":
            page = f"<html><body><h1>{fault.code} Bad Gateway</h1><p>nginx</p></body></html>"
            return web.Response(text=page, status=fault.code, content_type="text/html")
        if fault.kind == "reset":
            _reset(request)
            return web.Response(status=500)
        if fault.kind == "hang":
            assert self._closing is not None
            await self._closing.wait()
            return web.Response(status=503)
        return None

    async def _json_answer(
        self, request: web.Request, payload: dict[str, Any], fault: Fault | None
    ) -> web.StreamResponse:
        """A non-streamed JSON answer, or its malformed or cut-short version."""
        data = json.dumps(payload, separators=(",", ":")).encode()
        if fault is not None and fault.kind == "malformed":
            return web.Response(body=data[: len(data) // 2], content_type="application/json")
        if fault is not None and fault.kind == "cut":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            _reset(request)
            return response
        return web.Response(body=data, content_type="application/json")

    async def _stream(
        self,
        request: web.Request,
        protocol: Protocol,
        head: list[bytes],
        chunks: list[bytes],
        tail: list[bytes],
        fault: Fault | None,
    ) -> web.StreamResponse:
        """Stream ``head``, ``chunks`` (the answer) and ``tail``, applying a stream fault."""
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        for frame in head:
            await response.write(frame)
        kind = fault.kind if fault else None
        stop_at = fault.after_chunks if fault else len(chunks)
        for index, frame in enumerate(chunks):
            if index == stop_at and kind in ("cut", "truncate", "malformed", "stream_error"):
                break
            if self.chunk_delay_s > 0:
                await asyncio.sleep(self.chunk_delay_s)
            await response.write(frame)
        else:
            if kind not in ("cut", "truncate", "malformed", "stream_error"):
                for frame in tail:
                    await response.write(frame)
                await response.write_eof()
                return response
        if kind == "cut":
            _reset(request)
            return response
        if kind == "malformed":
            await response.write(b'data: {"id": "broken", "choices": [\n\n')
        elif kind == "stream_error":
            if protocol == "anthropic":
                await response.write(_sse(error_body("anthropic", 529), "error"))
            else:
                await response.write(_sse(error_body("openai", 500)))
        await response.write_eof()
        return response

    # -- OpenAI --------------------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._begin(request)
        early = await self._fault_response(request, "openai", fault)
        if early is not None:
            return early
        if not self._authorised(request, "openai"):
            return web.json_response(error_body("openai", 401), status=401)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return web.json_response(
                error_body("openai", 400, "'messages' is a required property"), status=400
            )
        model = str(body.get("model", "fake-gpt"))
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        answer = _answer(body["messages"], "", max_tokens, body.get("stop"))
        ident = f"chatcmpl-fake-{next(self._ids)}"
        created = int(time.time())
        usage = {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        }
        if not body.get("stream"):
            payload: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer.text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": answer.finish,
                    }
                ],
                "system_fingerprint": None,
            }
            if not self.omit_usage:
                payload["usage"] = usage
            return await self._json_answer(request, payload, fault)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        include_usage = include_usage and not self.omit_usage

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            frame: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                frame["usage"] = None
            return _sse(frame)

        head = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        chunks = [chunk({"content": piece}, None) for piece in answer.pieces]
        tail = [chunk({}, answer.finish)]
        if include_usage:
            usage_frame = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage,
            }
            tail.append(_sse(usage_frame))
        tail.append(_sse("[DONE]"))
        return await self._stream(request, "openai", head, chunks, tail, fault)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._begin(request)
        early = await self._fault_response(request, "openai", fault)
        if early is not None:
            return early
        if not self._authorised(request, "openai"):
            return web.json_response(error_body("openai", 401), status=401)
        raw_input = body.get("input") if isinstance(body, dict) else None
        inputs = [raw_input] if isinstance(raw_input, str) else raw_input
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return web.json_response(
                error_body("openai", 400, "'input' must be a string or a list of strings"),
                status=400,
            )
        assert isinstance(body, dict)
        dimensions = body.get("dimensions") or 16
        base64_format = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = _vector(text, int(dimensions))
            encoded: Any = vector
            if base64_format:
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(text.split()) for text in inputs)
        payload: dict[str, Any] = {
            "object": "list",
            "data": data,
            "model": str(body.get("model", "fake-embed")),
        }
        if not self.omit_usage:
            payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return await self._json_answer(request, payload, fault)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._begin_unfaulted(request)
        if "anthropic-version" in request.headers:
            data = [
                {
                    "type": "model",
                    "id": m,
                    "display_name": m,
                    "created_at": "2025-01-01T00:00:00Z",
                }
                for m in self.models
            ]
            return web.json_response(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": self.models[0] if self.models else None,
                    "last_id": self.models[-1] if self.models else None,
                }
            )
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1735689600, "owned_by": "fake"}
                    for m in self.models
                ],
            }
        )

    async def _begin_unfaulted(self, request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    json=None,
                    client_port=peer[1] if isinstance(peer, tuple) else None,
                )
            )

    # -- Anthropic -----------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._begin(request)
        early = await self._fault_response(request, "anthropic", fault)
        if early is not None:
            return early
        if not self._authorised(request, "anthropic"):
            return web.json_response(error_body("anthropic", 401), status=401)
        if "anthropic-version" not in request.headers:
            message = "anthropic-version: header is required"
            return web.json_response(error_body("anthropic", 400, message), status=400)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            message = "messages: Field required"
            return web.json_response(error_body("anthropic", 400, message), status=400)
        if not isinstance(body.get("max_tokens"), int):
            message = "max_tokens: Field required"
            return web.json_response(error_body("anthropic", 400, message), status=400)
        model = str(body.get("model", "fake-claude"))
        answer = _answer(
            body["messages"],
            _text_of(body.get("system")),
            body["max_tokens"],
            body.get("stop_sequences"),
        )
        ident = f"msg_fake_{next(self._ids)}"
        if answer.finish == "length":
            stop_reason = "max_tokens"
        elif answer.stop_sequence is not None:
            stop_reason = "stop_sequence"
        else:
            stop_reason = "end_turn"
        if not body.get("stream"):
            payload: dict[str, Any] = {
                "id": ident,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": answer.text}],
                "stop_reason": stop_reason,
                "stop_sequence": answer.stop_sequence,
            }
            if not self.omit_usage:
                payload["usage"] = {
                    "input_tokens": answer.prompt_tokens,
                    "output_tokens": answer.completion_tokens,
                }
            return await self._json_answer(request, payload, fault)
        start: dict[str, Any] = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
        }
        if not self.omit_usage:
            start["usage"] = {"input_tokens": answer.prompt_tokens, "output_tokens": 1}
        head = [
            _sse({"type": "message_start", "message": start}, "message_start"),
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            _sse({"type": "ping"}, "ping"),
        ]
        chunks = [
            _sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
                "content_block_delta",
            )
            for piece in answer.pieces
        ]
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": answer.stop_sequence},
        }
        if not self.omit_usage:
            delta["usage"] = {"output_tokens": answer.completion_tokens}
        tail = [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(delta, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return await self._stream(request, "anthropic", head, chunks, tail, fault)

    # -- control over HTTP ---------------------------------------------------------------

    async def _post_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            if body.get("clear"):
                self.clear_faults()
            entries = body.get("faults", [])
            parsed = []
            for entry in entries:
                entry = dict(entry)
                times = int(entry.pop("times", 1))
                parsed.append((Fault.from_json(entry), times))
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for fault, times in parsed:
            self.inject(fault, times)
        return web.json_response({"pending": self.pending_faults})

    async def _delete_faults(self, request: web.Request) -> web.StreamResponse:
        self.clear_faults()
        return web.json_response({"pending": 0})

    async def _get_requests(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"requests": [r.to_json() for r in self.requests]})

    async def _delete_requests(self, request: web.Request) -> web.StreamResponse:
        self.clear_requests()
        return web.json_response({"requests": []})

    async def _post_config(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            if "omit_usage" in body:
                self.omit_usage = bool(body["omit_usage"])
            if "delay_ms" in body:
                self.delay_s = float(body["delay_ms"]) / 1000
            if "chunk_delay_ms" in body:
                self.chunk_delay_s = float(body["chunk_delay_ms"]) / 1000
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(
            {
                "omit_usage": self.omit_usage,
                "delay_ms": self.delay_s * 1000,
                "chunk_delay_ms": self.chunk_delay_s * 1000,
            }
        )


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset (``SO_LINGER`` 0), as a crashed upstream would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@contextlib.asynccontextmanager
async def running_fake_upstream(**options: Any) -> AsyncIterator[FakeUpstream]:
    """A :class:`FakeUpstream` served in the current event loop on 127.0.0.1, a free port."""
    upstream = FakeUpstream(**options)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


class FakeUpstreamThread:
    """A :class:`FakeUpstream` served by its own event loop in a thread.

    For tests whose code under test runs in another loop (a synchronous test client, a server
    in its own thread). :attr:`upstream` is thread-safe to inject faults into and read records
    from.
    """

    def __init__(self, **options: Any) -> None:
        self.upstream = FakeUpstream(**options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return self.upstream.base_url

    @property
    def openai_base_url(self) -> str:
        return self.upstream.openai_base_url

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.upstream.inject(fault, times)

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="fake-llm-upstream", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._error is not None:
            raise RuntimeError("the fake upstream did not start") from self._error
        if not self._ready.is_set():
            raise RuntimeError("the fake upstream did not start within 10 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.upstream.start())
        except OSError as exc:  # reported to start() (e.g. the port is taken)
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.upstream.stop())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _serve(
    host: str, port: int, options: dict[str, Any], announce: Callable[[str], None]
) -> None:
    upstream = FakeUpstream(**options)
    url = await upstream.start(host, port)
    announce(url)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await upstream.stop()


def _announce(url: str) -> None:
    """Tell the launching benchmark where the fake listens (one line on stdout)."""
    sys.stdout.write(url + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI/Anthropic upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="latency before answering")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="between chunks")
    parser.add_argument("--omit-usage", action="store_true")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--record-limit", type=int, default=1000)
    args = parser.parse_args(argv)
    options = {
        "delay_s": args.delay_ms / 1000,
        "chunk_delay_s": args.chunk_delay_ms / 1000,
        "omit_usage": args.omit_usage,
        "api_key": args.api_key,
        "record_limit": args.record_limit,
    }
    asyncio.run(_serve(args.host, args.port, options, _announce))


if __name__ == "__main__":
    main()
