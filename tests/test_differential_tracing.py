"""Differential test: one decorated agent script (OpenAI calls, one streamed, and
Anthropic calls, one streamed) run under the anchor SDK (infinium-o2 1.2.0) and under
ours, against the same fake provider and the same capture server; the trace bodies
received must be identical once timings, timestamps and versions are masked.

The anchor interpreter comes from ``INFINIUM_ANCHOR_PYTHON`` or the conftest's cached
venv (created with openai/anthropic on first use); the test skips with the reason when
neither is available (and fails in CI).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_provider import FakeProvider

from .conftest import run_script


def client_prelude(cls: str = "InfiniumClient") -> str:
    """The start of every script here: ``env``, and a ``client`` of class ``cls``
    posting to the capture server, without retries or rate limiting."""
    return f"""
import os
from infinium import {cls}

env = os.environ
client = {cls}(
    agent_id=env["DIFF_AGENT_ID"], agent_secret=env["DIFF_AGENT_SECRET"],
    base_url=env["DIFF_CAPTURE_URL"], max_retries=0, enable_rate_limiting=False,
)
"""


SCRIPT = (
    client_prelude()
    + r'''
import os
from openai import OpenAI
from anthropic import Anthropic
from infinium import InfiniumClient, TraceBuilder
from infinium.integrations import watch

oai = watch(OpenAI(base_url=env["DIFF_OPENAI_URL"], api_key="x", max_retries=0),
            capture_content=True)
claude = watch(Anthropic(base_url=env["DIFF_ANTHROPIC_URL"], api_key="x", max_retries=0),
               capture_content=True)
plain = watch(OpenAI(base_url=env["DIFF_OPENAI_URL"], api_key="x", max_retries=0))


@client.trace("Differential Agent")
def agent(topic, *, depth=2):
    """Research a topic with two providers."""
    first = oai.chat.completions.create(
        model="gpt-4o", temperature=0.2,
        messages=[{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": "Summarise " + topic}],
    )
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream facts about " + topic}],
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    msg = claude.messages.create(
        model="claude-3-5-sonnet", max_tokens=64, system="Be precise.",
        messages=[{"role": "user", "content": "Critique " + topic}],
    )
    with claude.messages.create(
        model="claude-3-5-haiku", max_tokens=64, stream=True,
        messages=[{"role": "user", "content": "Stream a verdict"}],
    ) as events:
        for _ in events:
            pass
    plain.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    return {"first": first.choices[0].message.content, "streamed": streamed,
            "claude": msg.content[0].text, "depth": depth}


@client.trace("Failing Agent", description="Fails on purpose")
def failing():
    oai.chat.completions.create(model="error-500", messages=[{"role": "user", "content": "x"}])


@client.trace("Quiet Agent")
def quiet(n):
    return None


agent("rust", depth=3)
try:
    failing()
except Exception as exc:
    print("raised", type(exc).__name__)
quiet(1)

trace = TraceBuilder("Manual", "Built by hand")
trace.set_input_summary("in").set_expected_outcome("objective", constraints=["c"])
with trace.step("tool_use", "search") as step:
    step.set_output("o" * 2000).record_tool_call("search", input_summary="i" * 400)
try:
    with trace.step("llm", "bad step"):
        raise KeyError("k")
except KeyError:
    pass
client.send_task_data(trace.build())
client.close()
print("done")
'''
)

MASK_KEYS = {
    "current_datetime",
    "duration",
    "duration_ms",
    "latency_ms",
    "total_latency_ms",
    "sdk_version",
    "python_version",
    "stack_trace",
    "fetched_at",
}


def mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<masked>" if k in MASK_KEYS else mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def run_under(
    python: str, script: str, server: Any, agent_id: str, secret: str, **env: str
) -> Tuple[str, List[Dict[str, Any]]]:
    """Run ``script`` with ``python`` against the capture ``server``: its output
    and the trace bodies it posted."""
    start = len(server.requests)
    out = run_script(
        python,
        script,
        env={
            "DIFF_AGENT_ID": agent_id,
            "DIFF_AGENT_SECRET": secret,
            "DIFF_CAPTURE_URL": server.base_url,
            **env,
        },
    )
    bodies = [
        r.json()
        for r in server.requests[start:]
        if r.method == "POST" and r.path.endswith("/trace")
    ]
    return out, bodies


Run = Tuple[str, List[Dict[str, Any]]]


def run_both(
    anchor_python: str, script: str, server: Any, agent_id: str, secret: str, **env: str
) -> Tuple[Run, Run]:
    """``run_under`` the anchor's interpreter, then ours: (theirs, ours)."""
    theirs = run_under(anchor_python, script, server, agent_id, secret, **env)
    ours = run_under(sys.executable, script, server, agent_id, secret, **env)
    return theirs, ours


