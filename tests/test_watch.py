"""watch() and the instrumentors with the real openai / anthropic / google-genai SDKs
pointed at a local fake provider; assertions on the trace the local API received."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Any, Iterator, List

import pytest

from infinium.integrations import (
    AnthropicInstrumentor,
    GoogleInstrumentor,
    OpenAIInstrumentor,
    watch,
)

from .fake_provider import FakeProvider
from .watch_helpers import USER, anth, gem, llm_steps, oai, received

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as srv:
        yield srv


# --- OpenAI ---------------------------------------------------------------------------------


def test_openai_sync_json_and_stream(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    llm = watch(oai(fake))

    @client.trace("Research Agent")
    def research(q: str) -> str:
        r = llm.chat.completions.create(model="gpt-4o", messages=USER, temperature=0.3)
        stream = llm.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "stream three words"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        return r.choices[0].message.content + " | " + text

    out = research("q")
    assert out == "Echo from gpt-4o: hello there | Echo from gpt-4o: stream three words"
    (body,) = received(capture_server)
    steps = llm_steps(body)
    assert [(s["step_number"], s["description"]) for s in steps] == [
        (2, "openai/gpt-4o"),
        (3, "openai/gpt-4o"),
    ]
    first, second = steps
    assert first["llm_call"]["model"] == "gpt-4o"
    assert first["llm_call"]["provider"] == "openai"
    assert first["llm_call"]["prompt_tokens"] == 4  # "Be brief." + "hello there"
    assert first["llm_call"]["completion_tokens"] == 5
    assert first["llm_call"]["temperature"] == 0.3
    assert second["llm_call"]["prompt_tokens"] == 3 and second["llm_call"]["completion_tokens"] == 6
    for s in steps:
        assert isinstance(s["llm_call"]["latency_ms"], int)
        assert "input_preview" not in s and "output_preview" not in s  # capture_content off
    usage = body["llm_usage"]
    assert usage["model"] == "gpt-4o" and usage["provider"] == "openai"
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        7,
        11,
        18,
    )
    assert usage["api_calls_count"] == 2 and len(usage["calls"]) == 2


def test_openai_capture_content_and_stream_context_manager(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(oai(fake), capture_content=True)

    @client.trace("capture")
    def run() -> None:
        llm.chat.completions.create(model="gpt-4o", messages=USER)
        with llm.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "cm stream"}],
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            for _ in stream:
                pass

    run()
    (body,) = received(capture_server)
    a, b = llm_steps(body)
    assert a["input_preview"] == "[system] Be brief.\n[user] hello there"
    assert a["output_preview"] == "Echo from gpt-4o: hello there"
    assert b["input_preview"] == "[user] cm stream"
    assert b["output_preview"] == "Echo from gpt-4o-mini: cm stream"
    assert b["llm_call"]["completion_tokens"] == 5
    assert body["llm_usage"]["model"] == "multiple" and body["llm_usage"]["provider"] == "openai"


def test_openai_async_json_and_stream(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    llm = watch(oai(fake, openai.AsyncOpenAI), capture_content=True)

    @async_client.trace("async agent")
    async def run() -> str:
        r = await llm.chat.completions.create(model="gpt-4o", messages=USER)
        parts = []
        stream = await llm.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "async stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
        return r.choices[0].message.content + "".join(parts)

    asyncio.run(run())
    (body,) = received(capture_server)
    a, b = llm_steps(body)
    assert a["llm_call"]["prompt_tokens"] == 4
    assert b["llm_call"]["prompt_tokens"] == 2 and b["llm_call"]["completion_tokens"] == 5
    assert b["output_preview"] == "Echo from gpt-4o: async stream"
    assert body["llm_usage"]["api_calls_count"] == 2


def test_openai_error_recorded_and_reraised(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(oai(fake))

    @client.trace("errors")
    def run() -> None:
        llm.chat.completions.create(model="error-500", messages=USER)

    with pytest.raises(openai.InternalServerError):
        run()
    (body,) = received(capture_server)
    (step,) = llm_steps(body)
    assert step["description"] == "openai/error-500"
    assert step["error"]["error_type"] == "InternalServerError"
    assert "fake 500" in step["error"]["message"]
    assert isinstance(step["llm_call"]["latency_ms"], int)
    assert body["errors"][0]["error_type"] == "InternalServerError"


def test_stream_error_midway_recorded(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    llm = watch(oai(fake))

    @client.trace("midstream")
    def run() -> None:
        for _ in llm.chat.completions.create(model="midstream-error", messages=USER, stream=True):
            pass

    with pytest.raises(openai.APIError):
        run()
    (step,) = llm_steps(received(capture_server)[0])
    assert step["error"]["error_type"] == "APIError"


@pytest.mark.parametrize("how", ["break", "close", "gc", "context"])
def test_abandoned_stream_finalised_exactly_once(
    how: str, fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(oai(fake), capture_content=True)
    records: List[Any] = []

    @client.trace("abandon")
    def run() -> None:
        from infinium._context import get_current_trace_context

        stream = llm.chat.completions.create(model="long-model", messages=USER, stream=True)
        if how == "context":
            with stream:
                for i, _ in enumerate(stream):
                    if i == 2:
                        break
        else:
            for i, _ in enumerate(stream):
                if i == 2:
                    break
        if how == "close":
            stream.close()
        ctx = get_current_trace_context()
        assert ctx is not None
        records.append(ctx.calls[0])
        if how in ("gc", "close", "context"):
            del stream
            gc.collect()
            assert records[0].latency_ns is not None  # finalised before the trace ends
            records.append(records[0].latency_ns)

    run()
    (body,) = received(capture_server)
    (step,) = llm_steps(body)
    assert isinstance(step["llm_call"]["latency_ms"], int)
    assert step["output_preview"] == "Echo from "  # the three chunks read
    if len(records) == 2:
        assert records[0].latency_ns == records[1]  # not finalised a second time


def test_outside_trace_passes_through(fake: FakeProvider, capture_server: Any) -> None:
    llm = watch(oai(fake))
    r = llm.chat.completions.create(model="gpt-4o", messages=USER)
    assert r.usage.prompt_tokens == 4
    chunks = list(llm.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert type(chunks[0]).__name__ == "ChatCompletionChunk"
    assert received(capture_server) == []


def test_watch_idempotent_and_unknown_client(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    llm = oai(fake)
    watch(llm)
    patched = llm.chat.completions.create
    assert watch(llm, capture_content=True) is llm
    assert llm.chat.completions.create is patched

    class Other:
        pass

    other = Other()
    with caplog.at_level(logging.WARNING, logger="infinium.integrations"):
        assert watch(other) is other
    assert any("unrecognised client type" in r.getMessage() for r in caplog.records)


def test_xai_provider(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    # A base URL mentioning xai: still our fake server (path prefix ignored by routing).
    llm = watch(openai.OpenAI(base_url=fake.url + "/xai/v1", api_key="x", max_retries=0))

    @client.trace("grok")
    def run() -> None:
        llm.chat.completions.create(model="grok-2", messages=USER)

    run()
    (step,) = llm_steps(received(capture_server)[0])
    assert step["description"] == "xai/grok-2"


# --- Anthropic --------------------------------------------------------------------------------


def test_anthropic_sync_json_and_stream(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    llm = watch(anth(fake), capture_content=True)

    @client.trace("claude")
    def run() -> None:
        llm.messages.create(
            model="claude-3-5-sonnet", max_tokens=50, system="Be brief.", messages=USER[1:]
        )
        with llm.messages.create(
            model="claude-3-5-sonnet",
            max_tokens=50,
            messages=[{"role": "user", "content": "stream it"}],
            stream=True,
        ) as stream:
            for _ in stream:
                pass

    run()
    (body,) = received(capture_server)
    a, b = llm_steps(body)
    assert a["description"] == b["description"] == "anthropic/claude-3-5-sonnet"
    assert (a["llm_call"]["prompt_tokens"], a["llm_call"]["completion_tokens"]) == (4, 5)
    assert a["input_preview"] == "[system] Be brief.\n[user] hello there"
    assert a["output_preview"] == "Echo from claude-3-5-sonnet: hello there"
    assert (b["llm_call"]["prompt_tokens"], b["llm_call"]["completion_tokens"]) == (2, 5)
    assert b["output_preview"] == "Echo from claude-3-5-sonnet: stream it"
    assert body["llm_usage"]["model"] == "claude-3-5-sonnet"
    assert body["llm_usage"]["provider"] == "anthropic"


def test_anthropic_async_stream_and_error(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    llm = watch(anth(fake, anthropic.AsyncAnthropic))

    @async_client.trace("async claude")
    async def run() -> None:
        stream = await llm.messages.create(
            model="claude-h", max_tokens=5, messages=USER[1:], stream=True
        )
        async for _ in stream:
            pass
        try:
            await llm.messages.create(model="error-529", max_tokens=5, messages=USER[1:])
        except anthropic.APIStatusError:
            pass

    asyncio.run(run())
    a, b = llm_steps(received(capture_server)[0])
    assert (a["llm_call"]["prompt_tokens"], a["llm_call"]["completion_tokens"]) == (2, 5)
    assert "output_preview" not in a
    assert b["description"] == "anthropic/error-529" and "error" in b


# --- Google -----------------------------------------------------------------------------------


def test_gemini_sync_async_and_streams(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    g = watch(gem(fake), capture_content=True)

    @async_client.trace("gemini")
    async def run() -> None:
        g.models.generate_content(
            model="gemini-2.0-flash", contents="hi gemini", config={"temperature": 0.5}
        )
        for _ in g.models.generate_content_stream(model="gemini-2.0-flash", contents="sync stream"):
            pass
        await g.aio.models.generate_content(model="gemini-pro", contents="async hi")
        stream = await g.aio.models.generate_content_stream(
            model="gemini-pro", contents="async stream now"
        )
        async for _ in stream:
            pass

    asyncio.run(run())
    (body,) = received(capture_server)
    steps = llm_steps(body)
    assert [s["description"] for s in steps] == [
        "google/gemini-2.0-flash",
        "google/gemini-2.0-flash",
        "google/gemini-pro",
        "google/gemini-pro",
    ]
    tokens = [(s["llm_call"]["prompt_tokens"], s["llm_call"]["completion_tokens"]) for s in steps]
    assert tokens == [(2, 5), (2, 5), (2, 5), (3, 6)]
    assert steps[0]["llm_call"]["temperature"] == 0.5
    assert steps[0]["input_preview"] == "hi gemini"
    assert steps[1]["output_preview"] == "Echo from gemini-2.0-flash: sync stream"
    assert steps[3]["output_preview"] == "Echo from gemini-pro: async stream now"
    assert body["llm_usage"]["provider"] == "google" and body["llm_usage"]["model"] == "multiple"


def test_mixed_providers_aggregate(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    o, a = watch(oai(fake)), watch(anth(fake))

    @client.trace("mixed")
    def run() -> None:
        o.chat.completions.create(model="gpt-4o", messages=USER)
        a.messages.create(model="claude", max_tokens=5, messages=USER[1:])

    run()
    usage = received(capture_server)[0]["llm_usage"]
    assert (usage["model"], usage["provider"]) == ("multiple", "multiple")
    assert usage["prompt_tokens"] == 6 and usage["completion_tokens"] == 10
    assert usage["total_tokens"] == 16 and usage["api_calls_count"] == 2
    assert [c["model"] for c in usage["calls"]] == ["gpt-4o", "claude"]


# --- instrumentors ----------------------------------------------------------------------------


def test_instrumentors_patch_and_restore(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    from anthropic.resources.messages import Messages
    from google.genai.models import Models
    from openai.resources.chat.completions import Completions

    originals = (Completions.create, Messages.create, Models.generate_content)
    instrumentors = [
        OpenAIInstrumentor(capture_content=True),
        AnthropicInstrumentor(),
        GoogleInstrumentor(),
    ]
    for inst in instrumentors:
        inst.instrument()
    try:
        OpenAIInstrumentor(capture_content=True).instrument()  # twice: still one layer
        o, a, g = oai(fake), anth(fake), gem(fake)
        watch(o)  # already instrumented at class level: no double recording

        @client.trace("instrumented")
        def run() -> None:
            o.chat.completions.create(model="gpt-4o", messages=USER)
            a.messages.create(model="claude", max_tokens=5, messages=USER[1:])
            g.models.generate_content(model="gemini-2.0-flash", contents="hi")

        run()
    finally:
        for inst in instrumentors:
            inst.uninstrument()
    assert (Completions.create, Messages.create, Models.generate_content) == originals
    steps = llm_steps(received(capture_server)[0])
    assert [s["description"] for s in steps] == [
        "openai/gpt-4o",
        "anthropic/claude",
        "google/gemini-2.0-flash",
    ]
    assert steps[0]["output_preview"] == "Echo from gpt-4o: hello there"
    assert steps[2]["llm_call"]["prompt_tokens"] == 1


def test_import_does_not_load_provider_packages() -> None:
    import subprocess

    code = (
        "import sys, infinium, infinium.integrations, infinium.integrations.otel;"
        "bad=[m for m in sys.modules if m.split('.')[0] in "
        "('openai','anthropic','opentelemetry') or m.startswith('google.genai')];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_llm_calls_inside_traced_generators_are_captured(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    """A decorated generator captures the LLM calls its body makes, across resumes (a
    stream relayed chunk by chunk); a call the consumer makes between items is not
    part of that trace."""
    llm = watch(oai(fake), capture_content=True)

    @client.trace("Relay")
    def relay(q: str) -> Any:
        r = llm.chat.completions.create(model="gpt-4o", messages=USER)
        yield r.choices[0].message.content
        stream = llm.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": q}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
        return "relayed"

    got = []
    for i, part in enumerate(relay("relay three words")):
        got.append(part)
        if i == 0:  # the consumer's own call, outside the generator's trace
            llm.chat.completions.create(model="gpt-4.1", messages=USER)
    assert got[0] == "Echo from gpt-4o: hello there"
    assert "".join(got[1:]) == "Echo from gpt-4o-mini: relay three words"
    (body,) = received(capture_server)
    assert body["output_summary"] == "'relayed'"
    steps = llm_steps(body)
    assert [s["description"] for s in steps] == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    assert steps[1]["output_preview"] == "Echo from gpt-4o-mini: relay three words"
    assert steps[1]["llm_call"]["completion_tokens"] == 6  # the stream's usage chunk
    assert body["llm_usage"]["api_calls_count"] == 2


def test_llm_calls_inside_traced_async_generators_are_captured(
    fake: FakeProvider, capture_server: Any, async_client: Any
) -> None:
    llm = watch(oai(fake, openai.AsyncOpenAI))

    @async_client.trace("Async relay")
    async def relay(n: int) -> Any:
        for i in range(n):
            r = await llm.chat.completions.create(
                model=f"gpt-4o-{i}", messages=[{"role": "user", "content": f"turn {i}"}]
            )
            yield r.choices[0].message.content

    async def run() -> List[str]:
        gen = relay(5)
        got = []
        async for part in gen:
            got.append(part)
            await llm.chat.completions.create(model="consumer", messages=USER)
            if len(got) == 2:
                break  # async for does not close it: aclose() does
        assert received(capture_server) == []
        await gen.aclose()
        return got

    got = asyncio.run(run())
    assert got == ["Echo from gpt-4o-0: turn 0", "Echo from gpt-4o-1: turn 1"]
    (body,) = received(capture_server)
    assert [s["description"] for s in llm_steps(body)] == ["openai/gpt-4o-0", "openai/gpt-4o-1"]
    assert "errors" not in body and "output_summary" not in body
