"""TraceBuilder, StepContext and the decorators, asserted on what the local
API received where a trace is sent."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import gc
import inspect
import logging
import re
import sys
import threading
import time
import weakref
from typing import Any, Dict, List

import pytest

import infinium
from infinium import (
    ErrorDetail,
    LlmUsage,
    StepContext,
    TraceBuilder,
    async_trace_agent,
    trace_agent,
)
from infinium._context import get_current_trace_context, record_prompt_fetch
from infinium._internal.repr import capped_repr
from infinium.types import Customer, PromptContent

PY_VERSION = "{}.{}.{}".format(*sys.version_info[:3])


def reply_cls(server: Any) -> Any:
    """The capture server's ``Reply`` class (conftest's module name varies)."""
    return sys.modules[type(server).__module__].Reply  # type: ignore[attr-defined]


def traces(server: Any) -> List[Dict[str, Any]]:
    return [r.json() for r in server.requests if r.method == "POST" and r.path.endswith("/trace")]


def wait_for_traces(server: Any, n: int, timeout: float = 5.0) -> List[Dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = traces(server)
        if len(got) >= n:
            return got
        time.sleep(0.01)
    return traces(server)


# --- TraceBuilder / StepContext -----------------------------------------------------------


def test_builder_fluent_numbering_and_build() -> None:
    trace = TraceBuilder("Blog", "Write a post")
    assert (
        trace.set_input_summary("in")
        .set_output_summary("out")
        .set_expected_outcome("objective", required_deliverables=["post"])
        .set_llm_usage(LlmUsage(model="m", api_calls_count=1))
        .set_section("customer", Customer(customer_name="Acme"))
        .add_error(ErrorDetail("E", "boom"))
        is trace
    )
    with trace.step("search", "first") as s1:
        s1.set_input("q").set_output("r").set_metadata({"k": 1})
    with trace.step("llm", "second") as s2:
        s2.record_llm_call("gpt-4o", provider="openai", prompt_tokens=3, completion_tokens=4)
        s2.record_tool_call(
            "api", duration_ms=5, input_summary="i", output_summary="o", http_status=200
        )
    time.sleep(0.01)
    td = trace.build()
    assert [s.step_number for s in td.steps or []] == [1, 2]
    assert td.steps is not None and td.steps[0].metadata == {"k": 1}
    assert td.steps[1].llm_call is not None and td.steps[1].llm_call.prompt_tokens == 3
    assert td.steps[1].tool_call is not None and td.steps[1].tool_call.http_status == 200
    assert td.duration >= 0.01 and round(td.duration, 3) == td.duration
    assert td.environment is not None
    assert td.environment.python_version == PY_VERSION
    assert td.environment.sdk_version == infinium.__version__
    assert td.customer == Customer(customer_name="Acme")
    assert td.errors == [ErrorDetail("E", "boom")]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", td.current_datetime)
    assert td.input_summary == "in" and td.output_summary == "out"
    assert td.expected_outcome is not None and td.expected_outcome.task_objective == "objective"
    body = infinium.dumps(td)
    assert b'"steps":[{"step_number":1' in body


def test_positional_construction_matches_keywords() -> None:
    # The tracing internals build TaskData, ExecutionStep and EnvironmentContext
    # with positional arguments (half the cost of keywords): every field must
    # land where its keyword would put it.
    from infinium._internal.builder import assemble
    from infinium.types import (
        EnvironmentContext,
        ExecutionStep,
        ExpectedOutcome,
        TaskData,
        ToolCall,
    )

    step = StepContext(7, "tool_use", "call")
    # Users may keep their own attributes on a step, and weak references to it.
    step.note = "mine"  # type: ignore[attr-defined]
    assert vars(step) == {"note": "mine"} and weakref.ref(step)() is step
    step._duration_ms = 12
    step.set_input("in").set_output("out").set_metadata({"k": 1})
    step.record_tool_call("search", duration_ms=3)
    step._error = ErrorDetail("E", "m")
    step.record_llm_call("gpt", provider="openai", prompt_tokens=1)
    built = step._build()
    assert built == ExecutionStep(
        step_number=7,
        action="tool_use",
        description="call",
        duration_ms=12,
        input_preview="in",
        output_preview="out",
        error=ErrorDetail("E", "m"),
        tool_call=ToolCall(tool_name="search", duration_ms=3),
        llm_call=built.llm_call,
        metadata={"k": 1},
    )
    assert built.llm_call is not None and built.llm_call.model == "gpt"

    usage = LlmUsage(model="gpt", api_calls_count=1)
    outcome = ExpectedOutcome(task_objective="o")
    errors = [ErrorDetail("X", "y")]
    td = assemble(
        "n",
        "d",
        time.perf_counter_ns(),
        "in",
        "out",
        [built],
        errors,
        expected_outcome=outcome,
        llm_usage=usage,
    )
    assert td == TaskData(
        name="n",
        description="d",
        current_datetime=td.current_datetime,
        duration=td.duration,
        llm_usage=usage,
        input_summary="in",
        output_summary="out",
        steps=[built],
        expected_outcome=outcome,
        environment=EnvironmentContext(python_version=PY_VERSION, sdk_version=infinium.__version__),
        errors=errors,
    )


def test_task_data_built_by_field_name_and_a_schema_drift_fails_loudly() -> None:
    from infinium._internal.schema import TASK_FIELDS, by_name
    from infinium.types import TaskData

    make = by_name(
        TaskData,
        TASK_FIELDS,
        ("errors", "duration", "name", "customer", "description", "current_datetime"),
    )
    errors = [ErrorDetail("E", "m")]
    assert make(errors, 1.5, "n", Customer("a"), "d", "t") == TaskData(
        name="n",
        description="d",
        current_datetime="t",
        duration=1.5,
        customer=Customer("a"),
        errors=errors,
    )
    with pytest.raises(TypeError, match="schema"):
        by_name(TaskData, TASK_FIELDS[::-1], ("name",))
    with pytest.raises(TypeError, match="no field"):
        by_name(TaskData, TASK_FIELDS, ("name", "prompt_studio"))
    with pytest.raises(TypeError, match="no default"):
        by_name(TaskData, TASK_FIELDS, ("name", "description", "duration"))


def test_one_truncation_rule_cuts_as_each_former_helper_did() -> None:
    """The caps' cut (the result fits the cap, ``...`` included), utils.truncate_string
    (any suffix) and the adapters' previews (``limit`` chars, then ``...``) are one
    function; each cut is the one infinium-o2 makes, character for character."""
    from infinium._context import CapturedLlmCall
    from infinium._internal.text import truncate
    from infinium.integrations._context import truncate_preview
    from infinium.utils import truncate_string

    def cap_cut(text: str, limit: int, suffix: str = "...") -> str:
        return text if len(text) <= limit else text[: limit - len(suffix)] + suffix

    def preview_cut(text: str, limit: int) -> str:
        return text[:limit] + "..." if len(text) > limit else text

    for length in range(0, 12):
        text = "".join(chr(0x61 + i % 26) if i % 5 else "\u00e9" for i in range(length))
        for limit in range(0, 10):
            assert truncate(text, limit) == cap_cut(text, limit)
            assert truncate_string(text, limit) == cap_cut(text, limit)
            assert truncate_string(text, limit, suffix="!") == cap_cut(text, limit, "!")
            assert truncate_string(text, limit, suffix="") == cap_cut(text, limit, "")
            assert truncate(text, limit, keep=limit) == preview_cut(text, limit)
            assert truncate_preview(text, limit) == preview_cut(text, limit)
            call = CapturedLlmCall("p", "m")
            call._open, call._parts, call._output_limit = True, [text], limit
            call.finish_stream()
            assert call.output_preview == preview_cut(text, limit)
    assert truncate_string("x" * 2000) == "x" * 997 + "..."


def test_timestamps_are_now_in_utc_with_microseconds() -> None:
    # Stamped in Rust; must read like datetime.now(timezone.utc) with a Z, also
    # for the public helper, and fall between two readings of the system clock.
    from datetime import datetime, timezone

    for _ in range(200):
        before = datetime.now(timezone.utc)
        stamps = [
            infinium.get_current_iso_datetime(),
            TraceBuilder("n", "d").build().current_datetime,
        ]
        after = datetime.now(timezone.utc)
        for stamp in stamps:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
            assert before <= datetime.fromisoformat(stamp[:-1] + "+00:00") <= after


def test_set_environment_keeps_sdk_version_and_default_python() -> None:
    td = TraceBuilder("n", "d").set_environment(framework="custom", region="eu").build()
    assert td.environment is not None
    assert td.environment.framework == "custom" and td.environment.region == "eu"
    assert td.environment.python_version == PY_VERSION
    assert td.environment.sdk_version == infinium.__version__
    td = TraceBuilder("n", "d").set_environment(python_version="3.99").build()
    assert td.environment is not None and td.environment.python_version == "3.99"


def test_truncation_caps() -> None:
    trace = TraceBuilder("n", "d")
    with trace.step("a", "b") as step:
        step.set_input("i" * 600).set_output("o" * 2000)
        step.record_tool_call("t", input_summary="x" * 400, output_summary="y" * 2000)
    built = trace.build().steps
    assert built is not None
    s = built[0]
    assert s.input_preview == "i" * 497 + "..."
    assert s.output_preview == "o" * 1497 + "..."
    assert s.tool_call is not None
    assert s.tool_call.input_summary == "x" * 297 + "..."
    assert s.tool_call.output_summary == "y" * 1497 + "..."
    # exactly at the cap: untouched
    trace = TraceBuilder("n", "d")
    trace.step("a", "b").set_input("i" * 500).set_output("o" * 1500)
    s = (trace.build().steps or [])[0]
    assert s.input_preview == "i" * 500 and s.output_preview == "o" * 1500


def test_step_exception_recorded_and_propagates() -> None:
    trace = TraceBuilder("n", "d")
    with pytest.raises(KeyError):
        with trace.step("lookup", "find"):
            raise KeyError("missing-" + "z" * 2000)
    (step,) = trace.build().steps or []
    assert step.error is not None
    assert step.error.error_type == "KeyError"
    assert step.error.recoverable is False
    assert step.error.stack_trace is not None and len(step.error.stack_trace) <= 1000
    assert step.error.stack_trace.startswith("Traceback")
    assert step.duration_ms is not None


def test_step_run_sync_and_async_and_async_with() -> None:
    trace = TraceBuilder("n", "d")

    def work(step: StepContext) -> int:
        step.set_output("sync done")
        time.sleep(0.005)
        return 41

    assert trace.step("a", "sync").run(work) == 41

    async def awork(step: StepContext) -> int:
        await asyncio.sleep(0.005)
        step.set_output("async done")
        return 42

    async def main() -> int:
        value: int = await trace.step("b", "async").run(awork)
        async with trace.step("c", "async with") as step:
            step.set_output("inside")
            await asyncio.sleep(0)
        with pytest.raises(ValueError):
            await trace.step("d", "fails").run(_async_fail)
        return value

    assert asyncio.run(main()) == 42
    with pytest.raises(ZeroDivisionError):
        trace.step("e", "sync fails").run(lambda step: 1 / 0)
    steps = trace.build().steps or []
    assert [(s.step_number, s.action, s.output_preview) for s in steps] == [
        (1, "a", "sync done"),
        (2, "b", "async done"),
        (3, "c", "inside"),
        (4, "d", None),
        (5, "e", None),
    ]
    assert steps[0].duration_ms is not None and steps[0].duration_ms >= 4
    assert steps[1].duration_ms is not None and steps[1].duration_ms >= 4
    assert steps[3].error is not None and steps[3].error.error_type == "ValueError"
    assert steps[4].error is not None and steps[4].error.error_type == "ZeroDivisionError"


async def _async_fail(step: StepContext) -> None:
    raise ValueError("nope")


def test_step_numbering_is_thread_safe() -> None:
    trace = TraceBuilder("n", "d")
    created: List[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(100):
            with trace.step("t", threading.current_thread().name) as step:
                with lock:
                    created.append(step.step_number)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    steps = trace.build().steps or []
    assert [s.step_number for s in steps] == list(range(1, 801))
    assert sorted(created) == list(range(1, 801))


# --- bounded repr --------------------------------------------------------------------------


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


@pytest.mark.parametrize(
    "obj",
    [
        1,
        "it's",
        'say "hi"',
        "both ' and \"",
        (1,),
        [1, [2, (3,)], {"k": b"x'y"}],
        {"args": ("x" * 5000,), "kwargs": {}},
        {"a": "é\n\x00" * 2000},
        list(range(3000)),
        ('a"' * 3000, "b"),
        b"q" * 9000,
    ],
)
def test_capped_repr_matches_builtin_repr(obj: Any) -> None:
    full = repr(obj)
    for cap in (5, 100, 1500, 3000, 8000):
        expected = full if len(full) <= cap else full[: cap - 3] + "..."
        assert capped_repr(obj, cap) == expected


def test_capped_repr_is_bounded_and_never_raises() -> None:
    huge = ["y" * 1000] * 200_000
    t0 = time.perf_counter()
    out = capped_repr({"args": (huge, "x" * 50_000_000), "kwargs": {}}, 3000)
    assert time.perf_counter() - t0 < 0.5
    assert len(out) == 3000 and out.endswith("...")
    assert capped_repr([_BadRepr(), 1], 100) == "[<_BadRepr>, 1]"
    loop: List[Any] = [1]
    loop.append(loop)
    assert capped_repr(loop, 100) == repr(loop)


# --- decorators: shape of the trace ---------------------------------------------------------


def test_decorator_trace_shape_without_sending() -> None:
    @trace_agent("Classifier", auto_send=False)
    def classify(text: str, *, strict: bool = False) -> Dict[str, str]:
        """
        Classify a ticket.
        """
        return {"label": text.upper()}

    assert classify("abc", strict=True) == {"label": "ABC"}
    td = classify.last_trace  # type: ignore[attr-defined]
    assert td.name == "Classifier"
    assert td.description == "Classify a ticket."
    assert td.input_summary == repr({"args": ("abc",), "kwargs": {"strict": True}})
    assert td.output_summary == repr({"label": "ABC"})
    (step,) = td.steps
    assert (step.step_number, step.action, step.description) == (1, "execution", "Execute classify")
    assert step.output_preview == repr({"label": "ABC"})
    assert step.duration_ms is not None
    assert td.llm_usage is None and td.errors is None
    assert classify.__name__ == "classify" and "Classify" in (classify.__doc__ or "")


def test_decorator_defaults_caps_and_none_result() -> None:
    @trace_agent("n", auto_send=False)
    def nothing(x: Any) -> None:
        return None

    nothing("a" * 10_000)
    td = nothing.last_trace  # type: ignore[attr-defined]
    assert td.description == "Auto-traced call to nothing"
    assert td.output_summary is None
    assert td.steps[0].output_preview == "None"
    assert len(td.input_summary) == 3000 and td.input_summary.endswith("...")

    @trace_agent("n", auto_send=False, description="explicit")
    def big() -> str:
        return "r" * 20_000

    big()
    td = big.last_trace  # type: ignore[attr-defined]
    assert td.description == "explicit"
    assert td.output_summary == repr("r" * 20_000)[:7997] + "..."
    assert td.steps[0].output_preview == repr("r" * 20_000)[:1497] + "..."


def test_decorator_survives_bad_and_huge_reprs() -> None:
    class BadResult:
        def __repr__(self) -> str:
            raise ValueError("no repr")

    @trace_agent("n", auto_send=False)
    def f(a: Any, b: Any) -> Any:
        return BadResult()

    result = f(_BadRepr(), ["z" * 100] * 1_000_000)
    assert isinstance(result, BadResult)
    td = f.last_trace  # type: ignore[attr-defined]
    assert td.input_summary.startswith("{'args': (<_BadRepr>, ['zzz")
    assert len(td.input_summary) == 3000
    assert td.output_summary == "<BadResult>"


def test_a_repr_returning_a_str_subclass_is_used_as_text() -> None:
    """``repr()`` accepts a str subclass from ``__repr__``: its text is recorded, as
    the anchor records it (small values and values past the 3000-char cap)."""

    class Text(str):
        pass

    class Odd:
        def __repr__(self) -> str:
            return Text("odd one")

    @trace_agent("n", auto_send=False)
    def f(*args: Any) -> Any:
        return Odd()

    f(Odd())
    td = f.last_trace  # type: ignore[attr-defined]
    assert td.input_summary == "{'args': (odd one,), 'kwargs': {}}"
    assert td.output_summary == "odd one" and td.steps[0].output_preview == "odd one"
    f(Odd(), ["x" * 100] * 40)  # past the cap: the bounded walk
    long_summary = f.last_trace.input_summary  # type: ignore[attr-defined]
    assert long_summary.startswith("{'args': (odd one, ['xxx") and len(long_summary) == 3000
    assert capped_repr([Odd()] * 2000, 50) == "[odd one, odd one, odd one, odd one, odd one, o..."
    assert type(td.output_summary) is str


def test_an_exception_whose_str_fails_is_recorded_and_still_raised() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str broke")

    @trace_agent("n", auto_send=False)
    def boom() -> None:
        raise Broken()

    with pytest.raises(Broken):  # the traced code's exception, not str()'s
        boom()
    td = boom.last_trace  # type: ignore[attr-defined]
    (err,) = td.errors
    assert (err.error_type, err.message) == ("Broken", "<exception str() failed>")
    assert "Broken" in err.stack_trace
    assert td.steps[0].error.message == "<exception str() failed>"


def test_a_docstring_longer_than_a_description_is_cut_to_fit() -> None:
    """The decorator's description comes from the docstring; one over 10,000
    characters is cut (``...``) so the trace still validates and is sent."""

    def long_doc() -> int:
        return 1

    long_doc.__doc__ = "word " * 3000
    traced = trace_agent("n", auto_send=False)(long_doc)
    traced()
    td = traced.last_trace  # type: ignore[attr-defined]
    assert len(td.description) == 10_000 and td.description.endswith("...")
    assert infinium.dumps(td)  # validates


def test_decorator_error_recorded_and_reraised() -> None:
    @trace_agent("n", auto_send=False)
    def boom() -> None:
        raise ValueError("something went wrong")

    with pytest.raises(ValueError, match="something went wrong"):
        boom()
    td = boom.last_trace  # type: ignore[attr-defined]
    (err,) = td.errors
    assert (err.error_type, err.message, err.recoverable) == (
        "ValueError",
        "something went wrong",
        False,
    )
    assert err.stack_trace.startswith("Traceback") and len(err.stack_trace) <= 1000
    assert td.steps[0].error.error_type == "ValueError"
    assert td.steps[0].output_preview is None
    assert td.output_summary is None


def test_methods_staticmethods_classmethods() -> None:
    class Agent:
        factor = 3

        @trace_agent("method", auto_send=False)
        def run(self, x: int) -> int:
            return x * self.factor

        @trace_agent("static", auto_send=False)
        @staticmethod
        def helper(x: int) -> int:
            return x + 1

        @trace_agent("class", auto_send=False)
        @classmethod
        def build(cls, x: int) -> int:
            return x * cls.factor

        @staticmethod
        @trace_agent("static2", auto_send=False)
        def helper2(x: int) -> int:
            return x + 2

    agent = Agent()
    assert agent.run(2) == 6
    assert Agent.helper(1) == 2 and agent.helper(1) == 2
    assert Agent.build(2) == 6
    assert Agent.helper2(1) == 3
    assert Agent.__dict__["helper"].__func__.last_trace.name == "static"
    assert Agent.__dict__["build"].__func__.last_trace.steps[0].description == "Execute build"


def test_trace_agent_on_coroutine_function_is_async() -> None:
    @trace_agent("n", auto_send=False)
    async def work(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert asyncio.iscoroutinefunction(work)
    assert asyncio.run(work(4)) == 8
    assert work.last_trace.output_summary == "8"  # type: ignore[attr-defined]


def test_async_trace_agent_follows_an_awaitable_returned_by_a_sync_callable(
    capture_server: Any, async_client: Any
) -> None:
    """infinium-o2's async_trace_agent awaits what the callable returns: a coroutine
    function behind a plain sync decorator, or an object with ``async def __call__``,
    is traced over the awaited work (scope, duration, result, exception)."""
    import functools

    def logged(func: Any) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        return wrapper

    seen: List[Any] = []

    @async_trace_agent("Wrapped", async_client)
    @logged
    async def wrapped(x: int) -> int:
        await asyncio.sleep(0.02)
        seen.append(get_current_trace_context())
        return x * 2

    @async_trace_agent("Wrapped failure", auto_send=False)
    @logged
    async def failing() -> None:
        await asyncio.sleep(0)
        raise KeyError("missing")

    class Agent:
        async def __call__(self, q: str) -> str:
            seen.append(get_current_trace_context())
            return q.upper()

    agent = async_trace_agent("Callable", auto_send=False)(Agent())

    @async_trace_agent("Plain", auto_send=False)
    def plain(x: int) -> int:
        return x + 1

    # Coroutine functions, as the anchor's wrappers are (frameworks ask this to
    # decide whether to await); a plain function keeps a sync wrapper.
    for async_shaped in (wrapped, failing, agent):
        assert inspect.iscoroutinefunction(async_shaped)
        assert asyncio.iscoroutinefunction(async_shaped)
    assert not inspect.iscoroutinefunction(plain)

    async def main() -> None:
        pending = wrapped(21)
        assert get_current_trace_context() is None  # not in scope until awaited
        assert await pending == 42
        with pytest.raises(KeyError):
            await failing()
        assert await agent("hi") == "HI"
        assert get_current_trace_context() is None

    asyncio.run(main())
    assert plain(1) == 2  # a plain value stays synchronous
    assert plain.last_trace.output_summary == "2"  # type: ignore[attr-defined]

    assert seen[0] is not None and seen[1] is not None
    (body,) = traces(capture_server)
    assert body["name"] == "Wrapped" and body["output_summary"] == "42"
    assert body["duration"] >= 0.02 and body["steps"][0]["duration_ms"] >= 20
    td = failing.last_trace  # type: ignore[attr-defined]
    assert td.errors[0].error_type == "KeyError"
    assert td.steps[0].error.error_type == "KeyError"
    assert agent.last_trace.output_summary == "'HI'"  # type: ignore[attr-defined]
    assert agent.last_trace.steps[0].description == "Execute Agent"  # type: ignore[attr-defined]


# --- decorators: generator functions ----------------------------------------------------------


def test_generator_traced_across_iteration(capture_server: Any, client: Any) -> None:
    """The wrapper is a generator function; the trace runs from the first ``next`` to
    exhaustion, the return value is the result, and the scope is entered for each resume
    and left before each value reaches the consumer."""
    inside: List[Any] = []
    between: List[Any] = []

    @client.trace("Streaming Agent")
    def stream(topic: str, *, n: int = 3) -> Any:
        """Stream findings."""
        for i in range(n):
            time.sleep(0.01)
            inside.append(get_current_trace_context())
            yield f"{topic}-{i}"
        time.sleep(0.01)
        return {"count": n}

    assert inspect.isgeneratorfunction(stream)
    assert stream.__name__ == "stream" and stream.__doc__ == "Stream findings."
    it = stream("rust", n=3)
    assert traces(capture_server) == []  # nothing runs before the first next
    got = []
    for item in it:
        between.append(get_current_trace_context())
        assert traces(capture_server) == []  # not sent before the end
        time.sleep(0.01)  # consumer work: inside the wall time, outside the scope
        got.append(item)
    assert got == ["rust-0", "rust-1", "rust-2"]
    assert between == [None, None, None]
    assert inside[0] is not None and all(c is inside[0] for c in inside)
    assert get_current_trace_context() is None
    (body,) = traces(capture_server)
    assert body["name"] == "Streaming Agent" and body["description"] == "Stream findings."
    assert body["input_summary"] == "{'args': ('rust',), 'kwargs': {'n': 3}}"
    assert body["output_summary"] == "{'count': 3}"
    (step,) = body["steps"]
    assert (step["action"], step["description"]) == ("execution", "Execute stream")
    assert step["output_preview"] == "{'count': 3}"
    assert step["duration_ms"] >= 70 and body["duration"] >= 0.07
    assert "errors" not in body and "error" not in step

    @trace_agent("quiet", auto_send=False)
    def quiet() -> Any:
        yield 1

    assert list(quiet()) == [1]
    td = quiet.last_trace  # type: ignore[attr-defined]
    assert td.output_summary is None and td.steps[0].output_preview == "None"
    pending = quiet()
    pending.close()  # closed before it started: no trace
    del pending
    assert quiet.last_trace is td  # type: ignore[attr-defined]


def test_generator_exception_recorded_and_reraised(capture_server: Any, client: Any) -> None:
    @trace_agent("Failing stream", client)
    def failing() -> Any:
        yield 1
        raise ValueError("broke mid-stream")

    got = []
    with pytest.raises(ValueError, match="broke mid-stream"):
        for item in failing():
            got.append(item)
    assert got == [1]
    (body,) = traces(capture_server)
    assert body["errors"][0]["error_type"] == "ValueError"
    assert body["errors"][0]["message"] == "broke mid-stream"
    assert "failing" in body["errors"][0]["stack_trace"]
    assert body["steps"][0]["error"]["error_type"] == "ValueError"
    assert "output_summary" not in body and "output_preview" not in body["steps"][0]


def test_generator_closed_early_is_not_an_error(capture_server: Any, client: Any) -> None:
    """break, close() and garbage collection finish and send the trace (no error); the
    inner generator's cleanup runs inside the trace scope."""
    cleanup: List[Any] = []

    @client.trace("Endless")
    def endless(tag: str) -> Any:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            cleanup.append((tag, get_current_trace_context()))

    for i in endless("break"):
        if i == 2:
            break
    assert len(traces(capture_server)) == 1  # the loop dropped it: closed at once

    it = endless("close")
    assert next(it) == 0 and next(it) == 1
    it.close()
    assert len(traces(capture_server)) == 2
    it.close()  # closing again does nothing
    assert len(traces(capture_server)) == 2

    it = endless("gc")
    next(it)
    del it
    gc.collect()
    bodies = traces(capture_server)
    assert len(bodies) == 3
    for body in bodies:
        assert "errors" not in body and "output_summary" not in body
        (step,) = body["steps"]
        assert "error" not in step and "output_preview" not in step
        assert isinstance(step["duration_ms"], int)
    assert [tag for tag, _ in cleanup] == ["break", "close", "gc"]
    assert all(ctx is not None for _, ctx in cleanup)
    assert get_current_trace_context() is None


