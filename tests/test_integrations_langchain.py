"""InfiniumCallbackHandler: LangGraph agents (langchain's ``create_agent``, the
current form of ``create_react_agent``) and plain chat models against the fake
provider become traces received by the real local API."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from typing import Any, Dict, List, Optional

import httpx
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langgraph")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
pytest.register_assert_rewrite("integrations_support")

from langchain.agents import create_agent  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402

from infinium.integrations.langchain import InfiniumCallbackHandler  # noqa: E402
from integrations_support import actions, token_sums, tool_steps, usage_totals  # noqa: E402

pytest_plugins = ["integrations_support"]


@tool
def shout(text: str) -> str:
    """Say the text louder."""
    return text.upper()


@tool
def lookup(query: str) -> str:
    """Look something up (always fails)."""
    raise ValueError("lookup backend down")


def chat(fake: Any, **kwargs: Any) -> ChatOpenAI:
    # A client of its own: langchain-openai otherwise shares one cached async
    # HTTP client per base URL, bound to the first test's (closed) event loop.
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=fake.openai_base_url,
        api_key="x",
        max_retries=0,
        http_async_client=httpx.AsyncClient(),
        **kwargs,
    )


def graph(fake: Any, *tools: Any) -> Any:
    return create_agent(chat(fake, temperature=0.2), list(tools or [shout]))


def ask(text: str) -> Dict[str, Any]:
    return {"messages": [("user", text)]}


def received(api: Any, handler: InfiniumCallbackHandler) -> List[Dict[str, Any]]:
    assert handler.flush(10)
    return api.traces()


def model_usage(result: Dict[str, Any]) -> List[int]:
    """Prompt and completion tokens as LangChain itself reports them."""
    prompt = completion = 0
    for message in result["messages"]:
        usage = getattr(message, "usage_metadata", None)
        if usage:
            prompt += usage["input_tokens"]
            completion += usage["output_tokens"]
    return [prompt, completion]


def check_shout_trace(trace: Dict[str, Any], words: str) -> None:
    """The trace of one ``ask(words)`` through the shout agent, and nothing else."""
    assert trace["name"] == "LangGraph"
    assert actions(trace) == [
        (1, "llm_inference", "openai/gpt-4o-mini"),
        (2, "tool_use", "shout"),
        (3, "llm_inference", "openai/gpt-4o-mini"),
    ]
    n = len(words.split())
    # The fake counts words. Prompts: the question, then the question and the
    # tool's answer. Completions: the call's JSON arguments {"text": "..."}
    # (n + 1 words), then "Echo from gpt-4o-mini:" and the answer.
    assert token_sums(trace) == (3 * n, 2 * n + 4)
    assert usage_totals(trace) == (3 * n, 2 * n + 4, 2)
    steps = trace["steps"]
    assert trace["input_summary"] == words
    assert steps[0]["input_preview"] == words
    assert steps[0]["output_preview"] == f"shout({{'text': '{words}'}})"
    (tool_step,) = tool_steps(trace)
    assert tool_step["tool_call"]["tool_name"] == "shout"
    assert tool_step["tool_call"]["input_summary"] == f"{{'text': '{words}'}}"
    assert tool_step["tool_call"]["output_summary"] == words.upper()
    assert steps[2]["output_preview"] == f"Echo from gpt-4o-mini: {words.upper()}"
    assert trace["output_summary"] == f"Echo from gpt-4o-mini: {words.upper()}"
    assert steps[0]["llm_call"]["temperature"] == 0.2
    assert trace.get("errors") is None


def react_agent(fake: Any) -> Any:
    """The same agent through LangGraph's (deprecated) ``create_react_agent``."""
    import warnings

    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(chat(fake, temperature=0.2), [shout])


@pytest.mark.parametrize("build", [graph, react_agent], ids=["create_agent", "create_react_agent"])
def test_two_invokes_on_one_handler_are_two_traces(api: Any, fake: Any, build: Any) -> None:
    handler = InfiniumCallbackHandler(api.client(), capture_content=True)
    agent = build(fake)
    result = agent.invoke(ask("hello there"), config={"callbacks": [handler]})
    for _ in agent.stream(ask("one two three"), config={"callbacks": [handler]}):
        pass
    first, second = received(api, handler)
    check_shout_trace(first, "hello there")
    check_shout_trace(second, "one two three")
    assert list(usage_totals(first)[:2]) == model_usage(result)
    assert first["environment"]["framework"] == "langchain"
    assert handler.stats()["traces_sent"] == 2
    assert handler.stats()["open_traces"] == 0


