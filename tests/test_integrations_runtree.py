"""The core the framework adapters share (integrations/_runtree.py, _adapter.py):
the rules that turn a run tree into one trace, and sending through the user's client (traces
received by the real local API)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

from infinium.integrations._adapter import (
    AdapterBase,
    OpenRuns,
)
from infinium.integrations._runtree import (
    LLM,
    PREVIEW_BUDGET,
    TOOL,
    RunTree,
    message_text,
    preview,
)
from infinium.types import ApiResponse, TaskData

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
pytest_plugins = ["integrations_support"]

MS = 1_000_000


def tree_of(*spans: Any) -> RunTree:
    """A run tree from ``(key, parent, action, start_ms, end_ms, fields)`` tuples."""
    tree = RunTree("run", "a run", start_ns=0)
    for key, parent, action, start, end, fields in spans:
        node = tree.add(key, parent, action, str(key), start * MS)
        assert node is not None
        node.end_ns = end * MS
        for name, value in fields.items():
            setattr(node, name, value)
    tree.end_ns = 100 * MS
    return tree


def test_steps_in_start_order_aggregates_and_nested_model_calls_once() -> None:
    tree = tree_of(
        ("root", None, None, 0, 100, {}),
        # Recorded (ended) before the model call that started first.
        ("tool", "root", TOOL, 40, 50, {}),
        ("inner-model", "tool", LLM, 42, 48, {"prompt_tokens": 1, "completion_tokens": 1}),
        ("model", "root", LLM, 10, 30, {"model": "gpt-4o", "provider": "openai"}),
        ("chain", "model", None, 11, 29, {}),
        ("client-span", "chain", LLM, 12, 28, {"prompt_tokens": 7, "completion_tokens": 3}),
        ("turn", "root", None, 60, 90, {"prompt_tokens": 99, "completion_tokens": 99}),
        ("model-2", "turn", LLM, 61, 89, {"prompt_tokens": 5, "completion_tokens": 2}),
    )
    data = tree.build()
    assert [(s.step_number, s.action, s.description) for s in data.steps or []] == [
        (1, LLM, "model"),
        (2, TOOL, "tool"),
        (3, LLM, "inner-model"),  # a tool calling a model: a call of its own
        (4, LLM, "model-2"),
    ]
    first = (data.steps or [])[0]
    # The framework's span, completed with the provider client's tokens.
    assert first.llm_call is not None
    assert (first.llm_call.model, first.llm_call.prompt_tokens) == ("gpt-4o", 7)
    assert first.duration_ms == 20
    usage = data.llm_usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (13, 6, 19)
    assert (usage.api_calls_count, usage.total_latency_ms) == (3, 20 + 6 + 28)
    assert usage.model == "multiple"
    assert data.duration == 0.1
    assert data.environment is not None and data.environment.sdk_version


def test_run_longer_than_a_day_is_reported_as_one() -> None:
    tree = RunTree("run", "long", start_ns=time.time_ns() - 2 * 86_400 * 10**9)
    assert tree.build().duration == 86_400.0


def test_previews_share_a_budget_so_a_big_trace_still_fits(api: Any) -> None:
    tree = RunTree("big", "a run with many steps", max_nodes=1000)
    for i in range(1000):
        node = tree.add(i, None, LLM, "call")
        assert node is not None
        node.input = "é" * 500
        node.output = "ü" * 1500
        node.prompt_tokens = 1
    data = tree.build()
    previews = sum(
        len(s.input_preview or "") + len(s.output_preview or "") for s in data.steps or []
    )
    assert 0 < previews <= PREVIEW_BUDGET
    assert len(data.steps or []) == 1000
    assert data.llm_usage is not None and data.llm_usage.prompt_tokens == 1000
    assert api.client().send_task_data(data).success
    (received,) = api.traces()
    assert len(received["steps"]) == 1000


def test_max_nodes_drops_and_counts() -> None:
    tree = RunTree("run", "capped", max_nodes=2)
    assert tree.add(1, None, LLM, "a") is not None
    assert tree.add(2, None, LLM, "b") is not None
    assert tree.add(3, None, LLM, "c") is None
    assert tree.dropped == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], "hi"),
        ({"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}, "a\nb"),
        ([{"role": "user", "parts": [{"type": "text", "content": "semconv"}]}], "semconv"),
        ({"messages": [{"content": "graph state"}]}, "graph state"),
        ({"query": "find it"}, "find it"),
        ({"type": "tool_call_response", "result": 4}, "4"),
        (
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "add", "arguments": "{}"}}],
            },
            "add({})",
        ),
        ({"name": "lookup", "args": {"q": 1}}, "lookup({'q': 1})"),
        ([{"content": "older"}, {"content": ""}], "older"),
        (12, None),
        ({"unrelated": 1}, None),
    ],
)
def test_message_text(value: Any, expected: Optional[str]) -> None:
    assert message_text(value) == expected


def test_preview_is_bounded_and_never_raises() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        @property
        def content(self) -> str:
            raise RuntimeError("no content")

    assert preview("x" * 5000, 500) == "x" * 497 + "..."
    assert preview(list(range(100_000)), 300) is not None
    assert len(preview(list(range(100_000)), 300) or "") <= 300
    assert preview(Hostile(), 100) == "<Hostile>"
    assert preview(None, 10) is None


def test_open_runs_evict_the_oldest_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    evicted: List[str] = []
    runs: OpenRuns[int, str] = OpenRuns(2, "things", evicted.append)
    with caplog.at_level(logging.WARNING, logger="infinium.integrations"):
        for i in range(3):
            runs.add(i, f"run-{i}")
    assert evicted == ["run-0"] and runs.evicted == 1
    assert runs.get(0) is None and runs.get(2) == "run-2"
    assert "more than 2 open things" in caplog.text
    with pytest.raises(ValueError, match="positive int"):
        OpenRuns(0, "things")


class Adapter(AdapterBase):
    """The shared adapter machinery on its own (what each framework adapter wraps)."""

    framework = "test"

    def __init__(self, client: Any, **kwargs: Any) -> None:
        kwargs.setdefault("capture_content", False)
        super().__init__(client, max_open_traces=10, max_spans_per_trace=10, what="runs", **kwargs)

    def one_run(self, name: str) -> None:
        with self._lock:
            tree = self._new_tree(name, name, "one model call")
        node = tree.add("m", None, LLM, "model")
        assert node is not None
        node.prompt_tokens, node.completion_tokens = 3, 4
        node.end_ns = time.time_ns()
        with self._lock:
            self._open.pop(name)
        self._finish(tree)


class NeverSent:
    """A client never asked to send."""

    def send_task_data(self, task_data: TaskData) -> ApiResponse:
        raise AssertionError("not sent")


class Recording:
    """A client that records the thread each send runs on, then sends for real."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.background = getattr(client, "background", False)
        self.threads: List[str] = []
        send = client.send_task_data
        if asyncio.iscoroutinefunction(send):

            async def send_async(task_data: TaskData) -> ApiResponse:
                self.threads.append(threading.current_thread().name)
                result: ApiResponse = await send(task_data)
                return result

            self.send_task_data: Any = send_async
        else:

            def send_sync(task_data: TaskData) -> ApiResponse:
                self.threads.append(threading.current_thread().name)
                result: ApiResponse = send(task_data)
                return result

            self.send_task_data = send_sync


