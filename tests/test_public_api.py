"""The public surface outside the clients, checked against the anchor SDK:
the names each module offers (``from infinium.<module> import X`` and
``import *``), constructor signatures, dataclass shapes, exception objects and
the utilities of ``infinium.utils``. Each differential test runs one script
with both SDKs and compares what it prints."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any, Dict, List

import pytest

import infinium.utils

from .conftest import CaptureServer, run_script

# For every module the anchor has: its public names that belong to the SDK
# (classes and functions defined in infinium, loggers, int constants), with
# signatures as (name, kind, default) triples, and what ``import *`` gives.
_NAMES_SCRIPT = r"""
import importlib, inspect, json, logging
MODULES = ["infinium", "infinium.types", "infinium.utils", "infinium.exceptions",
           "infinium.client", "infinium.async_client"]
def sdk_name(name, value):
    if name.startswith("_"):
        return False
    if isinstance(value, (logging.Logger, int)) and not isinstance(value, bool):
        return True
    return (inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value)) and (
        getattr(value, "__module__", "") or "").startswith("infinium")
def params(value):
    try:
        sig = inspect.signature(value)
    except (TypeError, ValueError):
        return None
    return [[p.name, str(p.kind), repr(p.default)] for p in sig.parameters.values()]
out = {}
for m in MODULES:
    mod = importlib.import_module(m)
    names = {n: params(v) if callable(v) else None for n, v in vars(mod).items() if sdk_name(n, v)}
    star = {}
    exec("from %s import *" % m, star)
    out[m] = {"names": names, "all": sorted(vars(mod)), "star": sorted(star)}
import infinium
out["meta"] = [infinium.__version__, infinium.__author__, getattr(infinium, "__email__", None)]
print(json.dumps(out, sort_keys=True))
"""

# The clients' constructors are a documented superset (SPEC §4; environment
# variables, background export), compared in test_client.py. Ours
# get_current_trace_context is the context variable's bound ``get`` (no
# introspectable signature); called with no argument it is the same.
_OWN_SIGNATURES = {"InfiniumClient", "AsyncInfiniumClient", "get_current_trace_context"}
# watch() and the instrumentors add a keyword-only ``estimate_cost`` to the anchor's
# parameters (checked in test_watch_cost.py).
_OWN_SIGNATURES |= {"watch", "OpenAIInstrumentor", "AnthropicInstrumentor", "GoogleInstrumentor"}


def test_every_public_name_of_the_anchor_imports_from_the_same_module(
    anchor_python: str,
) -> None:
    theirs = json.loads(run_script(anchor_python, _NAMES_SCRIPT))
    ours = json.loads(run_script(sys.executable, _NAMES_SCRIPT))
    assert ours["meta"] == theirs["meta"]
    problems: List[str] = []
    for module, info in theirs.items():
        if module == "meta":
            continue
        mine = ours[module]
        for name, sig in info["names"].items():
            if name not in mine["all"]:
                problems.append(f"{module}.{name} missing")
            elif sig is not None and name not in _OWN_SIGNATURES and mine["names"][name] != sig:
                problems.append(f"{module}.{name}{sig} != ours {mine['names'].get(name)}")
        missing_star = (set(info["star"]) & set(info["names"])) - set(mine["star"])
        if missing_star:
            problems.append(f"from {module} import * lacks {sorted(missing_star)}")
    assert not problems, "\n".join(problems)


_SHAPES_SCRIPT = r"""
import copy, dataclasses, json, pickle, typing
import infinium.types as T, infinium.exceptions as E
out = {}
for name in ["ErrorDetail", "ToolCall", "LlmCall", "ExecutionStep", "ExpectedOutcome", "EnvironmentContext",
             "TimeTracking", "Customer", "Support", "Sales", "Marketing", "Content", "Research", "Project",
             "Development", "Executive", "General", "PromptContent", "LlmUsage", "TaskData", "ApiResponse",
             "BatchResult"]:
    cls = getattr(T, name)
    out[name] = [
        cls.__module__, repr(cls.__dataclass_params__), list(getattr(cls, "__match_args__", ())),
        cls.__hash__ is None,
        [[f.name, str(f.type), "MISSING" if f.default is dataclasses.MISSING else repr(f.default)]
         for f in dataclasses.fields(cls)],
        {k: repr(v) for k, v in typing.get_type_hints(cls, vars(T)).items()},
        # a written docstring, not dataclass's generated signature
        bool(cls.__doc__) and not cls.__doc__.startswith(name + "("),
    ]