def test_a_failing_tool_is_on_its_step_and_ends_the_run(api: Any, fake: Any) -> None:
    handler = InfiniumCallbackHandler(api.client())
    with pytest.raises(ValueError, match="lookup backend down"):
        graph(fake, lookup).invoke(ask("hello there"), config={"callbacks": [handler]})
    (trace,) = received(api, handler)
    assert actions(trace) == [(1, "llm_inference", "openai/gpt-4o-mini"), (2, "tool_use", "lookup")]
    (tool_step,) = tool_steps(trace)
    assert tool_step["error"]["error_type"] == "ValueError"
    assert tool_step["error"]["message"] == "lookup backend down"
    assert tool_step["tool_call"]["error"]["message"] == "lookup backend down"
    (error,) = trace["errors"]
    assert (error["error_type"], error["message"]) == ("ValueError", "lookup backend down")
    assert token_sums(trace) == (2, 3)  # the question; the call {"query": "hello there"}
    # Without capture_content: no previews, no summaries.
    assert "input_preview" not in tool_step and "input_summary" not in tool_step["tool_call"]
    assert "input_summary" not in trace and "output_summary" not in trace


def test_concurrent_invokes_from_threads_do_not_mix(api: Any, fake: Any) -> None:
    handler = InfiniumCallbackHandler(api.client(), capture_content=True)
    agent = graph(fake)
    questions = [" ".join(f"w{i}" for _ in range(i + 1)) for i in range(6)]
    barrier = threading.Barrier(len(questions))
    failures: List[BaseException] = []

    def worker(words: str) -> None:
        try:
            barrier.wait(10)
            agent.invoke(ask(words), config={"callbacks": [handler]})
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    traces = received(api, handler)
    assert len(traces) == len(questions)
    for trace in traces:
        check_shout_trace(trace, trace["input_summary"])
    assert sorted(t["input_summary"] for t in traces) == sorted(questions)


def test_concurrent_invokes_from_asyncio_tasks_do_not_mix(api: Any, fake: Any) -> None:
    handler = InfiniumCallbackHandler(api.client(), capture_content=True)
    agent = graph(fake)
    questions = [" ".join(f"a{i}" for _ in range(i + 1)) for i in range(5)]

    async def main() -> None:
        config: Any = {"callbacks": [handler]}
        await asyncio.gather(*(agent.ainvoke(ask(q), config=config) for q in questions))

    asyncio.run(main())
    traces = received(api, handler)
    assert len(traces) == len(questions)
    for trace in traces:
        check_shout_trace(trace, trace["input_summary"])
    assert sorted(t["input_summary"] for t in traces) == sorted(questions)


def test_async_client(api: Any, fake: Any) -> None:
    handler = InfiniumCallbackHandler(api.async_client(), capture_content=True)

    async def main() -> None:
        await graph(fake).ainvoke(ask("hello there"), config={"callbacks": [handler]})

    asyncio.run(main())
    (trace,) = received(api, handler)
    check_shout_trace(trace, "hello there")


def test_a_lone_chat_model_call_is_a_trace(api: Any, fake: Any) -> None:
    handler = InfiniumCallbackHandler(api.client(), trace_name="one-question")
    message = chat(fake).invoke("hello there", config={"callbacks": [handler]})
    assert message.content == "Echo from gpt-4o-mini: hello there"
    (trace,) = received(api, handler)
    assert trace["name"] == "one-question"
    assert actions(trace) == [(1, "llm_inference", "openai/gpt-4o-mini")]
    assert usage_totals(trace) == (2, 5, 1)


def test_streamed_chat_model_tokens(api: Any, fake: Any) -> None:
    handler = InfiniumCallbackHandler(api.client())
    text = "".join(
        str(chunk.content)
        for chunk in chat(fake, stream_usage=True).stream(
            "hello there", config={"callbacks": [handler]}
        )
    )
    assert text == "Echo from gpt-4o-mini: hello there"
    (trace,) = received(api, handler)
    assert usage_totals(trace) == (2, 5, 1)


