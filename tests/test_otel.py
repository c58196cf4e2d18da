"""InfiniumOTelExporter: a span per trace with a child span per LLM call."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from infinium import trace_agent
from infinium._context import CapturedLlmCall, CapturedPromptFetch, TraceContext
from infinium.integrations.otel import InfiniumOTelExporter

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode


@pytest.fixture
def spans() -> Any:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def test_export_trace_span_tree(spans: Any) -> None:
    provider, memory = spans
    exporter = InfiniumOTelExporter(service_name="svc", tracer_provider=provider)
    assert exporter.enabled
    ctx = TraceContext()
    ctx.calls.append(
        CapturedLlmCall(
            "openai",
            "gpt-4o",
            10,
            5,
            0.2,
            latency_ns=3_000_000,
            start_time_ns=1_700_000_000 * 10**9,
        )
    )
    ctx.calls.append(
        CapturedLlmCall("anthropic", "claude", error_type="APIError", error_message="x")
    )
    ctx.prompts.append(CapturedPromptFetch("pid", "greet", 2))
    exporter.export_trace("My Agent", 1.25, ctx)
    finished = {s.name: s for s in memory.get_finished_spans()}
    assert set(finished) == {"My Agent", "llm.openai.0", "llm.anthropic.1"}
    root = finished["My Agent"]
    assert root.attributes["infinium.service"] == "svc"
    assert root.attributes["infinium.llm_call_count"] == 2
    assert root.attributes["llm.total_prompt_tokens"] == 10
    assert root.events[0].name == "prompt_studio.fetch"
    child = finished["llm.openai.0"]
    assert child.parent is not None and child.parent.span_id == root.context.span_id
    assert child.attributes["llm.model"] == "gpt-4o"
    assert child.attributes["llm.latency_ms"] == 3.0
    assert child.end_time - child.start_time == 3_000_000
    assert finished["llm.anthropic.1"].status.status_code == StatusCode.ERROR
    assert root.end_time - root.start_time == 1_250_000_000


def test_installed_exporter_sees_decorated_calls(spans: Any) -> None:
    provider, memory = spans
    exporter = InfiniumOTelExporter(tracer_provider=provider).install()
    try:

        @trace_agent("decorated", auto_send=False)
        def agent() -> int:
            from infinium._context import get_current_trace_context

            ctx = get_current_trace_context()
            assert ctx is not None
            ctx.calls.append(CapturedLlmCall("openai", "gpt-4o", 1, 2, latency_ns=10**6))
            return 1

        agent()
    finally:
        exporter.uninstall()
    agent()  # uninstalled: no more spans
    names = [s.name for s in memory.get_finished_spans()]
    assert sorted(names) == ["decorated", "llm.openai.0"]


def test_without_opentelemetry_is_a_noop_with_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with caplog.at_level(logging.WARNING, logger="infinium.integrations.otel"):
        exporter = InfiniumOTelExporter()
    assert not exporter.enabled
    assert any("opentelemetry-api not installed" in r.getMessage() for r in caplog.records)
    exporter.export_trace("x", 1.0, TraceContext())  # no error, nothing emitted


# ---------------------------------------------------------------------------
# InfiniumSpanProcessor: OTel spans -> Infinium traces (received by the local API)
# ---------------------------------------------------------------------------

import asyncio  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
from typing import Dict, Iterator, List, Optional, Tuple  # noqa: E402

from opentelemetry.trace import (  # noqa: E402
    NonRecordingSpan,
    SpanContext,
    Status,
    TraceFlags,
    set_span_in_context,
)

from infinium.integrations.otel import InfiniumSpanProcessor  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
pytest.register_assert_rewrite("integrations_support")

from integrations_support import actions, token_sums, tool_steps, usage_totals  # noqa: E402

pytest_plugins = ["integrations_support"]

KIND = "openinference.span.kind"


@pytest.fixture
def pipeline(api: Any) -> Iterator[Tuple[TracerProvider, InfiniumSpanProcessor]]:
    """A tracer provider whose spans go to an InfiniumSpanProcessor (content on)."""
    processor = InfiniumSpanProcessor(api.client(), capture_content=True)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    yield provider, processor
    provider.shutdown()


def received(api: Any, processor: InfiniumSpanProcessor) -> List[Dict[str, Any]]:
    assert processor.force_flush()
    return api.traces()


def chat_span(tracer: Any, model: str, prompt: int, completion: int, **attrs: Any) -> None:
    """A GenAI semantic-convention model-call span, ended at once."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": prompt,
        "gen_ai.usage.output_tokens": completion,
        **attrs,
    }
    with tracer.start_as_current_span(f"chat {model}", attributes=attributes):
        pass


