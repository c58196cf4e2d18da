"""watch() and OpenAIInstrumentor on the OpenAI entry points agents call today, with the
real ``openai`` package against the fake provider: the Responses API (``create`` plain
and streamed, the ``stream()`` helper, ``parse``), ``chat.completions.parse`` /
``stream``, ``embeddings.create``; sync and async; tool calls, token details, errors,
abandoned streams, and calls outside a trace."""

from __future__ import annotations

import asyncio
import gc
from typing import Any, Iterator, List

import pytest

from infinium.integrations import OpenAIInstrumentor, watch

from .fake_provider import FakeProvider
from .watch_helpers import (
    CHAT_TOOLS,
    RESPONSES_TOOLS,
    USER,
    WEATHER_ARGS,
    WEATHER_PROMPT,
    Weather,
    llm_steps,
    oai,
    only_trace,
    provider_calls,
    received,
    tokens,
)

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(model_versions={"gpt-4o": "gpt-4o-2024-08-06"}) as srv:
        yield srv


def user(text: str) -> List[Any]:
    return [{"role": "user", "content": text}]


# --- the Responses API ---------------------------------------------------------------------

# (description, (prompt, completion)) of the four calls of the responses scenarios below.
RESPONSES_STEPS = [
    ("openai/gpt-4o-2024-08-06", (4, 5)),  # "Be brief." + "hello there"
    ("openai/gpt-4o-mini", (3, 6)),  # streamed
    ("openai/gpt-4o-2024-08-06", (3, 6)),  # responses.stream(): one record, not two
    ("openai/gpt-4o-mini", (2, 5)),  # parse: '{"city": "Paris now", "temp": 2}'
]


def check_responses_trace(body: Any, fake: FakeProvider, requests_before: int) -> None:
    steps = llm_steps(body)
    assert [(s["description"], tokens(s)) for s in steps] == RESPONSES_STEPS
    assert steps[0]["llm_call"]["temperature"] == 0.2
    assert provider_calls(fake, "/responses") - requests_before == 4
    for step in steps:
        assert isinstance(step["llm_call"]["latency_ms"], int)
        # no tool calls, no cached / reasoning tokens, capture_content off: the
        # step is what infinium-o2 sends for a chat completion
        assert set(step) == {"step_number", "action", "description", "duration_ms", "llm_call"}
    usage = body["llm_usage"]
    assert (usage["model"], usage["provider"]) == ("multiple", "openai")
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        12,
        22,
        34,
    )
    assert usage["api_calls_count"] == 4 and len(usage["calls"]) == 4
    assert "cached_tokens" not in usage and "estimated_cost_usd" not in usage