def test_handler_failures_never_reach_the_chain(api: Any, fake: Any) -> None:
    class Unreachable:
        background = False

        def send_task_data(self, task_data: Any) -> Any:
            raise ConnectionError("no route to the API")

    handler = InfiniumCallbackHandler(Unreachable())
    result = graph(fake).invoke(ask("hello there"), config={"callbacks": [handler]})
    assert result["messages"][-1].content == "Echo from gpt-4o-mini: HELLO THERE"
    assert handler.flush(10)
    assert handler.stats()["send_errors"] == 1
    # Garbage from a framework is logged and counted, never raised.
    run_id = uuid.uuid4()
    handler.on_chat_model_start(None, [[object()]], run_id=run_id, metadata="not a dict")  # type: ignore[arg-type]
    handler.on_llm_end(object(), run_id=run_id)
    handler.on_tool_end(object(), run_id=uuid.uuid4())
    assert handler.stats()["callback_errors"] == 0  # tolerated, not even an error
    handler.on_chain_start(None, {}, run_id="not-a-uuid", parent_run_id=[])  # type: ignore[arg-type]
    assert handler.stats()["callback_errors"] == 1
    with pytest.raises(TypeError, match="send_task_data"):
        InfiniumCallbackHandler(object())


def test_an_interrupt_is_not_an_error(api: Any, fake: Any) -> None:
    """A tool that asks a human (LangGraph ``interrupt()``) pauses the run: its
    step and the trace carry no error; the resumed run is a trace of its own."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command, interrupt

    @tool
    def approve(query: str) -> str:
        """Ask a human to approve."""
        return str(interrupt("approve?"))

    agent = create_agent(chat(fake), [approve], checkpointer=InMemorySaver())
    handler = InfiniumCallbackHandler(api.client())
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": "t1"}}
    agent.invoke(ask("hello there"), config=config)
    result = agent.invoke(Command(resume="approved"), config=config)
    assert result["messages"][-1].content == "Echo from gpt-4o-mini: approved"
    paused, resumed = received(api, handler)
    assert [s["action"] for s in paused["steps"]] == ["llm_inference", "tool_use"]
    assert all("error" not in s for s in paused["steps"] + resumed["steps"])
    assert paused.get("errors") is None and resumed.get("errors") is None
    assert handler.stats()["open_traces"] == 0


def test_retriever_and_plain_llm_runs(api: Any) -> None:
    """A retriever run is a ``retrieval`` step; a (non-chat) LLM run an
    ``llm_inference`` step with the tokens of the result's ``llm_output``."""
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.documents import Document
    from langchain_core.language_models import LLM
    from langchain_core.outputs import Generation, LLMResult
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda

    class Shelf(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> List[Document]:
            return [Document(page_content=f"about {query}")]

    class Completer(LLM):
        @property
        def _llm_type(self) -> str:
            return "completer"

        def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
            raise NotImplementedError  # _generate below answers

        def _generate(
            self,
            prompts: List[str],
            stop: Any = None,
            run_manager: Optional[CallbackManagerForLLMRun] = None,
            **kw: Any,
        ) -> LLMResult:
            return LLMResult(
                generations=[[Generation(text=f"done: {p}")] for p in prompts],
                llm_output={
                    "token_usage": {"prompt_tokens": 6, "completion_tokens": 2},
                    "model_name": "completer-1",
                },
            )

    retriever, llm = Shelf(), Completer()
    chain = RunnableLambda(lambda q: retriever.invoke(q)[0].page_content) | llm
    handler = InfiniumCallbackHandler(api.client(), capture_content=True, trace_name="rag")
    assert chain.invoke("tides", config={"callbacks": [handler]}) == "done: about tides"
    (trace,) = received(api, handler)
    assert trace["name"] == "rag"
    assert actions(trace) == [
        (1, "retrieval", "Shelf"),
        (2, "llm_inference", "completer/completer-1"),
    ]
    retrieval, completion = trace["steps"]
    assert retrieval["input_preview"] == "tides"
    assert "about tides" in retrieval["output_preview"]
    assert completion["llm_call"]["prompt_tokens"] == 6
    assert completion["output_preview"] == "done: about tides"
    assert usage_totals(trace) == (6, 2, 1)
