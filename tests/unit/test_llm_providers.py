"""Provider adapters against the fake upstream over real loopback HTTP, and the local models.

Every failure an upstream can produce (error statuses, resets, streams cut short, malformed
JSON, silence) must come out as an ``UpstreamError`` of the right kind, never a hang or another
exception, and never with the API key in it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp
import pytest

from ombud.config import NetworkSettings
from ombud.core.clock import FrozenClock
from ombud.llm.providers import (
    AnthropicProvider,
    LocalProvider,
    OpenAIProvider,
    Provider,
    UpstreamClient,
    build_providers,
)
from ombud.llm.providers.base import parse_retry_after
from ombud.llm.tokens import estimate_request_tokens, estimate_tokens
from ombud.llm.types import (
    ChatRequest,
    EmbeddingRequest,
    Message,
    StreamEnd,
    StreamEvent,
    Target,
    TextDelta,
    UpstreamError,
    Usage,
)
from ombud.net.outbound import OutboundPolicy
from tests.fakes.llm_upstream import (
    FakeUpstream,
    FakeUpstreamThread,
    Fault,
    running_fake_upstream,
)

pytestmark = pytest.mark.anyio

API_KEY = "sk-test-0123456789abcdef"
NETWORK = NetworkSettings(
    allowed_hosts=["127.0.0.1"], allow_private_networks=True, allowed_schemes=["http", "https"]
)
ProtocolName = Literal["openai", "anthropic"]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with running_fake_upstream() as fake:
        yield fake


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def client(clock: FrozenClock) -> AsyncIterator[UpstreamClient]:
    upstream_client = UpstreamClient(outbound=OutboundPolicy(NETWORK), clock=clock)
    yield upstream_client
    await upstream_client.aclose()


def _target(upstream: FakeUpstream, protocol: ProtocolName, **changes: Any) -> Target:
    base = upstream.openai_base_url if protocol == "openai" else upstream.base_url
    fields: dict[str, Any] = {
        "deployment": f"{protocol}-main",
        "base_url": base,
        "model": "fake-gpt" if protocol == "openai" else "fake-claude",
        "api_key": API_KEY,
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
    }
    fields.update(changes)
    return Target(**fields)


def _provider(client: UpstreamClient, protocol: ProtocolName) -> Provider:
    return OpenAIProvider(client) if protocol == "openai" else AnthropicProvider(client)


def _request(text: str = "hello brave new world", **changes: Any) -> ChatRequest:
    return ChatRequest(model="alias", messages=[Message("user", text)], **changes)


async def _collect(stream: AsyncIterator[StreamEvent]) -> tuple[list[str], StreamEnd]:
    deltas: list[str] = []
    end: StreamEnd | None = None
    async for event in stream:
        assert end is None, "nothing may follow the StreamEnd"
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            end = event
    assert end is not None, "a stream ends with exactly one StreamEnd"
    return deltas, end


def _assert_safe(error: UpstreamError) -> None:
    for text in (str(error), repr(error), error.message):
        assert API_KEY not in text
        assert "Bearer" not in text


# -- OpenAI ------------------------------------------------------------------------------


async def test_openai_chat_maps_fields_and_usage(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    request = _request(
        system="be brief",
        max_tokens=50,
        temperature=0.2,
        top_p=0.9,
        stop=["###"],
        seed=7,
        user="u-1",
    )
    result = await OpenAIProvider(client).chat(_target(upstream, "openai"), request)

    assert result.text == "echo: hello brave new world"
    assert result.finish_reason == "stop"
    assert result.usage == Usage(input_tokens=12, output_tokens=5, estimated=False)
    assert result.model == "fake-gpt"
    (sent,) = upstream.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json == {
        "model": "fake-gpt",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello brave new world"},
        ],
        "stream": False,
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["###"],
        "seed": 7,
        "user": "u-1",
    }


async def test_openai_chat_without_a_key_sends_no_authorization(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    await OpenAIProvider(client).chat(_target(upstream, "openai", api_key=None), _request())
    assert "authorization" not in upstream.requests[0].headers


async def test_openai_length_finish_and_max_tokens_param_option(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    target = _target(upstream, "openai", options={"max_tokens_param": "max_completion_tokens"})
    result = await OpenAIProvider(client).chat(target, _request(max_tokens=2))
    assert result.finish_reason == "length"
    assert result.text == "echo: hello "
    assert upstream.requests[0].json["max_completion_tokens"] == 2


async def test_openai_stream_yields_chunks_then_usage(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    stream = OpenAIProvider(client).stream(_target(upstream, "openai"), _request())
    deltas, end = await _collect(stream)

    assert "".join(deltas) == "echo: hello brave new world"
    assert len(deltas) == 5
    assert end.finish_reason == "stop"
    assert end.usage == Usage(input_tokens=7, output_tokens=5)
    assert end.model == "fake-gpt"
    body = upstream.requests[0].json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_openai_usage_absent_is_none(client: UpstreamClient) -> None:
    async with running_fake_upstream(omit_usage=True) as upstream:
        provider = OpenAIProvider(client)
        target = _target(upstream, "openai")
        assert (await provider.chat(target, _request())).usage is None
        _, end = await _collect(provider.stream(target, _request()))
        assert end.usage is None
        assert (await provider.embed(target, EmbeddingRequest("e", ["a"]))).usage is None


async def test_openai_embeddings(upstream: FakeUpstream, client: UpstreamClient) -> None:
    request = EmbeddingRequest(model="alias", inputs=["one two", "three"], dimensions=8, user="u")
    result = await OpenAIProvider(client).embed(
        _target(upstream, "openai", model="fake-embed"), request
    )
    assert len(result.vectors) == 2
    assert all(len(v) == 8 for v in result.vectors)
    assert math.isclose(sum(x * x for x in result.vectors[0]), 1.0, rel_tol=1e-6)
    assert result.usage == Usage(input_tokens=3, output_tokens=0)
    sent = upstream.requests[0]
    assert sent.path == "/v1/embeddings"
    assert sent.json == {
        "model": "fake-embed",
        "input": ["one two", "three"],
        "encoding_format": "float",
        "dimensions": 8,
        "user": "u",
    }


# -- Anthropic ---------------------------------------------------------------------------


async def test_anthropic_chat_maps_fields_headers_and_usage(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    request = ChatRequest(
        model="alias",
        system="be brief",
        messages=[
            Message("user", "first"),
            Message("assistant", "ok"),
            Message("user", "hello there"),
        ],
        temperature=0.5,
        stop=["###"],
        seed=3,
        user="u-9",
    )
    result = await AnthropicProvider(client).chat(_target(upstream, "anthropic"), request)

    assert result.text == "echo: hello there"
    assert result.finish_reason == "stop"
    assert result.usage == Usage(input_tokens=15, output_tokens=3)
    (sent,) = upstream.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": "fake-claude",
        "max_tokens": 1024,
        "system": "be brief",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hello there"},
        ],
        "temperature": 0.5,
        "stop_sequences": ["###"],
        "metadata": {"user_id": "u-9"},
    }


async def test_anthropic_options_set_version_and_default_max_tokens(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    options = {"anthropic_version": "2024-01-01", "default_max_tokens": 3}
    target = _target(upstream, "anthropic", options=options)
    result = await AnthropicProvider(client).chat(target, _request())
    assert result.finish_reason == "length"
    assert result.text == "echo: hello brave "
    sent = upstream.requests[0]
    assert sent.headers["anthropic-version"] == "2024-01-01"
    assert sent.json["max_tokens"] == 3


async def test_anthropic_stream_follows_the_event_sequence(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    stream = AnthropicProvider(client).stream(_target(upstream, "anthropic"), _request())
    deltas, end = await _collect(stream)
    assert "".join(deltas) == "echo: hello brave new world"
    assert len(deltas) == 5
    assert end == StreamEnd(
        finish_reason="stop", usage=Usage(input_tokens=7, output_tokens=5), model="fake-claude"
    )
    assert upstream.requests[0].json["stream"] is True

    stream = AnthropicProvider(client).stream(
        _target(upstream, "anthropic"), _request(max_tokens=2)
    )
    deltas, end = await _collect(stream)
    assert end.finish_reason == "length"
    assert len(deltas) == 2


async def test_anthropic_usage_absent_is_none(client: UpstreamClient) -> None:
    async with running_fake_upstream(omit_usage=True) as upstream:
        provider = AnthropicProvider(client)
        target = _target(upstream, "anthropic")
        assert (await provider.chat(target, _request())).usage is None
        _, end = await _collect(provider.stream(target, _request()))
        assert end.usage is None


async def test_anthropic_offers_no_embeddings(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await AnthropicProvider(client).embed(
            _target(upstream, "anthropic"), EmbeddingRequest("e", ["x"])
        )
    error = caught.value
    assert (error.kind, error.status, error.retryable) == ("status", 400, False)
    assert upstream.requests == []


# -- faults ------------------------------------------------------------------------------

PROTOCOLS: list[ProtocolName] = ["openai", "anthropic"]


async def _attempt(
    client: UpstreamClient, target: Target, protocol: ProtocolName, streamed: bool
) -> list[str]:
    """Run one call, returning the deltas seen (streamed) before it raised or finished."""
    provider = _provider(client, protocol)
    seen: list[str] = []
    if streamed:
        async for event in provider.stream(target, _request()):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    else:
        await provider.chat(target, _request())
    return seen


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("fault", "kind", "status", "retryable"),
    [
        (Fault.status(429, retry_after=7), "status", 429, True),
        (Fault.status(500), "status", 500, True),
        (Fault.status(502), "status", 502, True),
        (Fault.status(503), "status", 503, True),
        (Fault.status(529), "status", 529, True),
        (Fault.status(400), "status", 400, False),
        (Fault.status(401), "status", 401, False),
        (Fault.error_page(502), "status", 502, True),
        (Fault.reset(), "connection", None, True),
        (Fault.malformed(), "protocol", None, True),
    ],
    ids=lambda value: value.kind if isinstance(value, Fault) else None,
)
async def test_faults_map_to_upstream_errors(
    upstream: FakeUpstream,
    client: UpstreamClient,
    protocol: ProtocolName,
    streamed: bool,
    fault: Fault,
    kind: str,
    status: int | None,
    retryable: bool,
) -> None:
    upstream.inject(fault)
    with pytest.raises(UpstreamError) as caught:
        await _attempt(client, _target(upstream, protocol), protocol, streamed)
    error = caught.value
    assert (error.kind, error.status, error.retryable) == (kind, status, retryable)
    _assert_safe(error)
    if fault.kind == "status" and fault.code == 429:
        assert error.retry_after_s == 7.0
    if fault.kind == "status":
        assert "HTTP" in error.message
        assert len(error.message) < 700
    if fault.kind == "error_page":
        assert "<html" not in error.message
    # The adapter keeps working after any fault.
    assert await _attempt(client, _target(upstream, protocol), protocol, streamed) is not None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_status_errors_quote_the_upstream_message_without_the_key(
    upstream: FakeUpstream, client: UpstreamClient, protocol: ProtocolName
) -> None:
    upstream.inject(Fault.status(401, message=f"Incorrect API key provided: {API_KEY}."))
    upstream.inject(Fault.status(500, message="x" * 2000))
    target = _target(upstream, protocol)
    with pytest.raises(UpstreamError) as caught:
        await _provider(client, protocol).chat(target, _request())
    assert "Incorrect API key provided: ***." in caught.value.message
    _assert_safe(caught.value)
    with pytest.raises(UpstreamError) as caught:
        await _provider(client, protocol).chat(target, _request())
    assert caught.value.message.count("x") <= 500


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_stream_cut_mid_way_raises_after_the_chunks_already_yielded(
    upstream: FakeUpstream, client: UpstreamClient, protocol: ProtocolName
) -> None:
    upstream.inject(Fault.cut(after_chunks=2))
    seen: list[StreamEvent] = []

    async def consume() -> None:
        async for event in _provider(client, protocol).stream(
            _target(upstream, protocol), _request()
        ):
            seen.append(event)

    with pytest.raises(UpstreamError) as caught:
        await consume()
    assert seen == [TextDelta("echo: "), TextDelta("hello ")]
    assert caught.value.kind == "connection"
    assert caught.value.retryable


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_stream_ending_without_its_terminal_event_is_a_protocol_error(
    upstream: FakeUpstream, client: UpstreamClient, protocol: ProtocolName
) -> None:
    upstream.inject(Fault.truncate(after_chunks=3))
    with pytest.raises(UpstreamError) as caught:
        await _attempt(client, _target(upstream, protocol), protocol, streamed=True)
    assert caught.value.kind == "protocol"


@pytest.mark.parametrize(("protocol", "status"), [("openai", 500), ("anthropic", 529)])
async def test_an_error_inside_a_stream_is_a_status_error(
    upstream: FakeUpstream, client: UpstreamClient, protocol: ProtocolName, status: int
) -> None:
    upstream.inject(Fault.stream_error(after_chunks=1))
    with pytest.raises(UpstreamError) as caught:
        await _attempt(client, _target(upstream, protocol), protocol, streamed=True)
    assert (caught.value.kind, caught.value.status) == ("status", status)


async def test_a_body_cut_short_is_a_connection_error(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    upstream.inject(Fault.cut())
    with pytest.raises(UpstreamError) as caught:
        await OpenAIProvider(client).chat(_target(upstream, "openai"), _request())
    assert caught.value.kind == "connection"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_upstream_that_never_answers_times_out(
    upstream: FakeUpstream, client: UpstreamClient, protocol: ProtocolName, streamed: bool
) -> None:
    upstream.inject(Fault.hang())
    target = _target(upstream, protocol, timeout_s=0.2)
    with pytest.raises(UpstreamError) as caught:
        await _attempt(client, target, protocol, streamed)
    assert caught.value.kind == "timeout"
    assert caught.value.retryable


async def test_a_stream_silent_between_chunks_times_out(client: UpstreamClient) -> None:
    async with running_fake_upstream(chunk_delay_s=1.0) as upstream:
        target = _target(upstream, "openai", timeout_s=0.2)
        with pytest.raises(UpstreamError) as caught:
            await _attempt(client, target, "openai", streamed=True)
    assert caught.value.kind == "timeout"


async def test_a_refused_connection_is_a_connection_error(client: UpstreamClient) -> None:
    async with running_fake_upstream() as upstream:
        target = _target(upstream, "openai")
    with pytest.raises(UpstreamError) as caught:
        await OpenAIProvider(client).chat(target, _request())
    assert caught.value.kind == "connection"
    _assert_safe(caught.value)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = FrozenClock().now()
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# -- the shared client -------------------------------------------------------------------


async def test_one_pooled_session_reuses_its_connection(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    providers = build_providers(client)
    await providers["openai"].chat(_target(upstream, "openai"), _request())
    session = client.session
    await providers["openai_compatible"].chat(_target(upstream, "openai"), _request())
    await _collect(providers["anthropic"].stream(_target(upstream, "anthropic"), _request()))
    await providers["anthropic"].chat(_target(upstream, "anthropic"), _request())

    assert session is not None
    assert client.session is session
    ports = {r.client_port for r in upstream.requests}
    assert len(upstream.requests) == 4
    assert len(ports) == 1


async def test_outbound_refusal_raises_before_any_connection(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    port = upstream.base_url.rsplit(":", 1)[1]
    for base_url in (f"http://localhost:{port}/v1", f"ftp://127.0.0.1:{port}/v1"):
        with pytest.raises(UpstreamError) as caught:
            await OpenAIProvider(client).chat(
                _target(upstream, "openai", base_url=base_url), _request()
            )
        assert caught.value.kind == "connection"
        assert "refused" in caught.value.message
    assert upstream.requests == []
    assert client.session is None


async def test_hosts_resolving_to_internal_addresses_are_refused(upstream: FakeUpstream) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    settings = NetworkSettings(allowed_hosts=["llm.example.com"], allowed_schemes=["http"])
    client = UpstreamClient(outbound=OutboundPolicy(settings, resolve))
    try:
        port = upstream.base_url.rsplit(":", 1)[1]
        target = _target(upstream, "openai", base_url=f"http://llm.example.com:{port}/v1")
        with pytest.raises(UpstreamError) as caught:
            await OpenAIProvider(client).chat(target, _request())
        assert caught.value.kind == "connection"
        assert "internal address" in caught.value.message
        assert upstream.requests == []
    finally:
        await client.aclose()


async def test_connections_go_to_the_vetted_addresses_rechecked_after_a_while(
    upstream: FakeUpstream, clock: FrozenClock
) -> None:
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    settings = NetworkSettings(
        allowed_hosts=["llm.invalid"], allow_private_networks=True, allowed_schemes=["http"]
    )
    client = UpstreamClient(
        outbound=OutboundPolicy(settings, resolve), clock=clock, recheck_after_s=300
    )
    try:
        port = upstream.base_url.rsplit(":", 1)[1]
        # ``.invalid`` never resolves through DNS: the connection uses the vetted address.
        target = _target(upstream, "openai", base_url=f"http://llm.invalid:{port}/v1")
        provider = OpenAIProvider(client)
        await provider.chat(target, _request())
        await provider.chat(target, _request())
        assert lookups == ["llm.invalid"]
        clock.advance(301)
        await provider.chat(target, _request())
        assert lookups == ["llm.invalid", "llm.invalid"]
        assert upstream.requests[0].headers["host"] == f"llm.invalid:{port}"
    finally:
        await client.aclose()


async def test_the_client_reads_crlf_event_streams_with_comments() -> None:
    """Event-stream framing the fake does not use: CRLF lines, comments, multi-line data."""
    frames = (
        b": keep-alive\r\n\r\n"
        b'data: {"choices":[{"delta":{"content":"a"},\r\n'
        b'data: "finish_reason":null}]}\r\n\r\n'
        b'data: {"choices":[{"delta":{"content":"b"},"finish_reason":"stop"}]}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )

    async def handler(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index in range(0, len(frames), 7):  # split across lines and events
            await response.write(frames[index : index + 7])
        await response.write_eof()
        return response

    app = aiohttp.web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    client = UpstreamClient(outbound=OutboundPolicy(NETWORK))
    try:
        target = Target(deployment="d", base_url=f"http://{host}:{port}/v1", model="m")
        deltas, end = await _collect(OpenAIProvider(client).stream(target, _request()))
        assert deltas == ["a", "b"]
        assert end.finish_reason == "stop"
        assert end.usage is None
    finally:
        await client.aclose()
        await runner.cleanup()


# -- the fake itself ---------------------------------------------------------------------


async def test_faults_can_be_scripted_over_http(
    upstream: FakeUpstream, client: UpstreamClient
) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"faults": [{"kind": "status", "code": 503, "times": 2}, {"kind": "reset"}]}
        async with session.post(f"{upstream.base_url}/_faults", json=body) as response:
            assert (await response.json()) == {"pending": 3}
    provider = OpenAIProvider(client)
    target = _target(upstream, "openai")
    kinds = []
    for _ in range(4):
        try:
            await provider.chat(target, _request())
            kinds.append("ok")
        except UpstreamError as error:
            kinds.append(f"{error.kind}:{error.status}")
    assert kinds == ["status:503", "status:503", "connection:None", "ok"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{upstream.base_url}/_requests") as response,
    ):
        recorded = (await response.json())["requests"]
    assert [r["path"] for r in recorded] == ["/v1/chat/completions"] * 4


async def test_the_threaded_fake_serves_another_loop(client: UpstreamClient) -> None:
    with FakeUpstreamThread() as fake:
        fake.inject(Fault.status(429))
        target = Target(deployment="d", base_url=fake.openai_base_url, model="m")
        with pytest.raises(UpstreamError) as caught:
            await OpenAIProvider(client).chat(target, _request())
        assert caught.value.status == 429
        result = await OpenAIProvider(client).chat(target, _request("hi"))
        assert result.text == "echo: hi"
        assert len(fake.upstream.requests) == 2


# -- local models ------------------------------------------------------------------------


def _local(model: str) -> Target:
    return Target(deployment=model, base_url="", model=model)


async def test_local_echo_answers_the_last_user_message() -> None:
    request = ChatRequest(
        model="x",
        system="sys",
        messages=[Message("user", "first"), Message("assistant", "a"), Message("user", "last one")],
    )
    result = await LocalProvider().chat(_local("local-echo"), request)
    assert result.text == "last one"
    assert result.finish_reason == "stop"
    assert result.usage == Usage(
        input_tokens=estimate_request_tokens(request),
        output_tokens=estimate_tokens("last one"),
        estimated=False,
    )
    assert result.model == "local-echo"


async def test_local_template_is_deterministic() -> None:
    provider = LocalProvider()
    first = await provider.chat(_local("local"), _request("the quick brown fox"))
    again = await provider.chat(_local("local"), _request("the quick brown fox"))
    other = await provider.chat(_local("local"), _request("something else"))
    assert first == again
    assert first.text == 'You said 4 words; the first was "the" and the last "fox".'
    assert other.text != first.text


@pytest.mark.parametrize("model", ["local", "local-echo"])
async def test_local_streams_in_word_chunks_matching_chat(model: str) -> None:
    provider = LocalProvider()
    request = _request("  several words here,\nacross two lines ")
    chat = await provider.chat(_local(model), request)
    deltas, end = await _collect(provider.stream(_local(model), request))
    assert len(deltas) > 3
    assert "".join(deltas) == chat.text
    assert end == StreamEnd(finish_reason=chat.finish_reason, usage=chat.usage, model=model)


async def test_local_honours_stop_and_max_tokens() -> None:
    provider = LocalProvider()
    text = "alpha beta gamma delta epsilon"
    stopped = await provider.chat(_local("local-echo"), _request(text, stop=["zeta", " gamma"]))
    assert (stopped.text, stopped.finish_reason) == ("alpha beta", "stop")

    limited = await provider.chat(_local("local-echo"), _request(text, max_tokens=2))
    assert (limited.text, limited.finish_reason) == ("alpha beta", "length")
    assert limited.usage is not None
    assert limited.usage.output_tokens <= 2

    deltas, end = await _collect(
        provider.stream(_local("local-echo"), _request(text, max_tokens=3))
    )
    assert "".join(deltas) == "alpha beta gamma"
    assert end.finish_reason == "length"


async def test_local_embeddings_are_deterministic_unit_vectors() -> None:
    provider = LocalProvider()
    target = _local("local-embed")
    texts = ["The cat sat on the mat", "the CAT sat on the mat!", "stock prices fell sharply", ""]
    result = await provider.embed(target, EmbeddingRequest("e", texts))
    same, near, far, empty = result.vectors
    assert all(len(v) == 256 for v in result.vectors)
    assert math.isclose(math.fsum(x * x for x in same), 1.0)
    assert same == near  # case and punctuation do not matter
    assert empty == [0.0] * 256
    similar = await provider.embed(target, EmbeddingRequest("e", ["the cat sat on a mat"]))

    def dot(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert dot(same, similar.vectors[0]) > 0.7 > dot(same, far)
    again = await provider.embed(target, EmbeddingRequest("e", texts[:1], dimensions=32))
    assert len(again.vectors[0]) == 32
    assert again.usage == Usage(input_tokens=estimate_tokens(texts[0]), output_tokens=0)


async def test_local_refuses_unknown_models_and_wrong_operations() -> None:
    provider = LocalProvider()
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(_local("local-nope"), _request())
    assert (caught.value.status, caught.value.retryable) == (404, False)
    with pytest.raises(UpstreamError) as caught:
        await provider.embed(_local("local"), EmbeddingRequest("e", ["x"]))
    assert caught.value.status == 400
    with pytest.raises(UpstreamError):
        await provider.embed(_local("local-embed"), EmbeddingRequest("e", ["x"], dimensions=0))


async def test_build_providers_covers_every_provider_kind(client: UpstreamClient) -> None:
    providers = build_providers(client)
    assert set(providers) == {"openai", "openai_compatible", "anthropic", "local"}
    assert isinstance(providers["openai_compatible"], OpenAIProvider)
    assert isinstance(providers["anthropic"], AnthropicProvider)
    assert isinstance(providers["local"], LocalProvider)