task = T.TaskData("n", "d", "w", 1, customer=T.Customer("a"), steps=[T.ExecutionStep(1, "a", "b", metadata={})])
out["task"] = [repr(task), repr(dataclasses.asdict(task)), repr(dataclasses.astuple(T.ErrorDetail("a", "b"))),
               task == copy.deepcopy(task), pickle.loads(pickle.dumps(task)) == task]
errors = [E.InfiniumError("m"), E.InfiniumError("m", 400, {"a": 1}), E.AuthenticationError(),
          E.ValidationError("v", field="f"), E.RateLimitError("r", 5), E.NetworkError("n", ValueError("x")),
          E.InfiniumTimeoutError(), E.TimeoutError("t", 1.5), E.ServerError("s", 503), E.NotFoundError("nf", "trace", "id"),
          E.BatchError("b", 1, 2, ["e"]), E.ConfigurationError("c", "k"), E.InfiniumError(None)]
def describe(e):
    return [type(e).__name__, [c.__name__ for c in type(e).__mro__], str(e), repr(e), repr(e.args),
            sorted((k, repr(v)) for k, v in vars(e).items())]
out["errors"] = [describe(e) + describe(pickle.loads(pickle.dumps(e))) + describe(copy.copy(e)) for e in errors]
print(json.dumps(out, sort_keys=True))
"""


def test_dataclasses_and_exceptions_have_the_anchors_shape(anchor_python: str) -> None:
    theirs = json.loads(run_script(anchor_python, _SHAPES_SCRIPT))
    ours = json.loads(run_script(sys.executable, _SHAPES_SCRIPT))
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key] == theirs[key], key


_UTILS_SCRIPT = r"""
import asyncio, dataclasses, random, logging
from typing import Any, Optional
from infinium.utils import *
from infinium.types import *

@dataclasses.dataclass
class Box:
    items: Any = None
    inner: Any = None
    note: Optional[str] = None

for value in [
    None, {}, {"a": None}, [1], "s", 3, Customer(), Customer(customer_name=""),
    Box(items=[None, Customer(), Customer("x"), {}, [None], 0, False], inner=Box(), note="n"),
    Box(items=(LlmCall("m"), None)), Box(items=[None]), Box(inner=Box(inner=Box(note="deep"))),
    Box(items={"k": None}), Box(items=set()), TaskData("n", "d", "w", 1.5, steps=[ExecutionStep(1, "a", "b")],
                                                      general=General(tags=("t", None))),
]:
    print("dataclass_to_dict", repr(dataclass_to_dict(value)))
print("merge_dicts", merge_dicts(), merge_dicts({"a": 1, "b": None}, None, [1], {"a": None, "c": 3}, {"a": 2}))
for text in ['{"a": 1}', "  {\"a\": [1]}  ", "[1]", "1", "", "   ", "{bad", None, 5, {"x": 1}, b'{"a": 1}',
             "x" * (1024 * 1024 + 1), "[" * 100000]:
    print("safe_json_loads", repr(safe_json_loads(text))[:80])
for attempt in range(9):
    print("exponential_backoff", attempt, exponential_backoff(attempt, jitter=False),
          exponential_backoff(attempt, 0.5, 5.0, False), exponential_backoff(attempt, -1.0, 60.0, False))
random.seed(1)
spread = [exponential_backoff(3) for _ in range(2000)]
print("jitter within 25%", 6.0 <= min(spread) < 6.2, 9.8 < max(spread) <= 10.0)

async def retries():
    calls = []
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise KeyError(len(calls))
        return "done"
    print("retry sync", await retry_with_backoff(flaky, max_retries=3, base_delay=0.001), len(calls))
    async def always():
        calls.append(2)
        raise ValueError("nope %d" % len(calls))
    try:
        await retry_with_backoff(always, max_retries=2, base_delay=0.001)
    except ValueError as exc:
        print("retry gives up with the last error", exc, len(calls))
    try:
        await retry_with_backoff(always, max_retries=5, base_delay=0.001, exceptions=(KeyError,))
    except ValueError as exc:
        print("other errors are not retried", exc)
