"""InfiniumTracingProcessor: OpenAI Agents SDK runs against the fake provider become
traces received by the real local API."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Iterator, List

import pytest

pytest.importorskip("agents")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
pytest.register_assert_rewrite("integrations_support")

from agents import (  # noqa: E402
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
    set_trace_processors,
    trace,
)
from agents.exceptions import UserError  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from infinium.integrations.openai_agents import InfiniumTracingProcessor  # noqa: E402
from integrations_support import actions, token_sums, tool_steps, usage_totals  # noqa: E402

pytest_plugins = ["integrations_support"]


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@function_tool
def broken(query: str) -> str:
    """Look something up (always fails)."""
    raise ValueError("lookup backend down")


@function_tool(failure_error_function=None)
def fatal(query: str) -> str:
    """Look something up (fails, and the failure ends the run)."""
    raise ValueError("lookup backend down")


@pytest.fixture
def processors() -> Iterator[List[Any]]:
    """Installed processors (replacing OpenAI's exporter), removed afterwards."""
    installed: List[Any] = []
    yield installed
    for proc in installed:
        proc.flush(10)
    set_trace_processors([])


def received(api: Any, processors: List[Any]) -> List[Any]:
    """The traces the local API received once the processors' sends are done
    (the processor is called inside the run's event loop, so a blocking client's
    send went to the send thread)."""
    for proc in processors:
        assert proc.flush(10)
    return api.traces()


def install(processors: List[Any], client: Any, **kwargs: Any) -> InfiniumTracingProcessor:
    proc = InfiniumTracingProcessor(client, **kwargs)
    processors.append(proc)
    set_trace_processors([proc])
    return proc


def model(fake: Any, kind: str) -> Any:
    client = AsyncOpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)
    if kind == "responses":
        return OpenAIResponsesModel("gpt-4o-mini", client)
    return OpenAIChatCompletionsModel("gpt-4o-mini", client)


def agent(fake: Any, kind: str, tool: Any = add) -> Agent[Any]:
    # A base URL other than OpenAI's gets no streamed usage unless asked for.
    return Agent(
        name="calculator",
        instructions="be brief",
        model=model(fake, kind),
        tools=[tool],
        model_settings=ModelSettings(include_usage=True),
    )


def run(agent_: Agent[Any], how: str, text: str = "hello there", **kwargs: Any) -> Any:
    if how == "sync":
        return Runner.run_sync(agent_, text, **kwargs)

    async def streamed() -> Any:
        result = Runner.run_streamed(agent_, text, **kwargs)
        async for _ in result.stream_events():
            pass
        return result

    return asyncio.run(streamed())


@pytest.mark.parametrize("kind", ["responses", "chat"])
@pytest.mark.parametrize("how", ["sync", "streamed"])
def test_one_tool_run_becomes_one_trace(
    api: Any, fake: Any, processors: List[Any], kind: str, how: str
) -> None:
    proc = install(processors, api.client(), capture_content=True)
    result = run(agent(fake, kind), how, run_config=RunConfig(workflow_name="calc-flow"))
    assert result.final_output == "Echo from gpt-4o-mini: 4"
    (trace_,) = received(api, processors)
    assert trace_["name"] == "calc-flow"
    assert actions(trace_) == [
        (1, "llm_inference", "openai/gpt-4o-mini"),
        (2, "tool_use", "add"),
        (3, "llm_inference", "openai/gpt-4o-mini"),
    ]
    # The fake counts words: 2 + 2 prompt words, then also the tool result "4";
    # the tool call's arguments {"a": 2, "b": 2} are 4 words, the answer 4.
    assert token_sums(trace_) == (9, 8)
    # Task, turn and agent spans carry the same usage again: not counted.
    assert usage_totals(trace_) == (9, 8, 2)
    usage = result.context_wrapper.usage
    assert (usage.input_tokens, usage.output_tokens) == (9, 8)
    (tool,) = tool_steps(trace_)
    assert tool["tool_call"]["tool_name"] == "add"
    assert tool["tool_call"]["input_summary"] == '{"a": 2, "b": 2}'
    assert tool["tool_call"]["output_summary"] == "4"
    assert trace_["steps"][0]["input_preview"] == "hello there"
    assert trace_["steps"][0]["output_preview"] == 'add({"a": 2, "b": 2})'
    assert trace_["input_summary"] == "hello there"
    assert trace_["output_summary"] == "Echo from gpt-4o-mini: 4"
    assert trace_.get("errors") is None
    assert trace_["environment"]["framework"] == "openai-agents"
    assert proc.stats()["traces_sent"] == 1


@pytest.mark.parametrize("kind", ["responses", "chat"])
def test_tool_error_is_on_its_step_and_the_run_goes_on(
    api: Any, fake: Any, processors: List[Any], kind: str
) -> None:
    install(processors, api.client())
    result = run(agent(fake, kind, broken), "sync")
    assert "error occurred" in result.final_output
    (trace_,) = received(api, processors)
    (tool,) = tool_steps(trace_)
    assert tool["error"]["error_type"] == "ToolError"
    assert tool["error"]["message"].startswith("Error running tool (non-fatal)")
    assert tool["tool_call"]["error"] == tool["error"]
    assert trace_.get("errors") is None  # handled: the model got the error text
    assert [s["action"] for s in trace_["steps"]] == ["llm_inference", "tool_use", "llm_inference"]