@pytest.fixture
def openai_v2(
    pipeline: Tuple[TracerProvider, InfiniumSpanProcessor], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """opentelemetry-instrumentation-openai-v2 recording (with content) into the pipeline."""
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    instrumentor = instrumentation.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline[0])
    yield instrumentor
    instrumentor.uninstrument()


def test_openai_v2_calls_under_a_root_span(
    api: Any, fake: Any, pipeline: Any, openai_v2: Any
) -> None:
    import openai

    provider, processor = pipeline
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "hello there"}]
    with provider.get_tracer("app").start_as_current_span("answer-questions"):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, temperature=0.5
        )
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        usages = [reply.usage] + [c.usage for c in stream if c.usage is not None]
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="error-500", messages=messages)
    (trace,) = received(api, processor)
    assert trace["name"] == "answer-questions"
    assert actions(trace) == [
        (1, "llm_inference", "openai/gpt-4o-mini"),
        (2, "llm_inference", "openai/gpt-4o-mini"),
        (3, "llm_inference", "openai/error-500"),
    ]
    assert token_sums(trace) == (4, 10)
    assert usage_totals(trace) == (
        sum(u.prompt_tokens for u in usages),
        sum(u.completion_tokens for u in usages),
        3,
    )
    first, _, failed = trace["steps"]
    assert first["llm_call"]["temperature"] == 0.5
    assert first["input_preview"] == "hello there"
    assert first["output_preview"] == "Echo from gpt-4o-mini: hello there"
    assert failed["error"]["error_type"] == "InternalServerError"
    assert "fake 500" in failed["error"]["message"]
    assert trace.get("errors") is None  # the caller caught it; the root span is fine
    assert trace["environment"]["framework"] == "opentelemetry.util.genai.handler"


def test_pydantic_ai_agent_with_a_tool_and_openai_v2_underneath(
    api: Any, fake: Any, pipeline: Any, openai_v2: Any
) -> None:
    """PydanticAI's model-call spans wrap openai-v2's spans of the same requests:
    each request is one step, its tokens counted once."""
    pydantic_ai = pytest.importorskip("pydantic_ai")
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider, processor = pipeline
    pydantic_ai.Agent.instrument_all(pydantic_ai.InstrumentationSettings(tracer_provider=provider))
    try:
        model = OpenAIChatModel(
            "gpt-4o-mini",
            provider=OpenAIProvider(base_url=fake.openai_base_url, api_key="x"),
        )
        agent = pydantic_ai.Agent(model, name="calculator")

        @agent.tool_plain
        def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        result = agent.run_sync("hello there")
    finally:
        pydantic_ai.Agent.instrument_all(False)
    assert result.output == "Echo from gpt-4o-mini: 4"
    (trace,) = received(api, processor)
    assert trace["name"] == "invoke_agent calculator"
    assert actions(trace) == [
        (1, "llm_inference", "openai/gpt-4o-mini"),
        (2, "tool_use", "add"),
        (3, "llm_inference", "openai/gpt-4o-mini"),
    ]
    usage = result.usage
    assert usage_totals(trace) == (usage.input_tokens, usage.output_tokens, 2) == (5, 8, 2)
    (tool,) = tool_steps(trace)
    assert tool["tool_call"]["input_summary"] == '{"a":2,"b":2}'
    assert tool["tool_call"]["output_summary"] == "4"
    assert trace["input_summary"] == "hello there"
    assert trace["output_summary"] == "Echo from gpt-4o-mini: 4"
    assert trace["environment"]["framework"] == "pydantic-ai"