def test_generator_cleanup_error_is_recorded() -> None:
    @trace_agent("stubborn", auto_send=False)
    def stubborn() -> Any:
        try:
            yield 1
        finally:
            raise OSError("cleanup failed")

    it = stubborn()
    next(it)
    with pytest.raises(OSError, match="cleanup failed"):
        it.close()
    td = stubborn.last_trace  # type: ignore[attr-defined]
    assert td.errors[0].error_type == "OSError"
    assert td.steps[0].error.error_type == "OSError"


def test_generator_send_throw_and_return_delegated() -> None:
    seen: List[Any] = []

    @trace_agent("echo", auto_send=False)
    def echo() -> Any:
        total = 0
        while True:
            try:
                value = yield total
            except KeyError as exc:
                seen.append(("caught", exc.args[0], get_current_trace_context() is not None))
                value = 100
            if value is None:
                return total
            total += value

    it = echo()
    assert next(it) == 0
    assert it.send(5) == 5
    assert it.send(2) == 7
    assert it.throw(KeyError("k")) == 107
    with pytest.raises(StopIteration) as stop:
        it.send(None)
    assert stop.value.value == 107
    assert seen == [("caught", "k", True)]
    td = echo.last_trace  # type: ignore[attr-defined]
    assert td.output_summary == "107" and td.errors is None
    assert td.input_summary == "{'args': (), 'kwargs': {}}"

    def outer() -> Any:
        result = yield from echo()
        return ("outer", result)

    it = outer()
    next(it)
    it.send(3)
    with pytest.raises(StopIteration) as stop:
        it.send(None)
    assert stop.value.value == ("outer", 3)

    # an exception thrown in and not handled is the generator's error
    it = echo()
    next(it)
    with pytest.raises(ZeroDivisionError):
        it.throw(ZeroDivisionError("thrown in"))
    td = echo.last_trace  # type: ignore[attr-defined]
    assert td.errors[0].error_type == "ZeroDivisionError"
    assert td.errors[0].message == "thrown in"
    with pytest.raises(StopIteration):
        next(it)


