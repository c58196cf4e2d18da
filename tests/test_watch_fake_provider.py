"""The fake provider speaks the real wire formats: every JSON body and every streamed
event it sends validates against the provider packages' own (pydantic) types, the
Responses event sequence is the one ``openai``'s stream parser accumulates, and the
real clients parse tool calls and structured output from it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from .fake_provider import FakeProvider
from .watch_helpers import (
    ANTHROPIC_TOOLS,
    CHAT_TOOLS,
    PARAMS,
    RESPONSES_TOOLS,
    WEATHER_ARGS,
    Weather,
)

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")
pydantic = pytest.importorskip("pydantic")

from google.genai import types as gtypes  # noqa: E402
from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402
from openai.types.create_embedding_response import CreateEmbeddingResponse  # noqa: E402
from openai.types.responses import Response, ResponseStreamEvent  # noqa: E402

WEATHER = json.loads(WEATHER_ARGS)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(model_versions={"gpt-4o": "gpt-4o-2024-08-06"}) as srv:
        yield srv


def post(url: str, body: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> bytes:
    """POST ``body`` as JSON; the body of the 200 answer."""
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return resp.read()


def sse(raw: bytes) -> List[Tuple[str, Any]]:
    """(event name, data) of every server-sent event."""
    events = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = "", None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            events.append((name, None if data == "[DONE]" else json.loads(data)))
    return events


# --- OpenAI Responses ---------------------------------------------------------------------

STREAM_EVENTS = ResponseStreamEvent  # the union the openai package parses each event as


def test_responses_json_validates(fake: FakeProvider) -> None:
    raw = post(fake.openai_base_url + "/responses", {"model": "gpt-4o", "input": "hello there"})
    response = Response.model_validate(json.loads(raw))
    assert response.model == "gpt-4o-2024-08-06"  # the dated model the response names
    assert response.output_text == "Echo from gpt-4o: hello there"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, 5)


def test_responses_stream_event_sequence(fake: FakeProvider) -> None:
    raw = post(
        fake.openai_base_url + "/responses",
        {"model": "gpt-4o", "input": "stream three words", "stream": True},
    )
    events = sse(raw)
    adapter = pydantic.TypeAdapter(STREAM_EVENTS)
    parsed = [adapter.validate_python(data) for _, data in events]
    assert [name for name, _ in events] == [e.type for e in parsed]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    kinds = [e.type for e in parsed]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 6,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e.delta for e in parsed if e.type == "response.output_text.delta") == (
        "Echo from gpt-4o: stream three words"
    )
    usage = parsed[-1].response.usage
    assert (usage.input_tokens, usage.output_tokens) == (3, 6)


def test_responses_function_call_streamed_and_plain(fake: FakeProvider) -> None:
    body = {"model": "gpt-4o", "input": "weather in Paris please", "tools": RESPONSES_TOOLS}
    raw = post(fake.openai_base_url + "/responses", body)
    (item,) = Response.model_validate(json.loads(raw)).output
    assert (item.type, item.name, json.loads(item.arguments)) == (
        "function_call",
        "get_weather",
        WEATHER,
    )
    raw = post(fake.openai_base_url + "/responses", dict(body, stream=True))
    adapter = pydantic.TypeAdapter(STREAM_EVENTS)
    parsed = [adapter.validate_python(data) for _, data in sse(raw)]
    kinds = [e.type for e in parsed]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in parsed if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) > 1 and json.loads("".join(deltas)) == WEATHER


def test_openai_client_parses_the_fake_responses(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)
    with client.responses.stream(
        model="gpt-4o", input="weather in Paris please", tools=RESPONSES_TOOLS
    ) as stream:
        snapshots = [
            e.snapshot for e in stream if e.type == "response.function_call_arguments.delta"
        ]
        final = stream.get_final_response()
    assert json.loads(snapshots[-1]) == WEATHER
    (call,) = final.output
    assert call.type == "function_call" and call.call_id == "call_fake_0"
    # the tool result goes back: the model answers with text
    answer = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "weather in Paris please"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=RESPONSES_TOOLS,
    )
    assert answer.output_text == "Echo from gpt-4o: sunny"
    parsed = client.responses.parse(model="gpt-4o", input="Paris now", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris now", temp=2)
    none = client.responses.create(
        model="gpt-4o", input="no tools", tools=RESPONSES_TOOLS, tool_choice="none"
    )
    assert none.output_text == "Echo from gpt-4o: no tools"


# --- OpenAI chat completions and embeddings --------------------------------------------------


def test_chat_tool_calls_plain_and_streamed(fake: FakeProvider) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "weather in Paris please"}],
        "tools": CHAT_TOOLS,
    }
    raw = post(fake.openai_base_url + "/chat/completions", body)
    completion = ChatCompletion.model_validate(json.loads(raw))
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER
    assert completion.choices[0].finish_reason == "tool_calls"
    raw = post(
        fake.openai_base_url + "/chat/completions",
        dict(body, stream=True, stream_options={"include_usage": True}),
    )
    events = sse(raw)
    assert events[-1] == ("", None)  # data: [DONE]
    chunks = [ChatCompletionChunk.model_validate(data) for _, data in events[:-1]]
    assert chunks[0].choices[0].delta.tool_calls[0].function.name == "get_weather"
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == WEATHER
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 4


def test_openai_client_chat_helpers_on_the_fake(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "weather in Paris please"}]
    with client.chat.completions.stream(model="gpt-4o", messages=messages, tools=CHAT_TOOLS) as s:
        final = s.get_final_completion()
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == WEATHER
    parsed = client.chat.completions.parse(
        model="gpt-4o", messages=messages, response_format=Weather
    )
    assert parsed.choices[0].message.parsed == Weather(city="weather in Paris please", temp=4)
    answer = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            *messages,
            final.choices[0].message.model_dump(exclude_none=True, exclude={"parsed"}),
            {"role": "tool", "tool_call_id": "call_fake_0", "content": "sunny"},
        ],
        tools=CHAT_TOOLS,
    )
    assert answer.choices[0].message.content == "Echo from gpt-4o: sunny"


def test_embeddings_float_and_base64(fake: FakeProvider) -> None:
    raw = post(
        fake.openai_base_url + "/embeddings",
        {"model": "text-embedding-3-small", "input": ["one two", "three"], "dimensions": 4},
    )
    response = CreateEmbeddingResponse.model_validate(json.loads(raw))
    assert [len(d.embedding) for d in response.data] == [4, 4]
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (3, 3)
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)
    decoded = client.embeddings.create(  # the package asks for base64 and decodes it
        model="text-embedding-3-small", input=["one two", "three"], dimensions=4
    )
    assert fake.requests[-1].body["encoding_format"] == "base64"
    # multiples of 1/128: exact in float32, so the decoded vectors are equal
    assert [d.embedding for d in decoded.data] == [d.embedding for d in response.data]


def test_token_details_by_header(fake: FakeProvider) -> None:
    headers = {
        "x-fake-cached-tokens": "3",
        "x-fake-reasoning-tokens": "7",
        "x-fake-cache-write-tokens": "2",
    }
    raw = post(fake.openai_base_url + "/responses", {"model": "m", "input": "a b c d"}, headers)
    usage = Response.model_validate(json.loads(raw)).usage
    assert usage.input_tokens_details.cached_tokens == 3
    assert usage.input_tokens_details.cache_write_tokens == 2
    assert usage.output_tokens_details.reasoning_tokens == 7
    raw = post(
        fake.openai_base_url + "/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "a"}]},
        headers,
    )
    usage = ChatCompletion.model_validate(json.loads(raw)).usage
    assert usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details.reasoning_tokens == 7
    raw = post(
        fake.anthropic_base_url + "/v1/messages",
        {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]},
        headers,
    )
    usage = anthropic.types.Message.model_validate(json.loads(raw)).usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (3, 2)
    raw = post(
        fake.gemini_base_url + "/v1beta/models/g:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "a"}]}]},
        headers,
    )
    meta = gtypes.GenerateContentResponse.model_validate(json.loads(raw)).usage_metadata
    assert (meta.cached_content_token_count, meta.thoughts_token_count) == (3, 7)


# --- Anthropic ------------------------------------------------------------------------------


def test_anthropic_tool_use_plain_and_streamed(fake: FakeProvider) -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "weather in Paris please"}],
        "tools": ANTHROPIC_TOOLS,
    }
    raw = post(fake.anthropic_base_url + "/v1/messages", body)
    message = anthropic.types.Message.model_validate(json.loads(raw))
    assert message.stop_reason == "tool_use"
    tool_use = message.content[-1]
    assert (tool_use.type, tool_use.name, tool_use.input) == (
        "tool_use",
        "get_weather",
        WEATHER,
    )
    raw = post(fake.anthropic_base_url + "/v1/messages", dict(body, stream=True))
    adapter = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
    events = [(name, data) for name, data in sse(raw) if name != "ping"]
    parsed = [adapter.validate_python(data) for _, data in events]
    assert [name for name, _ in events] == [e.type for e in parsed]
    assert [e.type for e in parsed][-2:] == ["message_delta", "message_stop"]
    partial = "".join(
        e.delta.partial_json
        for e in parsed
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert json.loads(partial) == WEATHER
    client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="x", max_retries=0)
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.content[-1].input == WEATHER
    answer = client.messages.create(
        model="claude-x",
        max_tokens=50,
        messages=[
            body["messages"][0],
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}
                ],
            },
        ],
        tools=ANTHROPIC_TOOLS,
    )
    assert answer.content[0].text == "Echo from claude-x: sunny"
    assert answer.stop_reason == "end_turn"


# --- Gemini ---------------------------------------------------------------------------------


def test_gemini_function_call_and_automatic_function_calling(fake: FakeProvider) -> None:
    client = genai.Client(api_key="x", http_options={"base_url": fake.gemini_base_url})
    declaration = gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema=PARAMS)
    config = gtypes.GenerateContentConfig(tools=[gtypes.Tool(function_declarations=[declaration])])
    response = client.models.generate_content(
        model="gemini-2.0-flash", contents="weather in Paris please", config=config
    )
    (call,) = response.function_calls
    assert (call.name, call.args) == ("get_weather", WEATHER)

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    auto = client.models.generate_content(
        model="gemini-2.0-flash",
        contents="Paris",
        config=gtypes.GenerateContentConfig(tools=[get_weather]),
    )
    assert auto.text == 'Echo from gemini-2.0-flash: {"result": "sunny in Paris"}'


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/chat/completions", {"messages": "not a list", "tools": 5, "stream_options": 1}),
        ("/v1/chat/completions", [1, 2, 3]),
        ("/v1/responses", {"input": [None, 7, {"role": "user", "content": 3}], "text": "x"}),
        ("/v1/embeddings", {"input": 12, "dimensions": -3}),
        ("/v1/messages", {"messages": [{"content": [None]}], "tool_choice": "auto"}),
        ("/v1beta/models/g:generateContent", {"contents": [{"parts": "x"}], "toolConfig": 1}),
    ],
)
def test_malformed_requests_get_an_answer(fake: FakeProvider, path: str, body: Any) -> None:
    """A request body of the wrong shape is answered (never a dropped connection), and
    the server keeps serving."""
    req = urllib.request.Request(
        fake.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            json.loads(resp.read())
    except urllib.error.HTTPError as err:
        assert err.code == 400
        assert "fake provider cannot answer" in json.loads(err.read())["error"]["message"]
    ok = post(fake.openai_base_url + "/responses", {"model": "m", "input": "still up"})
    assert Response.model_validate(json.loads(ok)).output_text == "Echo from m: still up"


def test_an_endpoint_that_fails_answers_400_and_the_server_stays_up() -> None:
    class Broken(FakeProvider):
        def _embeddings(self, x: Any) -> None:
            raise ValueError("boom")

    with Broken() as broken:
        client = openai.OpenAI(base_url=broken.openai_base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="boom"):
            client.embeddings.create(model="e", input="x")
        assert client.responses.create(model="m", input="hi").output_text == "Echo from m: hi"