def test_hand_made_openinference_spans(api: Any, pipeline: Any) -> None:
    semconv = pytest.importorskip("openinference.semconv.trace")
    attr = semconv.SpanAttributes
    kinds = semconv.OpenInferenceSpanKindValues
    provider, processor = pipeline
    tracer = provider.get_tracer("my-app", "1.2.3")

    def llm(prompt: int, completion: int, answer: str) -> None:
        attributes = {
            KIND: kinds.LLM.value,
            attr.LLM_MODEL_NAME: "gpt-4o",
            attr.LLM_PROVIDER: "openai",
            attr.LLM_TOKEN_COUNT_PROMPT: prompt,
            attr.LLM_TOKEN_COUNT_COMPLETION: completion,
            attr.INPUT_VALUE: "where is order 42?",
            attr.OUTPUT_VALUE: answer,
        }
        with tracer.start_as_current_span("ChatCompletion", attributes=attributes):
            pass

    root_attrs = {KIND: kinds.AGENT.value, attr.INPUT_VALUE: "where is order 42?"}
    with tracer.start_as_current_span("support-agent", attributes=root_attrs) as root:
        with tracer.start_as_current_span("plan", attributes={KIND: kinds.CHAIN.value}):
            llm(12, 7, "look it up")
        tool_attrs = {
            KIND: kinds.TOOL.value,
            attr.TOOL_NAME: "lookup_order",
            attr.INPUT_VALUE: '{"order_id": 42}',
        }
        with tracer.start_as_current_span("lookup", attributes=tool_attrs) as tool:
            tool.record_exception(KeyError("42"))
            tool.set_status(Status(StatusCode.ERROR, "order 42 not found"))
        retriever_attrs = {KIND: kinds.RETRIEVER.value, attr.INPUT_VALUE: "order 42"}
        with tracer.start_as_current_span("search-docs", attributes=retriever_attrs):
            pass
        llm(20, 9, "sorry, no such order")
        root.set_attribute(attr.OUTPUT_VALUE, "sorry, no such order")
    (trace,) = received(api, processor)
    assert trace["name"] == "support-agent"
    assert actions(trace) == [
        (1, "llm_inference", "openai/gpt-4o"),
        (2, "tool_use", "lookup_order"),
        (3, "retrieval", "search-docs"),
        (4, "llm_inference", "openai/gpt-4o"),
    ]
    assert usage_totals(trace) == (32, 16, 2)
    tool_step = trace["steps"][1]
    assert tool_step["error"]["error_type"] == "KeyError"
    assert tool_step["error"]["message"] == "order 42 not found"
    assert "KeyError" in tool_step["error"]["stack_trace"]
    assert tool_step["tool_call"]["input_summary"] == '{"order_id": 42}'
    assert trace["input_summary"] == "where is order 42?"
    assert trace["output_summary"] == "sorry, no such order"
    assert trace.get("errors") is None
    assert trace["environment"]["framework"] == "my-app"
    assert trace["environment"]["framework_version"] == "1.2.3"


def test_a_failed_root_span_is_the_trace_error(api: Any, pipeline: Any) -> None:
    provider, processor = pipeline
    tracer = provider.get_tracer("app")
    with pytest.raises(RuntimeError):
        with tracer.start_as_current_span("agent-run"):
            chat_span(tracer, "gpt-4o", 3, 4)
            raise RuntimeError("budget exhausted")
    (trace,) = received(api, processor)
    (error,) = trace["errors"]
    assert (error["error_type"], error["message"]) == ("RuntimeError", "budget exhausted")
    assert usage_totals(trace) == (3, 4, 1)


def test_content_is_left_out_unless_asked(api: Any) -> None:
    processor = InfiniumSpanProcessor(api.client())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("run", attributes={"input.value": "secret question"}):
        chat_span(tracer, "gpt-4o", 3, 4, **{"gen_ai.input.messages": '[{"role": "user"}]'})
    (trace,) = received(api, processor)
    (step,) = trace["steps"]
    assert "input_preview" not in step and "input_summary" not in trace
    assert step["llm_call"]["prompt_tokens"] == 3


def test_traces_without_genai_spans_are_not_sent(api: Any, pipeline: Any) -> None:
    provider, processor = pipeline
    tracer = provider.get_tracer("web")
    with tracer.start_as_current_span("GET /health"):
        with tracer.start_as_current_span("db.query"):
            pass
    assert received(api, processor) == []
    assert processor.stats()["traces_skipped"] == 1


