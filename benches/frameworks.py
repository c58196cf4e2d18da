#!/usr/bin/env python3
"""Overhead of the framework adapters, in microseconds per span.

Usage:
    python benches/frameworks.py            # 200 traces of 20 spans per figure, best of 7
    python benches/frameworks.py --quick    # smoke run (a few seconds)

For each adapter, the same traces (one root, then 10 model calls and 10 tool
calls under it) are made with the adapter installed and without it; the
overhead per span is the difference divided by the spans made, so it includes
each trace's build and its hand-over to the client (a ``background=True``
``InfiniumClient`` pointed at a local API: queueing, not the network), spread
over its 21 spans (the local API in sink mode takes them as fast as it can).
Times are the calling thread's CPU time (``time.thread_time_ns``), steadier than
wall time on a shared machine. "Without" has a processor that does nothing where the
framework calls processors only when it has one (the Agents SDK, OpenTelemetry's
SDK copies every ended span for its processors). Each figure is the best of
``--repeat`` runs (the least disturbed by the other work on the machine).

* Agents SDK: ``agents.trace`` with ``generation_span`` / ``function_span``,
  processor ``InfiniumTracingProcessor`` vs a processor doing nothing.
* LangChain: the handler's callbacks called as LangChain's callback manager calls
  them (chain start, chat-model start + ``on_llm_end`` with a real ``LLMResult``,
  tool start / end, chain end) vs the same loop with no handler.
* OpenTelemetry: an SDK ``TracerProvider`` with GenAI semantic-convention spans,
  ``InfiniumSpanProcessor`` vs a span processor doing nothing.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any, Callable, Dict, List

from infinium.testing import LocalServer

MODELS = 10  # model-call spans per trace
TOOLS = 10  # tool spans per trace
SPANS = 1 + MODELS + TOOLS  # and the root


def best_ns(run: Callable[[int], None], traces: int, repeat: int) -> float:
    """The least CPU time of the calling thread over ``repeat`` runs of ``traces``
    traces, in ns per trace: what the framework's own thread spends, whatever the
    other processes on the machine do (the background export's threads are not
    counted: they are not in the framework's code path)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time_ns()
        run(traces)
        best = min(best, (time.thread_time_ns() - t0) / traces)
    return best


def agents_runs(client: Any, capture: bool) -> Dict[str, Callable[[int], None]]:
    import agents
    from agents.tracing import function_span, generation_span

    from infinium.integrations.openai_agents import InfiniumTracingProcessor

    processor = InfiniumTracingProcessor(client, capture_content=capture)
    usage = {"input_tokens": 12, "output_tokens": 7}
    messages = [{"role": "user", "content": "hello there"}]

    def traces(n: int) -> None:
        for _ in range(n):
            with agents.trace("bench"):
                for _ in range(MODELS):
                    with generation_span(
                        input=messages, output=messages, model="gpt-4o", usage=usage
                    ):
                        pass
                for _ in range(TOOLS):
                    with function_span("add", input='{"a": 1}', output="2"):
                        pass

    class Nothing(agents.TracingProcessor):  # type: ignore[misc]
        def on_trace_start(self, trace: Any) -> None: ...
        def on_trace_end(self, trace: Any) -> None: ...
        def on_span_start(self, span: Any) -> None: ...
        def on_span_end(self, span: Any) -> None: ...
        def shutdown(self) -> None: ...
        def force_flush(self) -> None: ...

    def without(n: int) -> None:
        agents.set_trace_processors([Nothing()])
        traces(n)

    def with_adapter(n: int) -> None:
        agents.set_trace_processors([processor])
        traces(n)
        agents.set_trace_processors([])

    return {"without": without, "with": with_adapter}


def langchain_runs(client: Any, capture: bool) -> Dict[str, Callable[[int], None]]:
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    from infinium.integrations.langchain import InfiniumCallbackHandler

    handler = InfiniumCallbackHandler(client, capture_content=capture)
    messages = [[HumanMessage("hello there")]]
    reply = AIMessage(
        "Echo",
        usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
        response_metadata={"model_name": "gpt-4o", "model_provider": "openai"},
    )
    result = LLMResult(generations=[[ChatGeneration(message=reply)]])
    params = {"model": "gpt-4o", "temperature": 0.2}
    meta = {"ls_provider": "openai"}

    def traces(n: int, handlers: List[Any]) -> None:
        for _ in range(n):
            root = uuid.uuid4()
            for h in handlers:
                h.on_chain_start(None, {"messages": []}, run_id=root, name="LangGraph")
            for _ in range(MODELS):
                run = uuid.uuid4()
                for h in handlers:
                    h.on_chat_model_start(
                        None,
                        messages,
                        run_id=run,
                        parent_run_id=root,
                        invocation_params=params,
                        metadata=meta,
                    )
                    h.on_llm_end(result, run_id=run, parent_run_id=root)
            for _ in range(TOOLS):
                run = uuid.uuid4()
                for h in handlers:
                    h.on_tool_start(
                        {"name": "add"}, "{'a': 1}", run_id=run, parent_run_id=root, name="add"
                    )
                    h.on_tool_end("2", run_id=run, parent_run_id=root)
            for h in handlers:
                h.on_chain_end({"messages": []}, run_id=root)

    return {"without": lambda n: traces(n, []), "with": lambda n: traces(n, [handler])}


def otel_runs(client: Any, capture: bool) -> Dict[str, Callable[[int], None]]:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from infinium.integrations.otel import InfiniumSpanProcessor

    plain = TracerProvider()
    plain.add_span_processor(SpanProcessor())  # a pipeline has one (an exporter)
    adapted = TracerProvider()
    adapted.add_span_processor(InfiniumSpanProcessor(client, capture_content=capture))
    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
    }
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add"}

    def traces(provider: Any, n: int) -> None:
        tracer = provider.get_tracer("bench")
        for _ in range(n):
            with tracer.start_as_current_span("agent run"):
                for _ in range(MODELS):
                    with tracer.start_as_current_span("chat gpt-4o", attributes=chat):
                        pass
                for _ in range(TOOLS):
                    with tracer.start_as_current_span("execute_tool add", attributes=tool):
                        pass

    return {"without": lambda n: traces(plain, n), "with": lambda n: traces(adapted, n)}