def test_nested_and_consumer_scopes_with_generators() -> None:
    """A decorated call inside the generator body makes its own trace; a traced consumer
    keeps its own scope between items."""
    seen: Dict[str, Any] = {}

    @trace_agent("inner", auto_send=False)
    def inner() -> int:
        seen["inner"] = get_current_trace_context()
        return 1

    @trace_agent("gen", auto_send=False)
    def gen() -> Any:
        seen["gen"] = get_current_trace_context()
        yield inner()
        seen["gen_after"] = get_current_trace_context()
        yield 2

    @trace_agent("consumer", auto_send=False)
    def consumer() -> List[int]:
        seen["consumer"] = get_current_trace_context()
        out = []
        for item in gen():
            seen.setdefault("between", []).append(get_current_trace_context())
            out.append(item)
        return out

    assert consumer() == [1, 2]
    assert seen["consumer"] is not None and seen["gen"] is not None
    assert seen["gen"] is seen["gen_after"] and seen["gen"] is not seen["consumer"]
    assert seen["inner"] is not None and seen["inner"] is not seen["gen"]
    assert seen["between"] == [seen["consumer"], seen["consumer"]]
    assert gen.last_trace.output_summary is None  # type: ignore[attr-defined]
    assert consumer.last_trace.output_summary == "[1, 2]"  # type: ignore[attr-defined]
    assert inner.last_trace.output_summary == "1"  # type: ignore[attr-defined]