def test_spans_under_a_remote_parent_are_roots(api: Any, pipeline: Any) -> None:
    """Two jobs continuing one remote trace here are two traces, not one (nor a
    second one taken for late spans of the first)."""
    provider, processor = pipeline
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    tracer = provider.get_tracer("app")
    context = set_span_in_context(NonRecordingSpan(remote))
    for job in ("job-1", "job-2"):
        with tracer.start_as_current_span(job, context=context):
            chat_span(tracer, "gpt-4o", 1, 2)
    first, second = received(api, processor)
    assert (first["name"], second["name"]) == ("job-1", "job-2")
    assert f"{0xABC:032x}" in first["description"]
    assert usage_totals(first) == usage_totals(second) == (1, 2, 1)
    assert processor.stats()["late_spans"] == 0


def test_bounds_spans_per_trace_open_traces_and_late_spans(
    api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    processor = InfiniumSpanProcessor(api.client(), max_open_traces=2, max_spans_per_trace=3)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("app")
    # Past max_spans_per_trace: the fourth model call and the root are not recorded.
    with tracer.start_as_current_span("busy"):
        for _ in range(4):
            chat_span(tracer, "gpt-4o", 1, 1)
    (busy,) = received(api, processor)
    assert usage_totals(busy) == (3, 3, 3)
    assert processor.stats()["spans_dropped"] == 2
    api.clear()
    # Three traces open at once with a cap of two: the oldest is dropped, with a warning.
    roots = [tracer.start_span(f"run-{i}") for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="infinium.integrations"):
        for root in roots:
            with tracer.start_as_current_span("x", context=set_span_in_context(root)):
                chat_span(tracer, "gpt-4o", 2, 2)
    assert any("open OpenTelemetry traces" in r.getMessage() for r in caplog.records)
    late = tracer.start_span("late", context=set_span_in_context(roots[2]))
    for root in roots:
        root.end()
    late.end()  # its root has ended: dropped, counted
    names = sorted(t["name"] for t in received(api, processor))
    assert names == ["run-1", "run-2"]
    stats = processor.stats()
    assert stats["traces_evicted"] == 1
    assert stats["late_spans"] == 1
    assert stats["open_traces"] == 0


def test_async_client_and_background_client(api: Any) -> None:
    for client in (api.async_client(), api.client(background=True)):
        processor = InfiniumSpanProcessor(client)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("app")

        async def run(tracer: Any) -> None:
            with tracer.start_as_current_span("in-a-loop"):
                chat_span(tracer, "gpt-4o", 1, 2)

        asyncio.run(run(tracer))
        assert processor.force_flush()
        if getattr(client, "background", False):
            assert client.flush(10)
            client.close()
        assert processor.stats()["traces_sent"] == 1
    assert [t["name"] for t in api.wait_for_traces(2)] == ["in-a-loop", "in-a-loop"]


def test_import_infinium_imports_no_framework() -> None:
    code = (
        "import sys, infinium, infinium.integrations.otel\n"
        "heavy = ('agents', 'langchain_core', 'langgraph', 'opentelemetry', 'pydantic_ai')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("attributes", "action"),
    [
        ({"gen_ai.operation.name": "text_completion"}, "llm_inference"),
        ({"gen_ai.operation.name": "generate_content"}, "llm_inference"),
        ({"gen_ai.operation.name": "embeddings"}, "llm_inference"),
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}, "tool_use"),
        ({KIND: "LLM"}, "llm_inference"),
        ({KIND: "EMBEDDING"}, "llm_inference"),
        ({KIND: "TOOL", "tool.name": "t"}, "tool_use"),
        ({KIND: "RETRIEVER"}, "retrieval"),
        ({KIND: "RERANKER"}, "rerank"),
        ({KIND: "GUARDRAIL"}, "guardrail"),
        ({KIND: "AGENT"}, None),
        ({KIND: "CHAIN"}, None),
        ({"gen_ai.operation.name": "invoke_agent"}, None),
    ],
)
def test_convention_to_step(
    api: Any, pipeline: Any, attributes: Dict[str, Any], action: Optional[str]
) -> None:
    provider, processor = pipeline
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("root", attributes={KIND: "AGENT"}):
        with tracer.start_as_current_span("inner", attributes=attributes):
            pass
    (trace,) = received(api, processor)
    assert [s["action"] for s in trace.get("steps") or []] == ([action] if action else [])