asyncio.run(retries())

for args in [(), (5.0, 3), (0, 1), (-1, 1), (1, 0), (1, -2)]:
    try:
        lim = RateLimiter(*args)
        print("RateLimiter", args, lim.requests_per_second, lim.burst_size, lim.tokens)
    except ValueError as exc:
        print("RateLimiter", args, "ValueError", exc)
lim = RateLimiter(1000.0, 5)
for _ in range(5):
    lim.acquire_sync()
asyncio.run(lim.acquire())
print("logger", logger.name, isinstance(logger, logging.Logger))

# Number types are kept (ints stay ints) and a huge attempt is capped, not an overflow.
from fractions import Fraction
for args in [(3, 1, 60, False), (3, 1, 5, False), (2000, 1, 60, False), (2, Fraction(1, 3), 60, False)]:
    value = exponential_backoff(*args)
    print("exponential_backoff", args, repr(value), type(value).__name__)
# A dataclass instance where a class is expected: the dict comes back.
print("coerce_section", coerce_section({"customer_name": "x"}, Customer()))
try:
    validate_duration("abc")
except ValidationError as exc:
    print("validate_duration context", type(exc.__context__).__name__, exc.__suppress_context__)
import infinium
print("async_client attribute", infinium.async_client.AsyncInfiniumClient.__name__)
setup_logging("INFO", "")  # an empty format is logging's own default, not the SDK's
print("setup_logging", [h.formatter._fmt for h in logging.getLogger().handlers])
"""


def test_utility_functions_behave_like_the_anchors(anchor_python: str) -> None:
    theirs = run_script(anchor_python, _UTILS_SCRIPT)
    ours = run_script(sys.executable, _UTILS_SCRIPT)
    assert "dataclass_to_dict" in theirs
    assert ours.splitlines() == theirs.splitlines()


def _release_times(limiter: Any, callers: int) -> List[float]:
    start = time.monotonic()
    times: List[float] = []
    lock = threading.Lock()

    def take() -> None:
        limiter.acquire_sync()
        with lock:
            times.append(time.monotonic() - start)

    threads = [threading.Thread(target=take) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(times)


def test_rate_limiter_releases_waiting_callers_one_interval_apart() -> None:
    # SPEC §8: the anchor's limiter lets every waiting caller through at the
    # same instant. Ours gives each its own slot: burst 1 at 50/s, so the
    # k-th caller released goes no earlier than k intervals (20 ms) after the
    # first could. Only lower bounds: a loaded machine may wake a thread late,
    # never early.
    times = _release_times(infinium.utils.RateLimiter(50.0, 1), 8)
    for k, t in enumerate(times):
        assert t >= k * 0.02 - 0.002, times


def test_rate_limiter_async_callers_are_spaced_too() -> None:
    limiter = infinium.utils.RateLimiter(50.0, 2)

    async def main() -> List[float]:
        start = time.monotonic()
        out: Dict[int, float] = {}

        async def take(i: int) -> None:
            await limiter.acquire()
            out[i] = time.monotonic() - start

        await asyncio.gather(*(take(i) for i in range(6)))
        return sorted(out.values())

    times = asyncio.run(main())
    # Two at once (the burst), then one every 20 ms.
    for k, t in enumerate(times[2:], start=1):
        assert t >= k * 0.02 - 0.002, times


@pytest.mark.parametrize("rate", [0, -1.0])
def test_rate_limiter_rejects_a_non_positive_rate(rate: Any) -> None:
    with pytest.raises(ValueError, match="^requests_per_second must be positive$"):
        infinium.utils.RateLimiter(rate)


# --- trace bodies for unusual but valid TaskData, on the wire -----------------

_WIRE_SCRIPT = r"""
import collections, dataclasses, sys
from typing import ClassVar, Optional
from infinium import *
W = "2026-11-22T04:06:00.123456Z"
class F(float):
    def __repr__(self): return "not-this"
class I(int):
    def __repr__(self): return "not-this"
class S(str):
    def __str__(self): return "not-this"
@dataclasses.dataclass
class MyStep(ExecutionStep):
    extra: Optional[str] = None
@dataclasses.dataclass
class MyTask(TaskData):
    extra: Optional[str] = None
@dataclasses.dataclass
class Mine:
    a: Optional[int] = None
    b: int = dataclasses.field(default=2, init=False)
    c: int = dataclasses.field(default=3, repr=False)
    k: ClassVar[int] = 9