def test_same_traces_as_anchor(
    anchor_python: str, capture_server: Any, agent_id: str, agent_secret: str
) -> None:
    with FakeProvider() as fake:
        urls = {
            "DIFF_OPENAI_URL": fake.openai_base_url,
            "DIFF_ANTHROPIC_URL": fake.anthropic_base_url,
        }
        (theirs_out, theirs), (ours_out, ours) = run_both(
            anchor_python, SCRIPT, capture_server, agent_id, agent_secret, **urls
        )
    for out in (theirs_out, ours_out):
        assert "raised InternalServerError" in out and "done" in out
    assert len(theirs) == 4
    assert len(ours) == len(theirs)
    for a, b in zip(theirs, ours):
        # json.dumps keeps key order, so order differences fail too
        assert json.dumps(mask(b), indent=1) == json.dumps(mask(a), indent=1)
    # the masked fields are present on both sides with the same shapes
    agent_a, agent_b = theirs[0], ours[0]
    assert [type(s.get("duration_ms")) for s in agent_a["steps"]] == [
        type(s.get("duration_ms")) for s in agent_b["steps"]
    ]
    assert agent_b["llm_usage"]["model"] == "multiple"
    assert [s["description"] for s in agent_b["steps"]] == [
        "Execute agent",
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "anthropic/claude-3-5-sonnet",
        "anthropic/claude-3-5-haiku",
        "openai/gpt-4o",
    ]


# --- the public tracing surface, without provider packages --------------------------------

SURFACE_SCRIPT = (
    client_prelude("AsyncInfiniumClient")
    + r'''
import asyncio, dataclasses, functools, inspect, os
from infinium import AsyncInfiniumClient, async_trace_agent
from infinium.integrations import CapturedLlmCall, get_current_trace_context



def logged(func):
    """A plain (sync) decorator around a coroutine function, as users write them."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    return wrapper


@async_trace_agent("Wrapped Agent", client)
@logged
async def wrapped(x):
    """Awaited through a sync wrapper."""
    await asyncio.sleep(0.02)
    get_current_trace_context().calls.append(
        CapturedLlmCall("openai", "gpt-4o", prompt_tokens=3, completion_tokens=4)
    )
    return {"doubled": x * 2}


@async_trace_agent("Wrapped Failure", client)
@logged
async def wrapped_failure():
    await asyncio.sleep(0)
    raise KeyError("missing")


async def main():
    print("result", await wrapped(21))
    try:
        await wrapped_failure()
    except KeyError as exc:
        print("raised", repr(exc))
    print("outside", get_current_trace_context())
    await client.close()

asyncio.run(main())

call = CapturedLlmCall("openai", "gpt-4o", 10, 5, 0.2, 1_500_000)
print("fields", [f.name for f in dataclasses.fields(CapturedLlmCall)])
print("asdict", dataclasses.asdict(call))
print("repr", repr(call))
print("eq", call == CapturedLlmCall("openai", "gpt-4o", 10, 5, 0.2, 1_500_000))
print("signature", inspect.signature(get_current_trace_context).parameters)

ns = {}
exec("from infinium.tracing import *", ns)
print("star", sorted(n for n in ns if n in (
    "TraceBuilder", "StepContext", "trace_agent", "async_trace_agent", "TaskData",
    "ExecutionStep", "ErrorDetail", "ToolCall", "LlmCall", "ExpectedOutcome",
    "EnvironmentContext", "LlmUsage", "get_current_iso_datetime", "truncate_string",
)))
from infinium.tracing import get_current_iso_datetime, truncate_string
print("truncate", truncate_string("abcdefghij", 6), truncate_string("abc", 2, suffix="!"))
print("done")
'''
)