def test_every_decorator_accepts_generator_functions(client: Any) -> None:
    """trace_agent, async_trace_agent and client.trace keep the kind of the function
    (infinium-o2's async_trace_agent made a sync generator a failing coroutine), also
    through staticmethod/classmethod."""

    def gen(n: int) -> Any:
        yield from range(n)
        return "end"

    async def agen(n: int) -> Any:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def collect(it: Any) -> List[Any]:
        return [x async for x in it]

    for decorate in (
        trace_agent("n", auto_send=False),
        async_trace_agent("n", auto_send=False),
        client.trace("n", auto_send=False),
    ):
        g = decorate(gen)
        ag = decorate(agen)
        assert inspect.isgeneratorfunction(g) and not inspect.isasyncgenfunction(g)
        assert inspect.isasyncgenfunction(ag) and not inspect.isgeneratorfunction(ag)
        assert list(g(3)) == [0, 1, 2]
        assert g.last_trace.output_summary == "'end'"  # type: ignore[attr-defined]
        assert asyncio.run(collect(ag(3))) == [0, 1, 2]
        assert ag.last_trace.steps[0].description == "Execute agen"  # type: ignore[attr-defined]

    class Agent:
        @trace_agent("static", auto_send=False)
        @staticmethod
        def items(n: int) -> Any:
            yield from range(n)

        @trace_agent("method", auto_send=False)
        def doubled(self, n: int) -> Any:
            for i in range(n):
                yield 2 * i

    assert list(Agent.items(2)) == [0, 1]
    assert list(Agent().doubled(2)) == [0, 2]
    assert Agent.__dict__["items"].__func__.last_trace.name == "static"