def td(**kw):
    return TaskData(**{"name": "n", "description": "d", "current_datetime": W, "duration": 1.0, **kw})
def with_attr(t, name, value):
    setattr(t, name, value)
    return t
CASES = {
    "ints_and_floats": td(duration=0.1 + 0.2, content=Content(content_length=10**30),
                          sales=Sales(deal_value=1e-7, conversion_rate=123456789012345680.0)),
    "negative_zero": td(duration=-0.0),
    "int_duration": td(duration=86400),
    "unicode": td(name="é\u2028\u2029\x7f\U0001F600", description="\x00\x1f\"\\"),
    "empty_strings": td(input_summary="", output_summary="", customer=Customer(customer_name="")),
    "non_str_summary": td(output_summary=123, name=123),
    "tuples": td(steps=(ExecutionStep(1, "a", "b"),), errors=(ErrorDetail("E", "m"),),
                 general=General(tags=("a", None)), expected_outcome=ExpectedOutcome("o", ("a", None))),
    "list_items": td(general=General(tags=[{}, {"a": None}, [None, 1], [], ErrorDetail("a", "b"), LlmCall(None)],
                                     errors_encountered=["x", None])),
    "dict_fields": td(general=General(tags={"a": 1}), environment=EnvironmentContext(custom_tags={"a": None}),
                      steps=[ExecutionStep(1, "a", "b", metadata={"a": None, "b": [None, {}], "c": {}})]),
    "dict_sections": td(customer={"customer_name": None}, sales=collections.OrderedDict(b=1, a=2),
                        steps=[{"step_number": 1, "zz": None}, {}], llm_usage={}),
    "subclassed_values": td(duration=I(5), name=S("nm"), sales=Sales(deal_value=F(1.5)),
                            steps=[ExecutionStep(I(1), S("a"), "b", metadata={S("k"): F(2.5), "i": I(4)})]),
    "dataclass_subclasses": td(steps=[MyStep(1, "a", "b", extra="x")]),
    "task_subclass": MyTask("n", "d", W, 1.0, extra="not sent", customer=Customer("c")),
    "extra_attribute": with_attr(td(), "foo", 1),
    "user_dataclasses": td(customer=Mine(a=1), sales=Mine(), research=Sales(deal_value=1.0),
                           steps=[Customer(customer_name="x")]),
    "all_none_objects": td(errors=[ErrorDetail(None, None, None, None)], llm_usage=LlmUsage(),
                           expected_outcome=ExpectedOutcome(None),
                           steps=[ExecutionStep(None, None, None, tool_call=ToolCall(None), llm_call=LlmCall(None),
                                                error=ErrorDetail(None, None, None, None))]),
    "wrong_but_serialisable": td(steps=[ExecutionStep("1", None, None, error="boom", metadata=[1, None])],
                                 general=General(errors_encountered=["x"]),
                                 environment=EnvironmentContext(custom_tags=[None])),
    "non_str_keys": td(steps=[ExecutionStep(1, "a", "b", metadata={1.5: "x", True: "y", None: "z", 2: "w"})]),
    "prompt_studio_empty": with_attr(td(), "_prompt_studio", {}),
    "prompt_studio_odd": with_attr(td(), "_prompt_studio", [None, {"x": None}]),
}
for name, task in CASES.items():
    client = InfiniumClient(agent_id="3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15", agent_secret="agent-secret-42",
                            base_url=sys.argv[1], max_retries=0, user_agent="case/" + name)
    client.send_task_data(task)
    client.close()
    print(name)
"""


def test_unusual_trace_bodies_are_byte_identical_on_the_wire(
    capture_server: CaptureServer, anchor_python: str
) -> None:
    def bodies(python: str) -> Dict[str, bytes]:
        capture_server.requests.clear()
        out = run_script(python, _WIRE_SCRIPT.replace("sys.argv[1]", repr(capture_server.base_url)))
        got = {r.headers["user-agent"].split("/", 1)[1]: r.body for r in capture_server.requests}
        assert list(got) == out.split()
        return got

    theirs = bodies(anchor_python)
    ours = bodies(sys.executable)
    assert len(theirs) == 20
    for name in theirs:
        assert ours[name] == theirs[name], name
