"""The OpenAI and Anthropic wire codecs, checked against the official SDKs.

The SDKs talk to the codecs through an in-process mock transport: each handler parses the
SDK's real request body with the codec and answers with what the codec renders, so both
directions of the wire are exercised without a server.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ombud.llm.protocols import ProtocolError
from ombud.llm.protocols import anthropic as anth
from ombud.llm.protocols import openai as oai
from ombud.llm.types import ChatRequest, ChatResult, EmbeddingResult, Message, Usage

Handler = Callable[[httpx2.Request], httpx2.Response]


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def chat(**fields: Any) -> bytes:
    base: dict[str, Any] = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return body(base)


def messages(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    base.update(fields)
    return body(base)


def openai_client(handler: Handler) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://ombud.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def anthropic_client(handler: Handler) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-test",
        base_url="http://ombud.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def json_response(status: int, payload: dict[str, Any]) -> httpx2.Response:
    return httpx2.Response(status, json=payload)


def sse_response(frames: list[bytes]) -> httpx2.Response:
    # Frames arrive as separate reads, as they would from a streaming server.
    return httpx2.Response(200, content=iter(frames), headers={"content-type": "text/event-stream"})


def frames_of(stream: bytes) -> list[dict[str, Any]]:
    """The JSON payloads of an unnamed-event stream, ``[DONE]`` left out."""
    out = []
    for frame in stream.decode().split("\n\n"):
        if frame and frame != "data: [DONE]":
            assert frame.startswith("data: ")
            out.append(json.loads(frame[len("data: ") :]))
    return out


def named_frames(stream: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in stream.decode().split("\n\n"):
        if frame:
            event_line, data_line = frame.split("\n")
            assert event_line.startswith("event: ")
            assert data_line.startswith("data: ")
            out.append((event_line[len("event: ") :], json.loads(data_line[len("data: ") :])))
    return out


# --- OpenAI: parsing --------------------------------------------------------------------------


def test_openai_parse_chat_reads_every_supported_field() -> None:
    request, options = oai.parse_chat(
        body(
            {
                "model": "gpt-x",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "developer", "content": [{"type": "text", "text": "be kind"}]},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    },
                    {"role": "assistant", "content": "ok", "name": "bot"},
                    {"role": "system", "content": "later"},
                    {"role": "developer", "content": "later too"},
                    {"role": "user", "content": ""},
                ],
                "max_tokens": 10,
                "max_completion_tokens": 20,
                "temperature": 2,
                "top_p": 0.5,
                "stop": "END",
                "seed": 7,
                "user": "u-1",
                "stream": True,
                "stream_options": {"include_usage": True},
                "n": 1,
                "response_format": {"type": "text"},
                "tool_choice": "none",
                "extra_vendor_field": {"anything": [1, 2]},
            }
        )
    )
    assert request == ChatRequest(
        model="gpt-x",
        messages=[
            Message("user", "a\nb"),
            Message("assistant", "ok"),
            Message("system", "later"),
            Message("system", "later too"),
            Message("user", ""),
        ],
        system="be brief\nbe kind",
        max_tokens=20,
        temperature=2.0,
        top_p=0.5,
        stop=["END"],
        stream=True,
        user="u-1",
        seed=7,
    )
    assert options == oai.ChatOptions(include_usage=True)


def test_openai_parse_chat_defaults() -> None:
    request, options = oai.parse_chat(chat(max_tokens=5, stop=["a", "b"], temperature=None))
    assert request == ChatRequest(
        model="gpt-x", messages=[Message("user", "hi")], max_tokens=5, stop=["a", "b"]
    )
    assert request.system is None
    assert options.include_usage is False


def test_openai_parse_chat_accepts_a_system_only_conversation() -> None:
    request, _ = oai.parse_chat(chat(messages=[{"role": "system", "content": "s"}]))
    assert request.system == "s"
    assert request.messages == []


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"\xff\xfe\x00", None),
        (b"[1, 2]", None),
        (b'{"model": "m", "temperature": NaN, "messages": []}', None),
        (body({"messages": [{"role": "user", "content": "x"}]}), "model"),
        (chat(model=""), "model"),
        (chat(model=3), "model"),
        (body({"model": "m"}), "messages"),
        (chat(messages=[]), "messages"),
        (chat(messages="hi"), "messages"),
        (chat(messages=["hi"]), "messages[0]"),
        (
            chat(messages=[{"role": "tool", "content": "x", "tool_call_id": "c"}]),
            "messages[0].role",
        ),
        (chat(messages=[{"role": "function", "content": "x"}]), "messages[0].role"),
        (chat(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (chat(messages=[{"content": "x"}]), "messages[0].role"),
        (
            chat(
                messages=[
                    {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
                ]
            ),
            "messages[0].tool_calls",
        ),
        (
            chat(messages=[{"role": "assistant", "content": "x", "function_call": {"name": "f"}}]),
            "messages[0].function_call",
        ),
        (chat(messages=[{"role": "assistant", "audio": {"id": "a"}}]), "messages[0].audio"),
        (chat(messages=[{"role": "user"}]), "messages[0].content"),
        (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (chat(messages=[{"role": "user", "content": []}]), "messages[0].content"),
        (
            chat(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "see"},
                            {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                        ],
                    }
                ]
            ),
            "messages[0].content[1].type",
        ),
        (
            chat(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
            "messages[0].content[0].type",
        ),
        (
            chat(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            "messages[0].content[0].text",
        ),
        (chat(messages=[{"role": "user", "content": ["x"]}]), "messages[0].content[0]"),
        (chat(tools=[{"type": "function", "function": {"name": "f"}}]), "tools"),
        (chat(functions=[{"name": "f"}]), "functions"),
        (chat(n=2), "n"),
        (chat(n="1"), "n"),
        (chat(audio={"voice": "alloy", "format": "wav"}), "audio"),
        (chat(modalities=["text", "audio"]), "modalities"),
        (chat(logprobs=True), "logprobs"),
        (chat(response_format={"type": "json_object"}), "response_format"),
        (chat(temperature=2.5), "temperature"),
        (chat(temperature=-0.1), "temperature"),
        (chat(temperature="hot"), "temperature"),
        (chat(temperature=True), "temperature"),
        (chat(top_p=1.5), "top_p"),
        (chat(max_tokens=0), "max_tokens"),
        (chat(max_tokens=1.5), "max_tokens"),
        (chat(max_tokens=True), "max_tokens"),
        (chat(max_completion_tokens="10"), "max_completion_tokens"),
        (chat(stop=[1]), "stop[0]"),
        (chat(stop=3), "stop"),
        (chat(stream="yes"), "stream"),
        (chat(stream_options=True), "stream_options"),
        (chat(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        (chat(seed="1"), "seed"),
        (chat(user=5), "user"),
    ],
)
def test_openai_parse_chat_refuses(raw: bytes, param: str | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        oai.parse_chat(raw)
    assert caught.value.param == param
    assert caught.value.message
    if param is not None:
        assert param.split("[")[0].split(".")[0] in caught.value.message


def test_openai_parse_embeddings() -> None:
    request, encoding = oai.parse_embeddings(body({"model": "e", "input": "one"}))
    assert (request.model, request.inputs, request.dimensions, encoding) == (
        "e",
        ["one"],
        None,
        "float",
    )
    request, encoding = oai.parse_embeddings(
        body(
            {
                "model": "e",
                "input": ["a", "b"],
                "dimensions": 64,
                "user": "u",
                "encoding_format": "base64",
            }
        )
    )
    assert (request.inputs, request.dimensions, request.user, encoding) == (
        ["a", "b"],
        64,
        "u",
        "base64",
    )


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "e"}, "input"),
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": [1, 2, 3]}, "input"),
        ({"model": "e", "input": [[1, 2], [3]]}, "input"),
        ({"model": "e", "input": 12}, "input"),
        ({"model": "e", "input": ["a", None]}, "input[1]"),
        ({"model": "e", "input": ["a", ""]}, "input[1]"),
        ({"model": "e", "input": ""}, "input[0]"),
        ({"model": "e", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "e", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "e", "input": "x", "user": []}, "user"),
    ],
)
def test_openai_parse_embeddings_refuses(payload: dict[str, Any], param: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        oai.parse_embeddings(body(payload))
    assert caught.value.param == param


def test_token_arrays_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ProtocolError, match="Token-id arrays"):
        oai.parse_embeddings(body({"model": "e", "input": [[1, 2]]}))


# --- OpenAI: rendering ------------------------------------------------------------------------


def test_openai_render_chat_shape() -> None:
    result = ChatResult("Hello", "length", Usage(3, 4), "upstream-model")
    assert oai.render_chat(result, id="chatcmpl-1", created=100, model="gpt-x") == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 100,
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello", "refusal": None},
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    bare = oai.render_chat(ChatResult("x", "error", None, "m"), id="i", created=1, model="m")
    assert "usage" not in bare
    assert bare["choices"][0]["finish_reason"] == "stop"


def test_openai_stream_frames() -> None:
    encoder = oai.ChatStreamEncoder(id="c1", created=5, model="gpt-x", include_usage=True)
    text = 'say "hi"\nthen \u2028 caf\u00e9 \U0001f600 \\ end'
    stream = encoder.start() + encoder.delta(text) + encoder.end("stop", Usage(2, 3))
    assert stream.endswith(b"data: [DONE]\n\n")
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "gpt-x"}
    assert frames_of(stream) == [
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            "usage": None,
        },
        {
            **head,
            "choices": [
                {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
            ],
            "usage": None,
        },
        {
            **head,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            "usage": None,
        },
        {
            **head,
            "choices": [],
            "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
        },
    ]


def test_openai_stream_without_usage_has_no_usage_fields() -> None:
    encoder = oai.ChatStreamEncoder(id="c1", created=5, model="m", include_usage=False)
    frames = frames_of(encoder.start() + encoder.delta("x") + encoder.end("length", Usage(1, 1)))
    assert len(frames) == 3
    assert all("usage" not in frame for frame in frames)
    assert frames[-1]["choices"][0]["finish_reason"] == "length"


@given(st.text())
def test_delta_frames_carry_any_text(text: str) -> None:
    openai_encoder = oai.ChatStreamEncoder(id="c", created=1, model="m", include_usage=True)
    (chunk,) = frames_of(openai_encoder.delta(text))
    assert chunk["choices"][0]["delta"] == {"content": text}
    assert chunk["usage"] is None
    anthropic_encoder = anth.MessageStreamEncoder(id="m", model="c", input_tokens=1)
    ((name, event),) = named_frames(anthropic_encoder.delta(text))
    assert name == "content_block_delta"
    assert event["delta"] == {"type": "text_delta", "text": text}


def test_stream_frames_survive_a_lone_surrogate() -> None:
    encoder = oai.ChatStreamEncoder(id="c", created=1, model="m", include_usage=False)
    (frame,) = frames_of(encoder.delta("a\ud800b"))
    assert frame["choices"][0]["delta"]["content"] == "a?b"


def test_openai_render_embeddings_base64_is_little_endian_float32() -> None:
    vectors = [[0.5, -1.25, 3.0], [0.1, 0.2, 0.3]]
    result = EmbeddingResult(vectors, Usage(7, 0), "up")
    rendered = oai.render_embeddings(result, model="e", encoding_format="base64")
    assert rendered["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    for index, item in enumerate(rendered["data"]):
        assert (item["object"], item["index"]) == ("embedding", index)
        raw = base64.b64decode(item["embedding"])
        assert raw == struct.pack("<3f", *vectors[index])
    floats = oai.render_embeddings(result, model="e", encoding_format="float")
    assert [item["embedding"] for item in floats["data"]] == vectors


def test_openai_render_models() -> None:
    entries = [oai.ModelEntry("a", "ombud", 1), oai.ModelEntry("b", "acme", 2)]
    assert oai.render_models(entries) == {
        "object": "list",
        "data": [
            {"id": "a", "object": "model", "created": 1, "owned_by": "ombud"},
            {"id": "b", "object": "model", "created": 2, "owned_by": "acme"},
        ],
    }


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, "invalid_request_error", None),
        (401, "authentication_error", None),
        (402, "insufficient_quota", "insufficient_quota"),
        (403, "permission_error", None),
        (404, "not_found_error", None),
        (408, "timeout", None),
        (409, "conflict", None),
        (413, "invalid_request_error", None),
        (422, "invalid_request_error", None),
        (429, "rate_limit_exceeded", "rate_limit_exceeded"),
        (500, "server_error", None),
        (502, "api_error", None),
        (503, "api_error", None),
        (504, "timeout", None),
    ],
)
def test_openai_error_body(status: int, kind: str, code: str | None) -> None:
    assert oai.error_body(status, "nope") == {
        "error": {"message": "nope", "type": kind, "param": None, "code": code}
    }


def test_openai_error_body_code_and_param() -> None:
    assert oai.error_body(400, "bad", code="invalid_value", param="temperature")["error"] == {
        "message": "bad",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }


# --- OpenAI: the SDK against the codec --------------------------------------------------------


def chat_handler(
    seen: list[tuple[ChatRequest, oai.ChatOptions]], stream: Callable[[], list[bytes]]
) -> Handler:
    def handle(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/chat/completions"
        parsed, options = oai.parse_chat(request.content)
        seen.append((parsed, options))
        if parsed.stream:
            return sse_response(stream())
        result = ChatResult("Hello there", "stop", Usage(9, 2), "up")
        return json_response(200, oai.render_chat(result, id="cc-1", created=42, model="gpt-x"))

    return handle


def test_openai_sdk_chat_completion() -> None:
    seen: list[tuple[ChatRequest, oai.ChatOptions]] = []
    client = openai_client(chat_handler(seen, list))
    completion = client.chat.completions.create(
        model="gpt-x",
        messages=[
            {"role": "developer", "content": "terse"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        ],
        max_completion_tokens=32,
        temperature=0.2,
        stop=["\n\n"],
        seed=3,
        user="alice",
        extra_body={"vendor_flag": True},
    )
    assert completion.id == "cc-1"
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 2)
    assert completion.usage.total_tokens == 11
    ((parsed, _),) = seen
    assert parsed.system == "terse"
    assert parsed.messages == [Message("user", "hello")]
    assert (parsed.max_tokens, parsed.temperature, parsed.stop, parsed.seed, parsed.user) == (
        32,
        0.2,
        ["\n\n"],
        3,
        "alice",
    )


def openai_stream(include_usage: bool, pieces: list[str]) -> list[bytes]:
    encoder = oai.ChatStreamEncoder(
        id="cc-s", created=7, model="gpt-x", include_usage=include_usage
    )
    return [
        encoder.start(),
        *(encoder.delta(p) for p in pieces),
        encoder.end("length", Usage(5, 6)),
    ]


def test_openai_sdk_streams_text_and_usage() -> None:
    pieces = ["Hel", "lo", ", ", "wörld", ' "quoted"\n']
    seen: list[tuple[ChatRequest, oai.ChatOptions]] = []
    client = openai_client(chat_handler(seen, lambda: openai_stream(True, pieces)))
    stream = client.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(pieces)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 6)
    assert all(c.usage is None for c in chunks[:-1])
    assert seen[0][1].include_usage is True


def test_openai_sdk_stream_without_usage() -> None:
    client = openai_client(chat_handler([], lambda: openai_stream(False, ["a", "b"])))
    chunks = list(
        client.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "ab"
    assert all(c.usage is None for c in chunks)


def test_openai_sdk_raises_on_an_error_event_mid_stream() -> None:
    def frames() -> list[bytes]:
        encoder = oai.ChatStreamEncoder(id="c", created=1, model="m", include_usage=False)
        return [encoder.start(), encoder.delta("partial"), encoder.error(502, "upstream died")]

    client = openai_client(chat_handler([], frames))
    stream = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert next(stream).choices[0].delta.role == "assistant"
    assert next(stream).choices[0].delta.content == "partial"
    with pytest.raises(openai.APIError, match="upstream died") as caught:
        next(stream)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "api_error"


@pytest.mark.anyio
async def test_openai_async_sdk_reads_frames_split_across_reads() -> None:
    stream = b"".join(openai_stream(True, ["one ", "two"]))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(stream), 7):
            yield stream[start : start + 7]

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=pieces(), headers={"content-type": "text/event-stream"})

    client = openai.AsyncOpenAI(
        api_key="k",
        base_url="http://ombud.test/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handle)),
    )
    text: list[str] = []
    usage = None
    async for chunk in await client.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        text.extend(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    assert "".join(text) == "one two"
    assert usage is not None
    assert usage.total_tokens == 11


def embeddings_handler(vectors: list[list[float]]) -> Handler:
    def handle(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/embeddings"
        parsed, encoding = oai.parse_embeddings(request.content)
        result = EmbeddingResult(vectors[: len(parsed.inputs)], Usage(4, 0), "up")
        return json_response(
            200, oai.render_embeddings(result, model=parsed.model, encoding_format=encoding)
        )

    return handle


def test_openai_sdk_decodes_base64_embeddings() -> None:
    vectors = [[0.5, -1.25, 3.0, 0.0], [1.0, 2.0, -0.75, 8.5]]
    client = openai_client(embeddings_handler(vectors))
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    response = client.embeddings.create(model="e", input=["a", "b"])
    assert [item.embedding for item in response.data] == vectors
    assert response.usage.prompt_tokens == 4
    assert response.model == "e"


def test_openai_sdk_float_embeddings() -> None:
    vectors = [[0.1, 0.2, 0.3]]
    client = openai_client(embeddings_handler(vectors))
    response = client.embeddings.create(model="e", input="a", encoding_format="float")
    assert response.data[0].embedding == vectors[0]


def test_openai_sdk_lists_models() -> None:
    def handle(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/models"
        entries = [oai.ModelEntry("fast", "ombud", 10), oai.ModelEntry("smart", "ombud", 20)]
        return json_response(200, oai.render_models(entries))

    models = list(openai_client(handle).models.list())
    assert [(m.id, m.owned_by, m.created) for m in models] == [
        ("fast", "ombud", 10),
        ("smart", "ombud", 20),
    ]


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (402, openai.APIStatusError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_openai_sdk_raises_its_usual_exception(
    status: int, exception: type[openai.APIStatusError]
) -> None:
    client = openai_client(lambda _: json_response(status, oai.error_body(status, "denied")))
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert type(caught.value) is exception
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"] == "denied"
    assert caught.value.body["type"] == oai.error_type(status)


def test_openai_sdk_sees_the_param_of_a_refused_request() -> None:
    def handle(request: httpx2.Request) -> httpx2.Response:
        try:
            oai.parse_chat(request.content)
        except ProtocolError as exc:
            return json_response(400, oai.error_body(400, exc.message, param=exc.param))
        raise AssertionError("the request should have been refused")

    client = openai_client(handle)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], n=3)
    assert caught.value.param == "n"
    assert caught.value.type == "invalid_request_error"


# --- Anthropic: parsing -----------------------------------------------------------------------


def test_anthropic_parse_messages_reads_every_supported_field() -> None:
    request = anth.parse_messages(
        body(
            {
                "model": "claude-x",
                "max_tokens": 100,
                "system": [
                    {"type": "text", "text": "rule one", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "rule two"},
                ],
                "messages": [
                    {"role": "user", "content": "q1"},
                    {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}],
                    },
                ],
                "stop_sequences": ["STOP"],
                "temperature": 1,
                "top_p": 0.9,
                "top_k": 40,
                "output_config": {"effort": "low"},
                "stream": True,
                "metadata": {"user_id": "u-9"},
                "unknown": "ignored",
            }
        )
    )
    assert request == ChatRequest(
        model="claude-x",
        messages=[Message("user", "q1"), Message("assistant", "a1"), Message("user", "x\ny")],
        system="rule one\nrule two",
        max_tokens=100,
        temperature=1.0,
        top_p=0.9,
        stop=["STOP"],
        stream=True,
        user="u-9",
    )


def test_anthropic_parse_messages_defaults() -> None:
    request = anth.parse_messages(messages(system="be brief", metadata={}))
    assert request == ChatRequest(
        model="claude-x", messages=[Message("user", "hi")], system="be brief", max_tokens=64
    )
    assert anth.parse_messages(messages(system=[])).system is None
    assert anth.parse_messages(messages(system="")).system is None


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"nope", None),
        (b'"a string"', None),
        (body({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}), "model"),
        (body({"model": "c", "messages": [{"role": "user", "content": "x"}]}), "max_tokens"),
        (messages(max_tokens=None), "max_tokens"),
        (messages(max_tokens=0), "max_tokens"),
        (messages(max_tokens="5"), "max_tokens"),
        (body({"model": "c", "max_tokens": 5}), "messages"),
        (messages(messages=[]), "messages"),
        (messages(messages={"role": "user"}), "messages"),
        (messages(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (messages(messages=[{"role": "tool", "content": "x"}]), "messages[0].role"),
        (messages(messages=[{"role": "user"}]), "messages[0].content"),
        (messages(messages=[{"role": "user", "content": 1}]), "messages[0].content"),
        (messages(messages=[{"role": "user", "content": []}]), "messages[0].content"),
        (
            messages(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "look"},
                            {"type": "image", "source": {"type": "base64", "data": "AA=="}},
                        ],
                    }
                ]
            ),
            "messages[0].content[1].type",
        ),
        (
            messages(
                messages=[
                    {"role": "user", "content": "x"},
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}],
                    },
                ]
            ),
            "messages[1].content[0].type",
        ),
        (messages(tools=[{"name": "f", "input_schema": {}}]), "tools"),
        (
            messages(output_config={"format": {"type": "json_schema", "schema": {}}}),
            "output_config.format",
        ),
        (messages(system=5), "system"),
        (messages(system=[{"type": "image"}]), "system[0].type"),
        (messages(temperature=1.5), "temperature"),
        (messages(top_p=-1), "top_p"),
        (messages(stop_sequences="STOP"), "stop_sequences"),
        (messages(stop_sequences=[None]), "stop_sequences[0]"),
        (messages(stream=1), "stream"),
        (messages(metadata="u"), "metadata"),
        (messages(metadata={"user_id": 5}), "metadata.user_id"),
    ],
)
def test_anthropic_parse_messages_refuses(raw: bytes, param: str | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        anth.parse_messages(raw)
    assert caught.value.param == param
    assert caught.value.message


def test_anthropic_refuses_system_role_with_a_hint() -> None:
    with pytest.raises(ProtocolError, match="top-level 'system'"):
        anth.parse_messages(messages(messages=[{"role": "system", "content": "x"}]))


# --- Anthropic: rendering ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "tool_use"),
        ("error", "end_turn"),
    ],
)
def test_anthropic_render_message(finish: Any, stop: str) -> None:
    result = ChatResult("Hi!", finish, Usage(11, 3), "up")
    assert anth.render_message(result, id="msg_1", model="claude-x") == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hi!"}],
        "model": "claude-x",
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 3},
    }


def test_anthropic_render_message_without_usage() -> None:
    rendered = anth.render_message(ChatResult("", "stop", None, "up"), id="m", model="c")
    assert rendered["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_anthropic_stream_frames() -> None:
    encoder = anth.MessageStreamEncoder(id="msg_s", model="claude-x", input_tokens=12)
    text = 'multi\nline "quoted" \u00e9'
    events = named_frames(encoder.start() + encoder.delta(text) + encoder.end("stop", Usage(13, 4)))
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(payload["type"] == name for name, payload in events)
    assert events[0][1]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 0}
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[3][1] == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    assert events[5][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 4, "input_tokens": 13},
    }
    no_usage = named_frames(encoder.end("length", None))
    assert no_usage[1][1]["usage"] == {"output_tokens": 0}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (408, "timeout_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_anthropic_error_body(status: int, kind: str) -> None:
    assert anth.error_body(status, "nope") == {
        "type": "error",
        "error": {"type": kind, "message": "nope"},
    }


# --- Anthropic: the SDK against the codec -----------------------------------------------------


def messages_handler(seen: list[ChatRequest], pieces: list[str]) -> Handler:
    def handle(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/messages"
        parsed = anth.parse_messages(request.content)
        seen.append(parsed)
        if not parsed.stream:
            result = ChatResult("".join(pieces), "stop", Usage(21, 5), "up")
            return json_response(200, anth.render_message(result, id="msg_1", model=parsed.model))
        encoder = anth.MessageStreamEncoder(id="msg_2", model=parsed.model, input_tokens=20)
        return sse_response(
            [
                encoder.start(),
                *(encoder.delta(p) for p in pieces),
                encoder.end("length", Usage(21, 7)),
            ]
        )

    return handle


def test_anthropic_sdk_creates_a_message() -> None:
    seen: list[ChatRequest] = []
    client = anthropic_client(messages_handler(seen, ["Bonjour"]))
    message = client.messages.create(
        model="claude-x",
        max_tokens=50,
        system=[{"type": "text", "text": "be polite"}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        stop_sequences=["\n\nHuman:"],
        metadata={"user_id": "bob"},
        # This SDK version has no sampling arguments; clients send them as extras.
        extra_body={"temperature": 0.3},
    )
    assert message.id == "msg_1"
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Bonjour"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 5)
    (parsed,) = seen
    assert parsed.system == "be polite"
    assert parsed.messages == [Message("user", "hello")]
    assert (parsed.max_tokens, parsed.stop, parsed.temperature, parsed.user) == (
        50,
        ["\n\nHuman:"],
        0.3,
        "bob",
    )


def test_anthropic_sdk_message_stream_helper() -> None:
    pieces = ["Once ", "upon", " a ", "tïme\n", '"end"']
    client = anthropic_client(messages_handler([], pieces))
    with client.messages.stream(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "story"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "".join(pieces)
    assert final.id == "msg_2"
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "max_tokens"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (21, 7)


def test_anthropic_sdk_raw_stream_events() -> None:
    client = anthropic_client(messages_handler([], ["a", "b"]))
    events = list(
        client.messages.create(
            model="claude-x",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            stream=True,
        )
    )
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_sdk_raises_on_an_error_event_mid_stream() -> None:
    def handle(request: httpx2.Request) -> httpx2.Response:
        encoder = anth.MessageStreamEncoder(id="m", model="claude-x", input_tokens=1)
        return sse_response(
            [encoder.start(), encoder.delta("part"), encoder.error(529, "Overloaded")]
        )

    client = anthropic_client(handle)
    with client.messages.stream(
        model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        texts = iter(stream.text_stream)
        assert next(texts) == "part"
        with pytest.raises(anthropic.APIStatusError, match="Overloaded") as caught:
            next(texts)
    assert caught.value.body == anth.error_body(529, "Overloaded")


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (402, anthropic.PaymentRequiredError),
        (403, anthropic.PermissionDeniedError),
        (404, anthropic.NotFoundError),
        (413, anthropic.ContentTooLargeError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (503, anthropic.ServiceUnavailableError),
        (529, anthropic.OverloadedError),
    ],
)
def test_anthropic_sdk_raises_its_usual_exception(
    status: int, exception: type[anthropic.APIStatusError]
) -> None:
    client = anthropic_client(lambda _: json_response(status, anth.error_body(status, "denied")))
    with pytest.raises(exception) as caught:
        client.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert type(caught.value) is exception
    assert caught.value.status_code == status
    assert caught.value.body == anth.error_body(status, "denied")


def test_anthropic_sdk_without_max_tokens_is_refused_by_the_codec() -> None:
    # The SDK itself insists on max_tokens; a raw client may not, and gets a 400 naming it.
    with pytest.raises(ProtocolError) as caught:
        anth.parse_messages(body({"model": "c", "messages": [{"role": "user", "content": "x"}]}))
    assert caught.value.param == "max_tokens"