def test_async_generator_traced_across_iteration(capture_server: Any, async_client: Any) -> None:
    inside: List[Any] = []
    between: List[Any] = []
    cleanup: List[Any] = []

    @async_client.trace("Async stream")
    async def stream(n: int) -> Any:
        try:
            for i in range(n):
                await asyncio.sleep(0.01)
                inside.append(get_current_trace_context())
                yield i
        finally:
            cleanup.append(get_current_trace_context())

    @async_trace_agent("Async echo", async_client)
    async def echo() -> Any:
        total = 0
        while True:
            try:
                value = yield total
            except KeyError:
                value = 100
            if value is None:
                raise RuntimeError(f"stopped at {total}")
            total += value

    async def main() -> None:
        got = []
        async for item in stream(3):
            between.append(get_current_trace_context())
            got.append(item)
        assert got == [0, 1, 2]
        assert between == [None, None, None]
        assert len(traces(capture_server)) == 1

        it = stream(100)
        assert await it.__anext__() == 0
        assert await it.__anext__() == 1
        assert len(traces(capture_server)) == 1
        await it.aclose()
        assert len(traces(capture_server)) == 2

        e = echo()
        assert await e.asend(None) == 0
        assert await e.asend(4) == 4
        assert await e.athrow(KeyError("k")) == 104
        with pytest.raises(RuntimeError, match="stopped at 104"):
            await e.asend(None)

    asyncio.run(main())
    assert inside[0] is not None and inside[:3] == [inside[0]] * 3
    assert len(cleanup) == 2 and all(ctx is not None for ctx in cleanup)
    full, closed, failed = traces(capture_server)
    assert full["name"] == "Async stream"
    assert full["input_summary"] == "{'args': (3,), 'kwargs': {}}"
    assert full["steps"][0]["duration_ms"] >= 30 and full["duration"] >= 0.03
    assert full["steps"][0]["output_preview"] == "None" and "output_summary" not in full
    assert "errors" not in full and "errors" not in closed
    assert "output_preview" not in closed["steps"][0]
    assert closed["input_summary"] == "{'args': (100,), 'kwargs': {}}"
    assert failed["name"] == "Async echo"
    assert failed["errors"][0]["error_type"] == "RuntimeError"
    assert failed["steps"][0]["error"]["message"] == "stopped at 104"


