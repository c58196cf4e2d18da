"""One framework run becomes one Infinium trace with steps.

Runs a small agent with one tool on the framework you pick and prints the trace
the Infinium API received:

* ``agents``      the OpenAI Agents SDK, through ``InfiniumTracingProcessor``;
* ``langgraph``   a LangGraph agent (langchain's ``create_agent``), through
  ``InfiniumCallbackHandler``;
* ``pydantic-ai`` a PydanticAI agent's OpenTelemetry spans, through
  ``InfiniumSpanProcessor``.

::

    pip install 'infinium-rs[integrations]'
    OPENAI_API_KEY=sk-... python examples/framework_trace.py --framework agents

The model is OpenAI's ``gpt-4o-mini`` unless ``OPENAI_BASE_URL`` / ``MODEL`` say
otherwise (any OpenAI-compatible server; the test suite points it at its fake
provider). The trace goes to a local Infinium API started here
(``infinium.testing.LocalServer``), or to ``INFINIUM_BASE_URL`` with
``INFINIUM_AGENT_ID`` / ``INFINIUM_AGENT_SECRET`` when those are set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, Dict, List

from infinium import InfiniumClient
from infinium.testing import LocalServer

MODEL = os.environ.get("MODEL", "gpt-4o-mini")
QUESTION = "What is two plus two? Use the add tool."


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def run_agents(client: InfiniumClient) -> None:
    import agents
    from openai import AsyncOpenAI

    from infinium.integrations.openai_agents import InfiniumTracingProcessor

    processor = InfiniumTracingProcessor(client, capture_content=True)
    agents.set_trace_processors([processor])  # replaces OpenAI's own exporter
    model = agents.OpenAIResponsesModel(MODEL, AsyncOpenAI())
    agent = agents.Agent(
        name="calculator", instructions="Be brief.", model=model, tools=[agents.function_tool(add)]
    )
    result = agents.Runner.run_sync(agent, QUESTION)
    print("answer:", result.final_output)
    processor.flush(30)


def run_langgraph(client: InfiniumClient) -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    from infinium.integrations.langchain import InfiniumCallbackHandler

    handler = InfiniumCallbackHandler(client, capture_content=True)
    graph = create_agent(ChatOpenAI(model=MODEL), [tool(add)])
    result = graph.invoke({"messages": [("user", QUESTION)]}, config={"callbacks": [handler]})
    print("answer:", result["messages"][-1].content)
    handler.flush(30)


def run_pydantic_ai(client: InfiniumClient) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from pydantic_ai import Agent, InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel

    from infinium.integrations.otel import InfiniumSpanProcessor

    processor = InfiniumSpanProcessor(client, capture_content=True)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    Agent.instrument_all(InstrumentationSettings(tracer_provider=provider))
    agent = Agent(OpenAIChatModel(MODEL), name="calculator", tools=[add])
    result = asyncio.run(agent.run(QUESTION))
    print("answer:", result.output)
    processor.force_flush()


RUNS = {"agents": run_agents, "langgraph": run_langgraph, "pydantic-ai": run_pydantic_ai}


def show(trace: Dict[str, Any]) -> None:
    print(f"trace {trace['name']!r}: {len(trace.get('steps') or [])} steps")
    for step in trace.get("steps") or []:
        call = step.get("llm_call") or {}
        tokens = (
            f"  {call.get('prompt_tokens')} in / {call.get('completion_tokens')} out"
            if call
            else ""
        )
        error = f"  error: {step['error']['message']}" if step.get("error") else ""
        print(f"  {step['step_number']}. {step['action']:<14} {step['description']}{tokens}{error}")
    usage = trace.get("llm_usage") or {}
    print(f"tokens: {usage.get('prompt_tokens')} in / {usage.get('completion_tokens')} out")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=sorted(RUNS), default="agents")
    parser.add_argument("--json", action="store_true", help="also print the trace as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENAI_API_KEY", "not-needed-by-a-local-server")
    if os.environ.get("INFINIUM_BASE_URL"):
        with InfiniumClient() as client:
            RUNS[args.framework](client)
        print("sent to", os.environ["INFINIUM_BASE_URL"])
        return 0
    with LocalServer() as api, api.client() as client:
        RUNS[args.framework](client)
        traces = api.traces()
    for trace in traces:
        show(trace)
        if args.json:
            print(json.dumps(trace))
    return 0 if len(traces) == 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