@pytest.mark.parametrize("how", ["sync", "streamed"])
def test_a_tool_that_ends_the_run_is_the_trace_error(
    api: Any, fake: Any, processors: List[Any], how: str
) -> None:
    install(processors, api.client())
    with pytest.raises(UserError):
        run(agent(fake, "responses", fatal), how)
    (trace_,) = received(api, processors)
    assert actions(trace_) == [(1, "llm_inference", "openai/gpt-4o-mini"), (2, "tool_use", "fatal")]
    (tool,) = tool_steps(trace_)
    assert tool["error"]["message"] == "Error running tool: lookup backend down"
    (error,) = trace_["errors"]
    assert error["error_type"] == "AgentError"
    assert "lookup backend down" in error["message"]
    assert token_sums(trace_) == (4, 3)


def test_content_is_left_out_unless_asked(api: Any, fake: Any, processors: List[Any]) -> None:
    install(processors, api.client())
    run(agent(fake, "responses"), "sync")
    (trace_,) = received(api, processors)
    for step in trace_["steps"]:
        assert "input_preview" not in step and "output_preview" not in step
    (tool,) = tool_steps(trace_)
    assert set(tool["tool_call"]) == {"tool_name", "duration_ms"}
    assert "input_summary" not in trace_ and "output_summary" not in trace_
    assert token_sums(trace_) == (9, 8)


def test_runs_inside_one_agents_trace_are_one_infinium_trace(
    api: Any, fake: Any, processors: List[Any]
) -> None:
    install(processors, api.client())
    calc = agent(fake, "chat")
    with trace("two-questions"):
        run(calc, "sync")
        run(calc, "sync", "what is two plus two")
    run(calc, "sync")  # a run of its own: a trace of its own
    first, second = received(api, processors)
    assert first["name"] == "two-questions"
    one_run = ["llm_inference", "tool_use", "llm_inference"]
    assert [s["action"] for s in first["steps"]] == one_run * 2
    assert [s["step_number"] for s in first["steps"]] == list(range(1, 7))
    assert second["name"] == "Agent workflow"
    assert len(second["steps"]) == 3


def test_handoff_is_a_step_without_tokens(api: Any, fake: Any, processors: List[Any]) -> None:
    install(processors, api.client())
    specialist = Agent(name="specialist", instructions="answer", model=model(fake, "responses"))
    triage = Agent(
        name="triage",
        instructions="route",
        model=model(fake, "responses"),
        handoffs=[specialist],
    )
    result = Runner.run_sync(triage, "hello there")
    assert result.last_agent.name == "specialist"
    (trace_,) = received(api, processors)
    assert [s["action"] for s in trace_["steps"]] == ["llm_inference", "handoff", "llm_inference"]
    handoff = trace_["steps"][1]
    assert handoff["description"] == "triage -> specialist"
    assert handoff["metadata"] == {"from_agent": "triage", "to_agent": "specialist"}
    assert "llm_call" not in handoff
    assert usage_totals(trace_)[2] == 2


def test_async_client_from_a_running_loop(api: Any, fake: Any, processors: List[Any]) -> None:
    """The processor is called synchronously inside the run's event loop; an async
    client's send runs on the send thread, so it neither blocks that loop nor dies
    with it when ``asyncio.run`` closes it."""
    proc = install(processors, api.async_client())

    async def main() -> None:
        await Runner.run(agent(fake, "responses"), "hello there")

    asyncio.run(main())
    (trace_,) = received(api, processors)
    assert token_sums(trace_) == (9, 8)
    assert proc.stats()["traces_sent"] == 1


def test_background_client(api: Any, fake: Any, processors: List[Any]) -> None:
    client = api.client(background=True)
    proc = install(processors, client)
    run(agent(fake, "chat"), "streamed")
    assert client.flush(10)
    (trace_,) = api.wait_for_traces(1)
    assert usage_totals(trace_) == (9, 8, 2)
    assert proc.stats()["pending_sends"] == 0
    client.close()


def test_a_failing_send_is_counted_not_raised(fake: Any, processors: List[Any]) -> None:
    from infinium.testing import LocalServer

    with LocalServer() as srv:
        client = srv.client(agent_secret="wrong-secret-value", max_retries=0)
        proc = install(processors, client)
        result = run(agent(fake, "chat"), "sync")
        assert result.final_output == "Echo from gpt-4o-mini: 4"
        assert proc.flush(10)
        stats = proc.stats()
        assert stats["send_errors"] == 1 and stats["traces_sent"] == 0
        assert srv.traces() == []


def test_guardrail_is_a_step_and_its_tripwire_the_trace_error(
    api: Any, fake: Any, processors: List[Any]
) -> None:
    from agents import GuardrailFunctionOutput, InputGuardrailTripwireTriggered, input_guardrail

    @input_guardrail(run_in_parallel=False)  # checked before the model is called
    def no_secrets(context: Any, agent_: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered="secret" in str(text))

    install(processors, api.client())
    guarded = Agent(name="guarded", model=model(fake, "responses"), input_guardrails=[no_secrets])
    Runner.run_sync(guarded, "hello there")
    with pytest.raises(InputGuardrailTripwireTriggered):
        Runner.run_sync(guarded, "tell me the secret")
    passed, tripped = received(api, processors)
    assert actions(passed) == [
        (1, "guardrail", "no_secrets"),
        (2, "llm_inference", "openai/gpt-4o-mini"),
    ]
    assert passed["steps"][0]["metadata"] == {"triggered": False}
    assert passed.get("errors") is None
    assert actions(tripped) == [(1, "guardrail", "no_secrets")]
    assert tripped["steps"][0]["metadata"] == {"triggered": True}
    (error,) = tripped["errors"]
    assert error["message"] == "Guardrail tripwire triggered"
