"""watch() and the instrumentors on the Anthropic and google-genai entry points beyond
``messages.create`` / ``generate_content``: the ``messages.stream(...)`` helper (sync
and async, every way of reading it), ``messages.parse``, ``beta.messages``, Gemini
chat sessions; tool calls, cache and thinking tokens, errors and abandoned streams,
with the real packages against the fake provider."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator, List

import pytest

from infinium.integrations import AnthropicInstrumentor, GoogleInstrumentor, watch

from .fake_provider import FakeProvider
from .watch_helpers import (
    ANTHROPIC_TOOLS,
    PARAMS,
    USER,
    WEATHER_ARGS,
    WEATHER_PROMPT,
    Weather,
    anth,
    gem,
    llm_steps,
    only_trace,
    provider_calls,
    received,
    tokens,
)

anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")

from google.genai import types as gtypes  # noqa: E402


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    versions = {
        "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
        "gemini-2.5-flash": "gemini-2.5-flash-001",
    }
    with FakeProvider(model_versions=versions) as srv:
        yield srv


def user(text: str) -> List[Any]:
    return [{"role": "user", "content": text}]


# --- Anthropic ------------------------------------------------------------------------------

ANTHROPIC_STEPS = [
    ("anthropic/claude-sonnet-4-5-20250929", (4, 5)),  # stream(): get_final_text()
    ("anthropic/claude-h", (2, 5)),  # stream(): text_stream
    ("anthropic/claude-p", (2, 5)),  # parse: '{"city": "Paris now", "temp": 2}'
    ("anthropic/claude-b", (2, 5)),  # beta.messages.create
    ("anthropic/claude-bs", (2, 5)),  # beta.messages.stream(): iterated
    ("anthropic/claude-bp", (2, 5)),  # beta.messages.parse
]


def check_anthropic_trace(body: Any, fake: FakeProvider, before: int) -> None:
    steps = llm_steps(body)
    assert [(s["description"], tokens(s)) for s in steps] == ANTHROPIC_STEPS
    assert provider_calls(fake, "/messages") - before == 6  # one request per record
    assert all("metadata" not in s and "error" not in s for s in steps)
    usage = body["llm_usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["api_calls_count"]) == (
        14,
        30,
        6,
    )


def test_anthropic_stream_parse_beta_sync(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(anth(fake))
    before = provider_calls(fake, "/messages")

    @client.trace("claude helpers")
    def run() -> List[Any]:
        with llm.messages.stream(
            model="claude-sonnet-4-5", max_tokens=50, system="Be brief.", messages=USER[1:]
        ) as s:
            final = s.get_final_text()
        with llm.messages.stream(
            model="claude-h", max_tokens=50, messages=user("text stream")
        ) as s:
            text = "".join(s.text_stream)
        parsed = llm.messages.parse(
            model="claude-p", max_tokens=50, messages=user("Paris now"), output_format=Weather
        )
        llm.beta.messages.create(model="claude-b", max_tokens=50, messages=user("beta hi"))
        with llm.beta.messages.stream(
            model="claude-bs", max_tokens=50, messages=user("beta stream")
        ) as s:
            for _ in s:
                pass
        beta = llm.beta.messages.parse(
            model="claude-bp", max_tokens=50, messages=user("Paris now"), output_format=Weather
        )
        return [final, text, parsed.parsed_output, beta.parsed_output]

    assert run() == [
        "Echo from claude-sonnet-4-5: hello there",
        "Echo from claude-h: text stream",
        Weather(city="Paris now", temp=2),
        Weather(city="Paris now", temp=2),
    ]
    check_anthropic_trace(only_trace(capture_server), fake, before)


def test_anthropic_stream_parse_beta_async(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    llm = watch(anth(fake, anthropic.AsyncAnthropic))
    before = provider_calls(fake, "/messages")

    @async_client.trace("async claude helpers")
    async def run() -> List[Any]:
        async with llm.messages.stream(
            model="claude-sonnet-4-5", max_tokens=50, system="Be brief.", messages=USER[1:]
        ) as s:
            final = await s.get_final_text()
        async with llm.messages.stream(
            model="claude-h", max_tokens=50, messages=user("text stream")
        ) as s:
            text = "".join([t async for t in s.text_stream])
        await llm.messages.parse(
            model="claude-p", max_tokens=50, messages=user("Paris now"), output_format=Weather
        )
        await llm.beta.messages.create(model="claude-b", max_tokens=50, messages=user("beta hi"))
        async with llm.beta.messages.stream(
            model="claude-bs", max_tokens=50, messages=user("beta stream")
        ) as s:
            async for _ in s:
                pass
        await llm.beta.messages.parse(
            model="claude-bp", max_tokens=50, messages=user("Paris now"), output_format=Weather
        )
        return [final, text]

    assert asyncio.run(run()) == [
        "Echo from claude-sonnet-4-5: hello there",
        "Echo from claude-h: text stream",
    ]
    check_anthropic_trace(only_trace(capture_server), fake, before)


@pytest.mark.parametrize("capture", [False, True])
def test_anthropic_tool_use_and_cache_tokens(
    capture: bool, fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(anth(fake), capture_content=capture)
    cache = {
        "x-fake-cached-tokens": "30",
        "x-fake-cache-write-tokens": "12",
        "x-fake-reasoning-tokens": "9",
    }

    @client.trace("claude tools")
    def run() -> None:
        ask = {"max_tokens": 50, "messages": user(WEATHER_PROMPT), "tools": ANTHROPIC_TOOLS}
        llm.messages.create(model="c1", extra_headers=cache, **ask)
        for _ in llm.messages.create(model="c2", stream=True, **ask):
            pass
        with llm.messages.stream(model="c3", **ask) as s:
            s.until_done()
        llm.messages.create(model="c4", max_tokens=50, messages=user("no tools"))

    run()
    body = only_trace(capture_server)
    steps = llm_steps(body)
    call = (
        {"name": "get_weather", "arguments": WEATHER_ARGS} if capture else {"name": "get_weather"}
    )
    assert [s.get("metadata") for s in steps] == [
        {
            "cached_tokens": 30,
            "cache_write_tokens": 12,
            "reasoning_tokens": 9,
            "tool_calls": [call],
        },
        {"tool_calls": [call]},
        {"tool_calls": [call]},
        None,
    ]
    # text "Echo from c1: weather in Paris please" (7 words) + the arguments (9)
    assert tokens(steps[0]) == (4, 16)
    assert (body["llm_usage"]["cached_tokens"], body["llm_usage"]["cache_write_tokens"]) == (30, 12)
    if capture:
        assert steps[2]["output_preview"] == "Echo from c3: weather in Paris please"


def test_anthropic_stream_errors_and_abandon(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(anth(fake), capture_content=True)
    raised: List[str] = []

    @client.trace("claude errors")
    def run() -> None:
        for model in ("error-529", "midstream-error", "midstream-drop"):
            try:
                with llm.messages.stream(model=model, max_tokens=5, messages=user("a b")) as s:
                    s.until_done()
            except anthropic.APIError as exc:
                raised.append(type(exc).__name__)
        with llm.messages.stream(model="long-model", max_tokens=5, messages=user("a b")) as s:
            for i, _ in enumerate(s):
                if i == 4:
                    break  # abandoned: recorded once, when the block exits

    run()
    steps = llm_steps(only_trace(capture_server))
    assert [s.get("error", {}).get("error_type") for s in steps] == [*raised, None]
    assert raised[1:] == ["APIStatusError", "APIConnectionError"]
    assert "Overloaded" in steps[1]["error"]["message"]
    # five events read: message_start, content_block_start, then the helper's two
    # events (text, content_block_delta) for each of the first two text deltas
    assert steps[3]["output_preview"] == "Echo from "
    assert tokens(steps[3]) == (2, None)
    assert all(isinstance(s["llm_call"]["latency_ms"], int) for s in steps)


def test_anthropic_untraced_and_instrumented(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    from anthropic.lib.streaming import MessageStreamManager
    from anthropic.resources.beta.messages import Messages as BetaMessages
    from anthropic.resources.messages import AsyncMessages, Messages

    llm = watch(anth(fake))
    manager = llm.messages.stream(model="m", max_tokens=5, messages=user("x"))
    assert type(manager) is MessageStreamManager  # outside a trace: the package's own
    with manager as s:
        s.until_done()
    assert received(capture_server) == []

    originals = (Messages.stream, Messages.parse, AsyncMessages.stream, BetaMessages.stream)
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument()
    try:
        plain = anth(fake)

        @client.trace("instrumented claude")
        def run() -> None:
            with plain.messages.stream(model="a", max_tokens=5, messages=user("x")) as s:
                s.until_done()
            plain.messages.parse(model="b", max_tokens=5, messages=user("x"), output_format=Weather)
            with plain.beta.messages.stream(model="c", max_tokens=5, messages=user("x")) as s:
                s.until_done()
            llm.messages.create(model="d", max_tokens=5, messages=user("x"))

        run()
    finally:
        instrumentor.uninstrument()
    assert (Messages.stream, Messages.parse, AsyncMessages.stream, BetaMessages.stream) == (
        originals
    )
    steps = llm_steps(only_trace(capture_server))
    assert [s["description"] for s in steps] == [f"anthropic/{m}" for m in "abcd"]


# --- Gemini ---------------------------------------------------------------------------------

DECLARATION = {"name": "get_weather", "parameters_json_schema": PARAMS}


def weather_tool() -> Any:
    return gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(**DECLARATION)])


def test_gemini_chats_sync_and_async(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    g = watch(gem(fake), capture_content=True)

    @async_client.trace("gemini chats")
    async def run() -> List[str]:
        chat = g.chats.create(model="gemini-2.5-flash")
        first = chat.send_message("hi chat").text
        streamed = "".join(c.text for c in chat.send_message_stream("stream chat"))
        achat = g.aio.chats.create(model="gemini-pro")
        second = (await achat.send_message("async chat")).text
        parts = [c.text async for c in await achat.send_message_stream("async chat stream")]
        return [first, streamed, second, "".join(parts)]

    assert asyncio.run(run()) == [
        "Echo from gemini-2.5-flash: hi chat",
        "Echo from gemini-2.5-flash: stream chat",
        "Echo from gemini-pro: async chat",
        "Echo from gemini-pro: async chat stream",
    ]
    steps = llm_steps(only_trace(capture_server))
    assert [s["description"] for s in steps] == [
        "google/gemini-2.5-flash-001",  # the model version the response names
        "google/gemini-2.5-flash-001",
        "google/gemini-pro",
        "google/gemini-pro",
    ]
    # the chat history is part of every later prompt of its session
    assert [tokens(s) for s in steps] == [(2, 5), (9, 5), (2, 5), (10, 6)]
    assert steps[1]["output_preview"] == "Echo from gemini-2.5-flash: stream chat"


@pytest.mark.parametrize("capture", [False, True])
def test_gemini_function_calls_and_token_details(
    capture: bool, fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    g = watch(gem(fake), capture_content=capture)
    thoughts = {"x-fake-cached-tokens": "2", "x-fake-reasoning-tokens": "11"}

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    @client.trace("gemini tools")
    def run() -> None:
        config = gtypes.GenerateContentConfig(tools=[weather_tool()])
        g.models.generate_content(model="g1", contents=WEATHER_PROMPT, config=config)
        for _ in g.models.generate_content_stream(
            model="g2", contents=WEATHER_PROMPT, config=config
        ):
            pass
        auto = gtypes.GenerateContentConfig(tools=[get_weather])  # automatic function calling
        g.models.generate_content(model="g3", contents="Paris", config=auto)
        g.models.generate_content(
            model="g4",
            contents="a b",
            config=gtypes.GenerateContentConfig(http_options={"headers": thoughts}),
        )

    run()
    body = only_trace(capture_server)
    steps = llm_steps(body)
    call = (
        {"name": "get_weather", "arguments": WEATHER_ARGS} if capture else {"name": "get_weather"}
    )
    auto_call = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert [s.get("metadata") for s in steps] == [
        {"tool_calls": [call]},
        {"tool_calls": [call]},
        {"tool_calls": [auto_call if capture else {"name": "get_weather"}]},
        {"cached_tokens": 2, "reasoning_tokens": 11},
    ]
    assert (body["llm_usage"]["cached_tokens"], body["llm_usage"]["reasoning_tokens"]) == (2, 11)


def test_gemini_errors_and_instrumentor(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    from google.genai.models import AsyncModels, Models

    g = watch(gem(fake))
    raised: List[str] = []

    @client.trace("gemini errors")
    def run() -> None:
        for call in (
            lambda: g.models.generate_content(model="error-500", contents="x"),
            lambda: list(g.models.generate_content_stream(model="error-400", contents="x")),
            lambda: list(g.models.generate_content_stream(model="midstream-drop", contents="a b")),
        ):
            try:
                call()
            except Exception as exc:
                raised.append(type(exc).__name__)

    run()
    assert raised[:2] == ["ServerError", "ClientError"]
    steps = llm_steps(only_trace(capture_server))
    assert [s["error"]["error_type"] for s in steps] == raised

    originals = (Models.generate_content_stream, AsyncModels.generate_content)
    instrumentor = GoogleInstrumentor(capture_content=True)
    instrumentor.instrument()
    try:
        plain = gem(fake)

        @client.trace("instrumented gemini")
        def run2() -> None:
            plain.chats.create(model="c1").send_message("x")
            for _ in plain.models.generate_content_stream(model="c2", contents="y"):
                pass

        run2()
    finally:
        instrumentor.uninstrument()
    assert (Models.generate_content_stream, AsyncModels.generate_content) == originals
    steps = llm_steps(received(capture_server)[-1])
    assert [s["description"] for s in steps] == ["google/c1", "google/c2"]
    assert steps[1]["output_preview"] == "Echo from c2: y"


def test_gemini_automatic_function_calling_records_each_turns_calls(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    """A chat session calls the model once per turn of automatic function calling:
    one record each. ``models.generate_content`` makes those calls itself: its one
    record lists the tool calls made for it, not those of the earlier turns its
    input carries."""
    g = watch(gem(fake), capture_content=True)

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    auto = gtypes.GenerateContentConfig(tools=[get_weather])

    @client.trace("gemini chat tools")
    def run() -> List[str]:
        chat = g.chats.create(model="g", config=auto)
        texts = [chat.send_message("Paris").text, chat.send_message("London").text]
        history = chat.get_history()[:4]  # Paris: the call, its result, the answer
        again = g.models.generate_content(
            model="g", contents=[*history, gtypes.UserContent("Rome")], config=auto
        )
        return [*texts, again.text]

    assert run() == [
        'Echo from g: {"result": "sunny in Paris"}',
        'Echo from g: {"result": "sunny in London"}',
        'Echo from g: {"result": "sunny in Rome"}',
    ]
    steps = llm_steps(only_trace(capture_server))

    def call(city: str) -> Any:
        return {"tool_calls": [{"name": "get_weather", "arguments": f'{{"city": "{city}"}}'}]}

    assert [s.get("metadata") for s in steps] == [
        call("Paris"),
        None,
        call("London"),
        None,
        call("Rome"),
    ]


def test_anthropic_capture_content_on_the_helpers(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    llm = watch(anth(fake, anthropic.AsyncAnthropic), capture_content=True)

    @async_client.trace("claude helpers, captured")
    async def run() -> None:
        async with llm.messages.stream(
            model="s", max_tokens=5, system="Be brief.", messages=user("streamed")
        ) as s:
            await s.until_done()
        await llm.messages.parse(
            model="p", max_tokens=5, messages=user("Paris now"), output_format=Weather
        )
        await llm.beta.messages.create(model="b", max_tokens=5, messages=user("beta"))

    asyncio.run(run())
    steps = llm_steps(only_trace(capture_server))
    assert [(s["input_preview"], s["output_preview"]) for s in steps] == [
        ("[system] Be brief.\n[user] streamed", "Echo from s: streamed"),
        ("[user] Paris now", '{"city": "Paris now", "temp": 2}'),
        ("[user] beta", "Echo from b: beta"),
    ]
