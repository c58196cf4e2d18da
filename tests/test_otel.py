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