def test_blocking_client_sends_inline_outside_an_event_loop(api: Any) -> None:
    client = Recording(api.client())
    adapter = Adapter(client)
    adapter.one_run("inline")
    assert client.threads == [threading.current_thread().name]
    assert adapter.stats()["pending_sends"] == 0
    (trace,) = api.traces()  # already there: no flush needed
    assert trace["name"] == "inline"
    assert trace["llm_usage"]["total_tokens"] == 7


def test_blocking_client_inside_an_event_loop_sends_from_the_send_thread(api: Any) -> None:
    client = Recording(api.client())
    adapter = Adapter(client)

    async def main() -> None:
        adapter.one_run("in-a-loop")  # a sync framework callback inside the loop

    asyncio.run(main())
    assert adapter.flush(10)
    assert client.threads == ["infinium-integrations-send"]
    assert [t["name"] for t in api.traces()] == ["in-a-loop"]


@pytest.mark.parametrize("inside_a_loop", [False, True])
def test_async_client_from_a_sync_callback(api: Any, inside_a_loop: bool) -> None:
    """The coroutine runs on the send thread's loop: it outlives the caller's loop
    (``asyncio.run`` cancels what is left on it) and needs none in a plain thread."""
    client = Recording(api.async_client())
    adapter = Adapter(client)
    if inside_a_loop:

        async def main() -> None:
            adapter.one_run("async-client")

        asyncio.run(main())
    else:
        adapter.one_run("async-client")
    assert adapter.flush(10)
    assert client.threads == ["infinium-integrations-send"]
    assert [t["name"] for t in api.traces()] == ["async-client"]
    assert adapter.stats()["traces_sent"] == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_background_client_queues_inline(api: Any, kind: str) -> None:
    """Queueing never waits: done at once in the caller's thread, sync or async
    client, inside an event loop or not."""
    real = api.client(background=True) if kind == "sync" else api.async_client(background=True)
    client = Recording(real)
    adapter = Adapter(client)

    async def main() -> None:
        adapter.one_run("queued")

    asyncio.run(main())
    assert client.threads == [threading.current_thread().name]
    assert adapter.stats()["traces_sent"] == 1 and adapter.stats()["pending_sends"] == 0
    assert [t["name"] for t in api.wait_for_traces(1)] == ["queued"]
    if kind == "sync":
        real.close()
    else:
        asyncio.run(real.close())