def test_public_tracing_surface_as_anchor(
    anchor_python: str, capture_server: Any, agent_id: str, agent_secret: str
) -> None:
    """async_trace_agent on a sync wrapper of a coroutine function traces the awaited
    call (scope, duration, result, error); CapturedLlmCall's dataclass fields, asdict,
    repr and eq; get_current_trace_context's signature; what ``from infinium.tracing
    import *`` provides."""
    (theirs_out, theirs), (ours_out, ours) = run_both(
        anchor_python, SURFACE_SCRIPT, capture_server, agent_id, agent_secret
    )
    assert "done" in theirs_out
    assert ours_out == theirs_out
    assert len(theirs) == 2
    assert [json.dumps(mask(b), indent=1) for b in ours] == [
        json.dumps(mask(a), indent=1) for a in theirs
    ]
    # the awaited call is inside the trace: its duration covers the sleep
    assert ours[0]["duration"] >= 0.02 and ours[0]["steps"][0]["duration_ms"] >= 20
    assert ours[0]["output_summary"] == "{'doubled': 42}"
    assert ours[1]["errors"][0]["error_type"] == "KeyError"


# --- generator functions under the decorators -------------------------------------------

GENERATOR_SCRIPT = (
    client_prelude()
    + r"""
import asyncio, os
from infinium import InfiniumClient, trace_agent



@trace_agent("Generator Agent", client)
def numbers(n, *, step=1):
    "Yield numbers."
    total = 0
    for i in range(0, n, step):
        got = yield i
        if got is not None:
            total += got
    return total


@client.trace("Async Generator Agent")
async def letters(word):
    for ch in word:
        await asyncio.sleep(0)
        yield ch


def relay():
    result = yield from numbers(4)
    return result


async def collect():
    return [ch async for ch in letters("abc")]


print("list", list(numbers(5)))
print("step", list(numbers(6, step=2)))
it = numbers(3)
print("send", next(it), it.send(10), it.send(20))
try:
    it.send(5)
except StopIteration as stop:
    print("return", stop.value)
it = relay()
next(it)
for v in (1, 2, 3):
    it.send(v)
try:
    next(it)
except StopIteration as stop:
    print("yield from", stop.value)
for i in numbers(100):
    if i == 2:
        break
print("async", asyncio.run(collect()))
client.close()
print("done")
"""
)


def test_generators_iterate_as_under_anchor(
    anchor_python: str, capture_server: Any, agent_id: str, agent_secret: str
) -> None:
    """A generator (and an async generator) function under the decorators iterates as
    under infinium-o2: same values, send(), return value (also through ``yield from``),
    early break; one trace per call with the same name, description and input summary.
    infinium-o2 traces only the creation of the generator (its output is the generator's
    repr); ours traces the iteration (its output is the return value)."""
    (theirs_out, theirs), (ours_out, ours) = run_both(
        anchor_python, GENERATOR_SCRIPT, capture_server, agent_id, agent_secret
    )
    assert theirs_out.splitlines() == [
        "list [0, 1, 2, 3, 4]",
        "step [0, 2, 4]",
        "send 0 1 2",
        "return 35",
        "yield from 6",
        "async ['a', 'b', 'c']",
        "done",
    ]
    assert ours_out == theirs_out

    def key(b: Dict[str, Any]) -> Any:
        return (b["name"], b["description"], b["input_summary"])

    assert len(theirs) == 6
    # The anchor sends when the generator is created, ours when it finishes: the
    # break case and yield from's inner generator come in another order.
    assert sorted(map(key, ours)) == sorted(map(key, theirs))
    assert all(b["output_summary"].startswith("<") for b in theirs if "output_summary" in b)
    assert {b["input_summary"]: b.get("output_summary") for b in ours} == {
        "{'args': (5,), 'kwargs': {}}": "0",
        "{'args': (6,), 'kwargs': {'step': 2}}": "0",
        "{'args': (3,), 'kwargs': {}}": "35",
        "{'args': (4,), 'kwargs': {}}": "6",
        "{'args': (100,), 'kwargs': {}}": None,  # closed early: no result
        "{'args': ('abc',), 'kwargs': {}}": None,
    }
    assert all("errors" not in b for b in ours + theirs)