ADAPTERS = {
    "openai-agents (InfiniumTracingProcessor)": ("agents", agents_runs),
    "langchain (InfiniumCallbackHandler)": ("langchain_core", langchain_runs),
    "opentelemetry (InfiniumSpanProcessor)": ("opentelemetry.sdk", otel_runs),
}


def main() -> None:
    parser = argparse.ArgumentParser(description="framework adapters: overhead per span")
    parser.add_argument("--quick", action="store_true", help="smoke run: few traces")
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    traces, repeat = (20, 2) if args.quick else (args.traces, args.repeat)
    print(f"{traces} traces of {SPANS} spans per run, best of {repeat}; CPU µs per span")
    print(f"{'adapter':<44} {'content':>8} {'without':>9} {'with':>9} {'overhead':>9}")
    with LocalServer(sink=True) as api:
        client = api.client(background=True, max_queue_size=1_000_000)
        for label, (module, make) in ADAPTERS.items():
            try:
                __import__(module)
            except ImportError:
                print(f"{label:<44} skipped ({module} not installed)")
                continue
            for capture in (False, True):
                runs = make(client, capture)
                runs["with"](max(2, traces // 10))  # warm up both paths
                runs["without"](max(2, traces // 10))
                base = best_ns(runs["without"], traces, repeat) / SPANS / 1000
                adapted = best_ns(runs["with"], traces, repeat) / SPANS / 1000
                print(
                    f"{label:<44} {'on' if capture else 'off':>8} "
                    f"{base:>9.2f} {adapted:>9.2f} {adapted - base:>9.2f}"
                )
        client.close()


if __name__ == "__main__":
    main()