def test_generator_send_failure_logged_not_raised(
    capture_server: Any, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    Reply = reply_cls(capture_server)
    capture_server.script(Reply(500, {"error": "down"}))

    @client.trace("Flaky stream")
    def work() -> Any:
        yield "ok"

    with caplog.at_level(logging.WARNING, logger="infinium.tracing"):
        assert list(work()) == ["ok"]
    assert any("Failed to auto-send trace for Flaky stream" in r.message for r in caplog.records)


# --- context scoping -------------------------------------------------------------------------


def test_context_is_scoped_and_restored() -> None:
    seen: Dict[str, Any] = {}

    @trace_agent("inner", auto_send=False)
    def inner() -> None:
        seen["inner"] = get_current_trace_context()

    @trace_agent("outer", auto_send=False)
    def outer() -> None:
        seen["outer_before"] = get_current_trace_context()
        inner()
        seen["outer_after"] = get_current_trace_context()

    assert get_current_trace_context() is None
    outer()
    assert get_current_trace_context() is None
    assert seen["outer_before"] is not None and seen["outer_before"] is seen["outer_after"]
    assert seen["inner"] is not None and seen["inner"] is not seen["outer_before"]


def test_gather_and_copy_context_threads_record_into_right_trace() -> None:
    @async_trace_agent("task", auto_send=False)
    async def task(tag: str) -> str:
        for i in range(3):
            ctx = get_current_trace_context()
            assert ctx is not None
            _fake_capture(ctx, tag, i)
            await asyncio.sleep(0.001)
        return tag

    async def main() -> None:
        await asyncio.gather(task("a"), task("b"), task("c"))

    asyncio.run(main())
    # each call builds its own trace; check the last one only has its own calls
    td = task.last_trace  # type: ignore[attr-defined]
    models = {s.description for s in td.steps[1:]}
    assert len(models) == 1 and td.llm_usage.api_calls_count == 3

    @trace_agent("threads", auto_send=False)
    def with_threads() -> None:
        ctx = get_current_trace_context()
        assert ctx is not None
        workers = [
            threading.Thread(target=contextvars.copy_context().run, args=(_thread_capture, f"t{i}"))
            for i in range(4)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    with_threads()
    td = with_threads.last_trace  # type: ignore[attr-defined]
    assert sorted(s.description for s in td.steps[1:]) == [f"fake/t{i}-0" for i in range(4)]


def _fake_capture(ctx: Any, tag: str, i: int) -> None:
    from infinium._context import CapturedLlmCall

    ctx.calls.append(CapturedLlmCall(provider="fake", model=tag, prompt_tokens=1, latency_ns=10**6))


def _thread_capture(tag: str) -> None:
    from infinium._context import CapturedLlmCall

    ctx = get_current_trace_context()
    assert ctx is not None
    ctx.calls.append(CapturedLlmCall(provider="fake", model=f"{tag}-0", latency_ns=2 * 10**6))


def test_captured_llm_call_dataclass_is_infinium_o2s() -> None:
    """Fields, asdict, repr and == as infinium-o2's CapturedLlmCall; the wrappers'
    bookkeeping (stream state, OTel start time) stays out of them."""
    from infinium.integrations import CapturedLlmCall

    names = [
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "temperature",
        "latency_ns",
        "error_type",
        "error_message",
        "input_preview",
        "output_preview",
    ]
    assert [f.name for f in dataclasses.fields(CapturedLlmCall)] == names
    call = CapturedLlmCall("openai", "gpt-4o", 10, 5, 0.2, 1_500_000, start_time_ns=7)
    assert list(dataclasses.asdict(call)) == names
    assert repr(call) == (
        "CapturedLlmCall(provider='openai', model='gpt-4o', prompt_tokens=10, "
        "completion_tokens=5, temperature=0.2, latency_ns=1500000, error_type=None, "
        "error_message=None, input_preview=None, output_preview=None)"
    )
    assert call == CapturedLlmCall("openai", "gpt-4o", 10, 5, 0.2, 1_500_000)
    assert call.start_time_ns == 7 and CapturedLlmCall("p", "m").start_time_ns is None
    assert CapturedLlmCall("p", "m")._open is False


def test_get_current_trace_context_is_a_plain_function() -> None:
    """infinium-o2's is a ``def``: introspection (signature, docs) works on it."""
    import inspect

    from infinium.integrations import get_current_trace_context as public

    assert public is get_current_trace_context
    assert inspect.isfunction(public)
    assert str(inspect.signature(public)) == "() -> 'Optional[TraceContext]'"
    assert public() is None


def test_tracing_module_star_import_and_helpers_as_infinium_o2() -> None:
    """infinium-o2's tracing module has no __all__: a star import gave the types it
    uses and its helpers, and ``from infinium.tracing import truncate_string`` works."""
    ns: Dict[str, Any] = {}
    exec("from infinium.tracing import *", ns)
    for name in (
        "TraceBuilder",
        "StepContext",
        "trace_agent",
        "async_trace_agent",
        "TaskData",
        "ExecutionStep",
        "ErrorDetail",
        "ToolCall",
        "LlmCall",
        "ExpectedOutcome",
        "EnvironmentContext",
        "LlmUsage",
        "get_current_iso_datetime",
        "truncate_string",
    ):
        assert name in ns, name
    assert ns["ErrorDetail"] is ErrorDetail
    assert ns["truncate_string"]("abcdefghij", 6) == "abc..."
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ns["get_current_iso_datetime"]())


def test_aggregate_usage_rules() -> None:
    from infinium._context import CapturedLlmCall

    @trace_agent("agg", auto_send=False)
    def run(calls: List[CapturedLlmCall], preset: bool = False) -> None:
        ctx = get_current_trace_context()
        assert ctx is not None
        ctx.calls.extend(calls)

    run(
        [
            CapturedLlmCall("openai", "gpt-4o", 10, 5, latency_ns=3_000_000),
            CapturedLlmCall("openai", "gpt-4o", 7, None, latency_ns=None),
        ]
    )
    u = run.last_trace.llm_usage  # type: ignore[attr-defined]
    assert (u.model, u.provider) == ("gpt-4o", "openai")
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (17, 5, 22)
    assert (u.api_calls_count, u.total_latency_ms) == (2, 3)
    run([CapturedLlmCall("openai", "gpt-4o"), CapturedLlmCall("anthropic", "claude")])
    u = run.last_trace.llm_usage  # type: ignore[attr-defined]
    assert (u.model, u.provider) == ("multiple", "multiple")
    assert u.prompt_tokens is None and u.total_tokens is None and u.total_latency_ms is None
    run([CapturedLlmCall("openai", "gpt-4o"), CapturedLlmCall("openai", "gpt-4o-mini")])
    u = run.last_trace.llm_usage  # type: ignore[attr-defined]
    assert (u.model, u.provider) == ("multiple", "openai")
    run([CapturedLlmCall("openai", "x", error_type="APIError", error_message="bad")])
    td = run.last_trace  # type: ignore[attr-defined]
    assert td.steps[1].error == ErrorDetail("APIError", "bad", recoverable=False)
    assert td.steps[1].duration_ms is None


def test_record_prompt_fetch_only_inside_scope() -> None:
    prompt = PromptContent("11111111-2222-4333-8444-555555555555", "greeting", 3, "Hi", "t")
    record_prompt_fetch(prompt, {"name": "x"})  # outside: nothing happens

    @trace_agent("p", auto_send=False)
    def fetch() -> None:
        record_prompt_fetch(prompt, {"name": "x", "day": "y"})
        record_prompt_fetch(prompt, None)

    fetch()
    ps = fetch.last_trace._prompt_studio  # type: ignore[attr-defined]
    assert [p["variables_used"] for p in ps["prompts_used"]] == [["name", "day"], None]
    assert ps["prompts_used"][0]["source"] == "prompt_studio"
    assert ps["prompts_used"][0]["version"] == 3

    @trace_agent("p", auto_send=False)
    def no_fetch() -> None:
        pass

    no_fetch()
    td = no_fetch.last_trace  # type: ignore[attr-defined]
    # The class-level default (as the anchor's getattr(..., "_prompt_studio", None)
    # sees it), not a field: not in asdict(), not on the wire.
    assert td._prompt_studio is None and "_prompt_studio" not in vars(td)
    assert "_prompt_studio" not in dataclasses.asdict(td)
    assert b"prompt_studio" not in infinium.dumps(td)


# --- decorators: sending through the clients --------------------------------------------------


def test_client_trace_sends_to_api(capture_server: Any, client: Any, agent_id: str) -> None:
    @client.trace("Email Classifier")
    def classify(body: str) -> str:
        """Classify an email."""
        return "spam"

    assert classify("hello") == "spam"
    (req,) = [r for r in capture_server.requests if r.path.endswith("/trace")]
    assert req.method == "POST" and req.path == f"/api/v1/agents/{agent_id}/trace"
    body = req.json()
    assert list(body)[:4] == ["name", "description", "current_datetime", "duration"]
    assert body["name"] == "Email Classifier"
    assert body["description"] == "Classify an email."
    assert body["input_summary"] == "{'args': ('hello',), 'kwargs': {}}"
    assert body["output_summary"] == "'spam'"
    assert body["steps"] == [
        {
            "step_number": 1,
            "action": "execution",
            "description": "Execute classify",
            "duration_ms": body["steps"][0]["duration_ms"],
            "output_preview": "'spam'",
        }
    ]
    assert body["environment"] == {
        "python_version": PY_VERSION,
        "sdk_version": infinium.__version__,
    }
    assert "errors" not in body and "llm_usage" not in body


def test_error_trace_still_sent_then_reraised(capture_server: Any, client: Any) -> None:
    @trace_agent("Risky", client)
    def risky() -> None:
        raise ValueError("something went wrong")

    with pytest.raises(ValueError):
        risky()
    (body,) = traces(capture_server)
    assert body["errors"][0]["error_type"] == "ValueError"
    assert body["errors"][0]["message"] == "something went wrong"
    assert body["steps"][0]["error"]["error_type"] == "ValueError"
    assert "output_summary" not in body


def test_auto_send_false_and_no_client_send_nothing(capture_server: Any, client: Any) -> None:
    @client.trace("Draft", auto_send=False)
    def draft() -> int:
        return 1

    @trace_agent("No client")
    def orphan() -> int:
        return 2

    assert draft() == 1 and orphan() == 2
    assert traces(capture_server) == []
    assert draft.last_trace.name == "Draft"  # type: ignore[attr-defined]


def test_send_failure_logged_not_raised(
    capture_server: Any, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    Reply = reply_cls(capture_server)

    capture_server.script(Reply(500, {"error": "down"}))

    @client.trace("Flaky backend")
    def work() -> str:
        return "ok"

    with caplog.at_level(logging.WARNING, logger="infinium.tracing"):
        assert work() == "ok"
    assert any("Failed to auto-send trace for Flaky backend" in r.message for r in caplog.records)


def test_async_client_trace(capture_server: Any, async_client: Any) -> None:
    @async_client.trace("Async Classifier")
    async def classify(x: str) -> str:
        await asyncio.sleep(0)
        return x[::-1]

    @async_trace_agent("Explicit async", async_client)
    async def moderate(x: str) -> str:
        return x

    async def main() -> None:
        assert await classify("abc") == "cba"
        assert await moderate("m") == "m"

    asyncio.run(main())
    names = [b["name"] for b in traces(capture_server)]
    assert names == ["Async Classifier", "Explicit async"]


def test_async_client_decorating_sync_function(capture_server: Any, async_client: Any) -> None:
    @async_client.trace("sync under async client")
    def plain() -> int:
        return 5

    assert plain() == 5  # no loop running: the send completes before returning
    assert [b["name"] for b in traces(capture_server)] == ["sync under async client"]

    async def main() -> None:
        assert plain() == 5  # loop running: the send is scheduled on it
        # The scheduled send completes while the loop keeps running.
        deadline = time.monotonic() + 10
        while len(traces(capture_server)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert len(traces(capture_server)) == 2


def test_gather_of_decorated_coroutines_sends_one_trace_each(
    capture_server: Any, async_client: Any
) -> None:
    @async_client.trace("fan-out")
    async def one(i: int) -> int:
        ctx = get_current_trace_context()
        assert ctx is not None
        _fake_capture(ctx, f"m{i}", 0)
        await asyncio.sleep(0.001)
        return i

    async def main() -> List[int]:
        return list(await asyncio.gather(*(one(i) for i in range(5))))

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    bodies = traces(capture_server)
    assert len(bodies) == 5
    for body in bodies:
        i = body["input_summary"].split("(")[1].split(",")[0]
        assert [s["description"] for s in body["steps"][1:]] == [f"fake/m{i}"]


def test_get_prompt_inside_trace_adds_prompt_studio(capture_server: Any, client: Any) -> None:
    Reply = reply_cls(capture_server)

    prompt_id = "0b7c6a1e-2f3d-4e5a-9b8c-7d6e5f4a3b2c"
    capture_server.script(
        Reply(
            200,
            {
                "promptId": prompt_id,
                "name": "greeting",
                "version": 4,
                "content": "Hello {{name}}",
                "createdAt": "2026-01-01T00:00:00Z",
            },
        )
    )

    @client.trace("uses prompt")
    def agent() -> str:
        p = client.get_prompt(prompt_id, "prompt-key-123", variables={"name": "Ada"})
        return str(p.rendered_content)

    assert agent() == "Hello Ada"
    (body,) = traces(capture_server)
    assert list(body)[-2:] == ["environment", "prompt_studio"]
    (used,) = body["prompt_studio"]["prompts_used"]
    assert used["prompt_id"] == prompt_id and used["prompt_name"] == "greeting"
    assert used["version"] == 4 and used["source"] == "prompt_studio"
    assert used["variables_used"] == ["name"]
    assert re.match(r"^\d{4}-\d\d-\d\dT.*Z$", used["fetched_at"])