def test_responses_sync(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    llm = watch(oai(fake))
    before = provider_calls(fake, "/responses")

    @client.trace("responses agent")
    def run() -> List[Any]:
        r = llm.responses.create(
            model="gpt-4o", input="hello there", instructions="Be brief.", temperature=0.2
        )
        stream = llm.responses.create(model="gpt-4o-mini", input="stream three words", stream=True)
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        with llm.responses.stream(model="gpt-4o", input="via the helper") as s:
            helper = s.get_final_response().output_text
        parsed = llm.responses.parse(model="gpt-4o-mini", input="Paris now", text_format=Weather)
        return [r.output_text, text, helper, parsed.output_parsed]

    assert run() == [
        "Echo from gpt-4o: hello there",
        "Echo from gpt-4o-mini: stream three words",
        "Echo from gpt-4o: via the helper",
        Weather(city="Paris now", temp=2),
    ]
    check_responses_trace(only_trace(capture_server), fake, before)


def test_responses_async(fake: FakeProvider, capture_server: Any, async_client: Any) -> None:
    llm = watch(oai(fake, openai.AsyncOpenAI))
    before = provider_calls(fake, "/responses")

    @async_client.trace("async responses agent")
    async def run() -> List[Any]:
        r = await llm.responses.create(
            model="gpt-4o", input="hello there", instructions="Be brief.", temperature=0.2
        )
        stream = await llm.responses.create(
            model="gpt-4o-mini", input="stream three words", stream=True
        )
        text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
        async with llm.responses.stream(model="gpt-4o", input="via the helper") as s:
            helper = (await s.get_final_response()).output_text
        parsed = await llm.responses.parse(
            model="gpt-4o-mini", input="Paris now", text_format=Weather
        )
        return [r.output_text, text, helper, parsed.output_parsed]

    assert asyncio.run(run())[1:3] == [
        "Echo from gpt-4o-mini: stream three words",
        "Echo from gpt-4o: via the helper",
    ]
    check_responses_trace(only_trace(capture_server), fake, before)


def test_responses_capture_content(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    llm = watch(oai(fake), capture_content=True)

    @client.trace("capture")
    def run() -> None:
        llm.responses.create(model="m1", instructions="Be brief.", input=USER[1:])
        for _ in llm.responses.create(model="m2", input="stream it", stream=True):
            pass
        with llm.responses.stream(model="m3", input=[{"role": "user", "content": "cm"}]) as s:
            s.until_done()

    run()
    steps = llm_steps(only_trace(capture_server))
    assert [(s["input_preview"], s["output_preview"]) for s in steps] == [
        ("[system] Be brief.\n[user] hello there", "Echo from m1: hello there"),
        ("[user] stream it", "Echo from m2: stream it"),
        ("[user] cm", "Echo from m3: cm"),
    ]


# --- chat completions helpers and embeddings --------------------------------------------------


def check_chat_helpers_trace(body: Any) -> None:
    steps = llm_steps(body)
    assert [(s["description"], tokens(s)) for s in steps] == [
        ("openai/gpt-4o-2024-08-06", (2, 5)),  # parse
        ("openai/gpt-4o-mini", (3, 6)),  # stream(), include_usage
        ("openai/gpt-4o-mini", (None, None)),  # stream() without usage: none reported
        ("openai/text-embedding-3-small", (3, None)),  # prompt tokens only
    ]
    usage = body["llm_usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        8,
        11,
        19,
    )
    assert usage["api_calls_count"] == 4


def test_chat_helpers_and_embeddings_sync(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(oai(fake))
    before = provider_calls(fake, "/chat/completions")

    @client.trace("chat helpers")
    def run() -> List[Any]:
        parsed = llm.chat.completions.parse(
            model="gpt-4o", messages=user("Paris now"), response_format=Weather
        )
        with llm.chat.completions.stream(
            model="gpt-4o-mini",
            messages=user("stream via helper"),
            stream_options={"include_usage": True},
        ) as s:
            streamed = s.get_final_completion().choices[0].message.content
        with llm.chat.completions.stream(model="gpt-4o-mini", messages=user("no usage")) as s:
            s.until_done()
        vectors = llm.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
        return [parsed.choices[0].message.parsed, streamed, len(vectors.data)]

    assert run() == [
        Weather(city="Paris now", temp=2),
        "Echo from gpt-4o-mini: stream via helper",
        2,
    ]
    assert provider_calls(fake, "/chat/completions") - before == 3
    check_chat_helpers_trace(only_trace(capture_server))


def test_chat_helpers_and_embeddings_async(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    llm = watch(oai(fake, openai.AsyncOpenAI))

    @async_client.trace("async chat helpers")
    async def run() -> None:
        await llm.chat.completions.parse(
            model="gpt-4o", messages=user("Paris now"), response_format=Weather
        )
        async with llm.chat.completions.stream(
            model="gpt-4o-mini",
            messages=user("stream via helper"),
            stream_options={"include_usage": True},
        ) as s:
            await s.get_final_completion()
        async with llm.chat.completions.stream(model="gpt-4o-mini", messages=user("no usage")) as s:
            await s.until_done()
        await llm.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])

    asyncio.run(run())
    check_chat_helpers_trace(only_trace(capture_server))


def test_embeddings_capture_content(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    llm = watch(oai(fake), capture_content=True)

    @client.trace("embed")
    def run() -> None:
        llm.embeddings.create(model="e", input="one text")
        llm.embeddings.create(model="e", input=["a", "b", "c"])
        llm.embeddings.create(model="e", input=[1, 2, 3])  # token ids: no preview

    run()
    steps = llm_steps(only_trace(capture_server))
    assert [s.get("input_preview") for s in steps] == ["one text", "b\nc", None]
    assert [tokens(s) for s in steps] == [(2, None), (3, None), (3, None)]
    assert all("output_preview" not in s for s in steps)


# --- tool calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize("capture", [False, True])
def test_tool_calls_in_step_metadata(
    capture: bool, fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(oai(fake), capture_content=capture)

    @client.trace("tools")
    def run() -> None:
        llm.chat.completions.create(model="c1", messages=user(WEATHER_PROMPT), tools=CHAT_TOOLS)
        for _ in llm.chat.completions.create(
            model="c2", messages=user(WEATHER_PROMPT), tools=CHAT_TOOLS, stream=True
        ):
            pass
        llm.responses.create(model="r1", input=WEATHER_PROMPT, tools=RESPONSES_TOOLS)
        with llm.responses.stream(model="r2", input=WEATHER_PROMPT, tools=RESPONSES_TOOLS) as s:
            s.until_done()
        llm.chat.completions.create(  # the answer after the tool result: no tool call
            model="c3",
            messages=[*user(WEATHER_PROMPT), {"role": "tool", "content": "sunny"}],
            tools=CHAT_TOOLS,
        )

    run()
    steps = llm_steps(only_trace(capture_server))
    call = (
        {"name": "get_weather", "arguments": WEATHER_ARGS} if capture else {"name": "get_weather"}
    )
    assert [s.get("metadata") for s in steps] == [{"tool_calls": [call]}] * 4 + [None]
    assert tokens(steps[0]) == (4, 9)  # the arguments are the completion
    if capture:
        assert "output_preview" not in steps[0]  # no text, only a tool call
        assert steps[4]["output_preview"] == "Echo from c3: sunny"


def test_tool_call_arguments_preview_is_bounded(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(oai(fake), capture_content=True)
    long_prompt = "x" * 600

    @client.trace("long tool call")
    def run() -> None:
        llm.responses.create(model="r", input=long_prompt, tools=RESPONSES_TOOLS)

    run()
    (step,) = llm_steps(only_trace(capture_server))
    (call,) = step["metadata"]["tool_calls"]
    assert call["arguments"] == '{"city": "' + "x" * 490 + "..."


# --- token details ----------------------------------------------------------------------------


def details(cached: int = 0, reasoning: int = 0, written: int = 0) -> Any:
    return {
        "x-fake-cached-tokens": str(cached),
        "x-fake-reasoning-tokens": str(reasoning),
        "x-fake-cache-write-tokens": str(written),
    }


def test_cached_and_reasoning_tokens(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    llm = watch(oai(fake))

    @client.trace("details")
    def run() -> None:
        llm.responses.create(model="r", input="a b c d", extra_headers=details(3, 7, 2))
        llm.chat.completions.create(model="c", messages=user("a b"), extra_headers=details(1))
        llm.chat.completions.create(model="c", messages=USER)  # none: no metadata
        for _ in llm.chat.completions.create(
            model="c",
            messages=user("a b c"),
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=details(2, 5),
        ):
            pass
        with llm.responses.stream(model="r", input="a", extra_headers=details(0, 4)) as s:
            s.until_done()

    run()
    body = only_trace(capture_server)
    assert [s.get("metadata") for s in llm_steps(body)] == [
        {"cached_tokens": 3, "cache_write_tokens": 2, "reasoning_tokens": 7},
        {"cached_tokens": 1},
        None,
        {"cached_tokens": 2, "reasoning_tokens": 5},
        {"reasoning_tokens": 4},
    ]
    usage = body["llm_usage"]
    assert (usage["cached_tokens"], usage["cache_write_tokens"], usage["reasoning_tokens"]) == (
        6,
        2,
        16,
    )
    assert list(usage)[-4:] == ["calls", "cached_tokens", "cache_write_tokens", "reasoning_tokens"]


# --- errors -------------------------------------------------------------------------------------


def test_errors_recorded_and_reraised(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    llm = watch(oai(fake))
    raised: List[str] = []

    @client.trace("errors")
    def run() -> None:
        for call in (
            lambda: llm.responses.create(model="error-500", input="x"),
            lambda: llm.responses.create(model="error-400", input="x", stream=True),
            lambda: llm.responses.parse(model="error-503", input="x", text_format=Weather),
            lambda: llm.chat.completions.parse(
                model="error-422", messages=user("x"), response_format=Weather
            ),
            lambda: llm.embeddings.create(model="error-429", input="x"),
            lambda: list(llm.responses.create(model="midstream-drop", input="a b c", stream=True)),
        ):
            try:
                call()
            except openai.APIError as exc:
                raised.append(type(exc).__name__)
        with llm.responses.stream(model="midstream-error", input="a b c") as s:
            events = [e.type for e in s]  # the API's error event: yielded, not raised
        assert events[-1] == "error"

    run()
    expected = [
        "InternalServerError",
        "BadRequestError",
        "InternalServerError",
        "UnprocessableEntityError",
        "RateLimitError",
        "APIConnectionError",
    ]
    assert raised == expected
    steps = llm_steps(only_trace(capture_server))
    assert [s["error"]["error_type"] for s in steps] == [*expected, "server_error"]
    assert "fake 500 for error-500" in steps[0]["error"]["message"]
    assert steps[-1]["error"]["message"] == "fake mid-stream failure"
    assert all(isinstance(s["llm_call"]["latency_ms"], int) for s in steps)


# --- abandoned streams ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["break", "gc", "helper"])
def test_abandoned_responses_stream_recorded_once(
    how: str, fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(oai(fake), capture_content=True)
    seen: List[Any] = []

    @client.trace("abandon")
    def run() -> None:
        from infinium.integrations import get_current_trace_context

        if how == "helper":
            with llm.responses.stream(model="long-model", input="a b") as s:
                for i, _ in enumerate(s):
                    if i == 6:
                        break
        else:
            stream = llm.responses.create(model="long-model", input="a b", stream=True)
            for i, _ in enumerate(stream):
                if i == 6:
                    break
            if how == "gc":
                del stream
                gc.collect()
        ctx = get_current_trace_context()
        assert ctx is not None
        (call,) = ctx.calls
        seen.append(call.latency_ns)

    run()
    (step,) = llm_steps(only_trace(capture_server))
    # created, in_progress, item added, part added, then three text deltas
    assert step["output_preview"] == "Echo from long-model: "
    assert isinstance(step["llm_call"]["latency_ms"], int)
    assert tokens(step) == (None, None)  # the stream ended before its usage
    if how == "gc":
        assert seen[0] is not None  # finalised when the stream was collected


# --- outside a trace, class-level instrumentation, subclasses --------------------------------


def test_untraced_calls_pass_straight_through(fake: FakeProvider, capture_server: Any) -> None:
    llm = watch(oai(fake))
    stream = llm.responses.create(model="m", input="hi", stream=True)
    assert type(stream) is openai.Stream  # the package's own object, not a wrapper
    list(stream)
    with llm.responses.stream(model="m", input="hi") as s:
        assert type(s._raw_stream) is openai.Stream
        s.until_done()
    assert llm.responses.parse(model="m", input="Paris", text_format=Weather).output_parsed
    assert llm.embeddings.create(model="e", input="x").usage.prompt_tokens == 1
    with llm.chat.completions.stream(model="m", messages=user("x")) as s:
        s.until_done()
    llm.chat.completions.parse(model="m", messages=user("x"), response_format=Weather)
    assert received(capture_server) == []


def test_instrumentor_covers_the_new_entry_points(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    from openai.resources.chat.completions import Completions
    from openai.resources.embeddings import Embeddings
    from openai.resources.responses import AsyncResponses, Responses

    originals = (Responses.create, Responses.parse, AsyncResponses.create, Embeddings.create)
    parse = Completions.parse
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    try:
        llm = watch(oai(fake))  # instance patch on top: still one record per call

        @client.trace("instrumented")
        def run() -> None:
            llm.responses.create(model="a", input="x")
            with llm.responses.stream(model="b", input="x") as s:
                s.until_done()
            llm.responses.parse(model="c", input="x", text_format=Weather)
            llm.chat.completions.parse(model="d", messages=user("x"), response_format=Weather)
            with llm.chat.completions.stream(model="e", messages=user("x")) as s:
                s.until_done()
            llm.embeddings.create(model="f", input="x")

        run()
    finally:
        instrumentor.uninstrument()
    assert (Responses.create, Responses.parse, AsyncResponses.create, Embeddings.create) == (
        originals
    )
    assert Completions.parse is parse
    steps = llm_steps(only_trace(capture_server))
    assert [s["description"] for s in steps] == [f"openai/{m}" for m in "abcdef"]


def test_azure_subclass(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    llm = watch(
        openai.AzureOpenAI(
            azure_endpoint=fake.url, api_version="2024-10-21", api_key="x", max_retries=0
        )
    )

    @client.trace("azure")
    def run() -> None:
        llm.responses.create(model="gpt-4o", input="hi")
        llm.chat.completions.create(model="deployment", messages=user("hi"))
        llm.embeddings.create(model="embedding-deployment", input="hi")

    run()
    steps = llm_steps(only_trace(capture_server))
    assert [s["description"] for s in steps] == [
        "openai/gpt-4o-2024-08-06",
        "openai/deployment",
        "openai/embedding-deployment",
    ]


def test_capture_content_on_the_helpers(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(oai(fake), capture_content=True)

    @client.trace("helpers, captured")
    def run() -> None:
        llm.chat.completions.parse(model="p", messages=user("Paris now"), response_format=Weather)
        with llm.chat.completions.stream(model="s", messages=user("stream helper")) as s:
            s.until_done()
        llm.responses.parse(model="r", input="Paris now", text_format=Weather)

    run()
    steps = llm_steps(only_trace(capture_server))
    assert [(s["input_preview"], s["output_preview"]) for s in steps] == [
        ("[user] Paris now", '{"city": "Paris now", "temp": 2}'),
        ("[user] stream helper", "Echo from s: stream helper"),
        ("[user] Paris now", '{"city": "Paris now", "temp": 2}'),
    ]


def test_abandoned_async_responses_stream_recorded_once(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    llm = watch(oai(fake, openai.AsyncOpenAI), capture_content=True)

    @async_client.trace("async abandon")
    async def run() -> None:
        stream = await llm.responses.create(model="long-model", input="a b", stream=True)
        async for event in stream:
            if event.type == "response.output_text.delta":
                break  # after the first delta
        async with llm.responses.stream(model="long-model", input="a b") as s:
            async for event in s:
                if event.type == "response.output_text.delta":
                    break

    asyncio.run(run())
    steps = llm_steps(only_trace(capture_server))
    assert [s["output_preview"] for s in steps] == ["Echo ", "Echo "]
    assert all(isinstance(s["llm_call"]["latency_ms"], int) for s in steps)