# --- a frozen clock (freezegun), as users' snapshot tests freeze it ------------------------

FROZEN_SCRIPT = (
    client_prelude()
    + r"""
import os
from freezegun import freeze_time
from infinium import InfiniumClient, TraceBuilder, trace_agent
from infinium.utils import get_current_iso_datetime



@trace_agent("Frozen Agent", client)
def agent(x):
    return x + 1


for when in ("2024-05-06 07:08:09", "2031-12-31 23:59:59.250001"):
    with freeze_time(when):
        print("now", get_current_iso_datetime(), InfiniumClient.get_current_iso_datetime())
        print("created", InfiniumClient.create_task_data("n", "d", 1.0).current_datetime)
        agent(1)
        trace = TraceBuilder("Manual", "Built under a frozen clock")
        with trace.step("work", "one step"):
            pass
        client.send_task_data(trace.build())
        client.send_task("Fields", "Sent as fields", 2.5)

# The anchor's timestamps all come from infinium.utils.get_current_iso_datetime,
# so patching that module's datetime reaches every one of them.
from datetime import datetime as real_datetime
from unittest import mock


class Fixed(real_datetime):
    @classmethod
    def now(cls, tz=None):
        return real_datetime(2030, 1, 2, 3, 4, 5, 600, tzinfo=tz)


with mock.patch("infinium.utils.datetime", Fixed):
    print("patched", get_current_iso_datetime())
    agent(2)
    client.send_task_data(TraceBuilder("Manual", "Patched datetime").build())
    client.send_task("Fields", "Patched datetime", 1.0)
client.close()
print("done")
"""
)


def test_a_frozen_clock_stamps_traces_as_under_anchor(
    anchor_python: str, capture_server: Any, agent_id: str, agent_secret: str
) -> None:
    """Under freezegun, every timestamp the SDK makes (``get_current_iso_datetime``,
    ``create_task_data``, the decorators, ``TraceBuilder``, ``send_task``) is the frozen
    time in the anchor's text, and durations are the frozen clock's zero: the bodies
    are identical, timestamps and durations unmasked."""
    (theirs_out, theirs), (ours_out, ours) = run_both(
        anchor_python, FROZEN_SCRIPT, capture_server, agent_id, agent_secret
    )
    assert theirs_out.splitlines() == [
        "now 2024-05-06T07:08:09Z 2024-05-06T07:08:09Z",
        "created 2024-05-06T07:08:09Z",
        "now 2031-12-31T23:59:59.250001Z 2031-12-31T23:59:59.250001Z",
        "created 2031-12-31T23:59:59.250001Z",
        "patched 2030-01-02T03:04:05.000600Z",
        "done",
    ]
    assert ours_out == theirs_out
    assert len(theirs) == 9

    def versions_masked(body: Dict[str, Any]) -> str:
        env = body.get("environment") or {}
        for k in ("sdk_version", "python_version"):
            if k in env:
                env[k] = "<masked>"
        return json.dumps(body, indent=1)

    # Frozen: identical bodies, durations included. Patched datetime: the
    # clock is real, so only the timestamps are compared.
    assert [versions_masked(b) for b in ours[:6]] == [versions_masked(a) for a in theirs[:6]]
    assert [b["current_datetime"] for b in ours] == [a["current_datetime"] for a in theirs]
    assert [b["current_datetime"] for b in ours] == (
        3 * ["2024-05-06T07:08:09Z"]
        + 3 * ["2031-12-31T23:59:59.250001Z"]
        + 3 * ["2030-01-02T03:04:05.000600Z"]
    )