def test_send_failures_are_counted_and_logged_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Raising:
        def send_task_data(self, task_data: TaskData) -> ApiResponse:
            raise ConnectionError("down")

    class Refused:
        def send_task_data(self, task_data: TaskData) -> ApiResponse:
            return ApiResponse(False, 503, "unavailable")

    with caplog.at_level(logging.WARNING, logger="infinium.integrations"):
        for client in (Raising(), Refused()):
            adapter = Adapter(client)
            adapter.one_run("doomed")
            stats: Dict[str, int] = adapter.stats()
            assert (stats["send_errors"], stats["traces_sent"]) == (1, 0)
    assert "sending the trace of 'doomed' failed" in caplog.text


def test_build_failures_are_counted_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Unbuildable(RunTree):
        def build(self, end_ns: Optional[int] = None) -> TaskData:
            raise RecursionError("too deep")

    adapter = Adapter(NeverSent())
    with caplog.at_level(logging.WARNING, logger="infinium.integrations"):
        adapter._finish(Unbuildable("broken", "x"))
    assert adapter.stats()["build_errors"] == 1
    assert "could not build the trace of 'broken'" in caplog.text


def test_callback_failures_log_once_loudly(caplog: pytest.LogCaptureFixture) -> None:
    adapter = Adapter(NeverSent())
    with caplog.at_level(logging.DEBUG, logger="infinium.integrations"):
        for _ in range(3):
            try:
                raise KeyError("span")
            except KeyError:
                adapter._callback_failed("on_span_end")
    levels = [r.levelno for r in caplog.records if "on_span_end failed" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert adapter.stats()["callback_errors"] == 3


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="send_task_data"):
        Adapter(object())
    with pytest.raises(TypeError, match="capture_content must be a bool"):
        Adapter(NeverSent(), capture_content="yes")
    with pytest.raises(ValueError, match="max_spans_per_trace"):
        AdapterBase(
            NeverSent(),
            capture_content=False,
            max_open_traces=1,
            max_spans_per_trace=0,
            what="x",
        )


def test_sends_in_flight_at_exit_are_finished() -> None:
    """A process that ends right after a run (a CLI hook, a serverless call) still
    delivers the trace the send thread is sending (the API answers slowly here)."""
    import subprocess

    from infinium.testing import LocalServer

    code = """
import asyncio, sys, time
from infinium import InfiniumClient
from infinium.integrations._adapter import AdapterBase
from infinium.integrations._runtree import LLM

class Adapter(AdapterBase):
    def run(self):
        with self._lock:
            tree = self._new_tree("k", "exiting", "one call")
        tree.add("m", None, LLM, "model").end_ns = time.time_ns()
        with self._lock:
            self._open.pop("k")
        self._finish(tree)

client = InfiniumClient(agent_id=sys.argv[1], agent_secret=sys.argv[2], base_url=sys.argv[3])
adapter = Adapter(client, capture_content=False, max_open_traces=1,
                  max_spans_per_trace=1, what="runs")

async def main():
    adapter.run()  # from inside a loop: handed to the send thread

asyncio.run(main())
assert adapter.stats()["pending_sends"] == 1
"""
    with LocalServer(faults={"latency_ms": 500}) as srv:
        subprocess.run(
            [sys.executable, "-c", code, srv.agent_id, srv.agent_secret, srv.base_url],
            check=True,
            timeout=60,
        )
        assert [t["name"] for t in srv.traces()] == ["exiting"]
