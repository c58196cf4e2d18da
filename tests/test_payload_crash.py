"""Crash safety of the serialiser: every value user code hands back is
type-checked before the core reads it, walks are bounded and interruptible.

Each case runs in a child interpreter, so a crash (SIGSEGV, a stack
overflow) is a failed test with its signal, not a dead test run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Tuple

import pytest

import infinium

OURS = str(Path(infinium.__file__).resolve().parent.parent)

PRELUDE = """
import dataclasses, datetime, decimal, enum, itertools, json, sys, uuid
import infinium
from infinium import TaskData, ExecutionStep, ValidationError
WHEN = "2026-01-01T00:00:00Z"
def dumps_meta(value):
    step = ExecutionStep(1, "a", "d", metadata={"v": value})
    return infinium.dumps(TaskData("n", "d", WHEN, 1.0, steps=[step]))
def report(fn):
    try:
        out = fn()
        print("OK", out.decode() if isinstance(out, bytes) else out)
    except ValidationError as exc:
        print("ValidationError", exc)
    except Exception as exc:
        print(type(exc).__name__, exc)
"""


def run_child(body: str, timeout: float = 120) -> Tuple[int, str, str]:
    """Run PRELUDE + ``body`` in a fresh interpreter importing this checkout."""
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        env={**os.environ, "PYTHONPATH": OURS, "PYTHONFAULTHANDLER": "1"},
    )
    return out.returncode, out.stdout, out.stderr


def lines_of(body: str) -> list[str]:
    rc, out, err = run_child(body)
    assert rc == 0, f"child died (rc={rc}):\n{err[-3000:]}"
    return out.splitlines()


@pytest.mark.parametrize(
    "returned",
    [
        # Bytes laid out so a read as a compact str points far outside.
        "b'\\xff' * 64",
        "b'x' * 64",
        "12345",
        "None",
        "[1, 2]",
    ],
)
@pytest.mark.parametrize("base", ["datetime.datetime", "datetime.date", "datetime.time"])
def test_isoformat_returning_a_non_str_is_a_validation_error(base: str, returned: str) -> None:
    args = {"datetime.datetime": "2026, 1, 1", "datetime.date": "2026, 1, 1"}.get(base, "1, 2")
    lines = lines_of(
        f"""
        class Odd({base}):
            def isoformat(self, *a, **k):
                return {returned}
        report(lambda: dumps_meta(Odd({args})))
        """
    )
    kind = type(eval(returned)).__name__
    assert lines == [
        f"ValidationError steps[0].metadata.v: Odd.isoformat() returned a {kind}, not a str"
    ]


def test_isoformat_returning_a_str_subclass_is_read_through_the_api() -> None:
    lines = lines_of(
        """
        class S(str):
            __slots__ = ()
        class Odd(datetime.datetime):
            def isoformat(self, *a, **k):
                return S("2026-01-01T00:00:00+zz\\u00e9\\U0001f600")
        print(json.loads(dumps_meta(Odd(2026, 1, 1)))["steps"][0]["metadata"]["v"])
        """
    )
    assert lines == ["2026-01-01T00:00:00+zz\u00e9\U0001f600"]


@pytest.mark.parametrize("name", ["b'x' * 64", "123", "None", "('a',)"])
def test_a_dataclass_field_name_that_is_not_a_str(name: str) -> None:
    lines = lines_of(
        f"""
        @dataclasses.dataclass
        class Meta:
            x: int = 1
        Meta.__dataclass_fields__["x"].name = {name}
        report(lambda: dumps_meta(Meta()))
        step = ExecutionStep(1, "a", "d", tool_call=Meta())
        report(lambda: infinium.dumps(TaskData("n", "d", WHEN, 1.0, steps=[step])))
        """
    )
    kind = type(eval(name)).__name__
    message = f"a dataclass field name of Meta is a {kind}, not a str"
    assert lines == [
        f"ValidationError steps[0].metadata.v: {message}",
        f"ValidationError steps[0].tool_call: {message}",
    ]


def test_enum_dict_keys_follow_the_value_rules_for_cycles_and_depth() -> None:
    lines = lines_of(
        """
        class E(enum.Enum):
            A = 1
            B = 2
        E.A._value_ = E.A                       # a member whose value is itself
        report(lambda: dumps_meta({E.A: 1}))
        E.B._value_ = E.B                       # the same as a value
        report(lambda: dumps_meta(E.B))
        class F(enum.Enum):
            X = 0
        prev = "end"
        for i in range(100_000):               # a 100,000-long chain
            m = object.__new__(F)
            m._value_, m._name_ = prev, f"M{i}"
            prev = m
        report(lambda: dumps_meta({prev: 1}))
        report(lambda: dumps_meta(prev))
        class G(enum.Enum):
            K = "key"
        report(lambda: dumps_meta({G.K: 1}))
        """
    )
    assert lines == [
        "ValidationError steps[0].metadata.v: circular reference detected",
        "ValidationError steps[0].metadata.v: circular reference detected",
        "ValidationError steps[0].metadata.v: nesting deeper than 64 levels",
        "ValidationError steps[0].metadata.v: nesting deeper than 64 levels",
        'OK {"name":"n","description":"d","current_datetime":"2026-01-01T00:00:00Z",'
        '"duration":1.0,"steps":[{"step_number":1,"action":"a","description":"d",'
        '"metadata":{"v":{"key":1}}}]}',
    ]


def test_an_endless_iterator_of_steps_stops_at_the_size_limit() -> None:
    """``steps=itertools.repeat(step)``: the anchor never stops (until memory
    runs out or Ctrl-C); here the walk stops once the body is certainly over
    the limit."""
    lines = lines_of(
        """
        step = ExecutionStep(1, "a", "d")
        report(lambda: infinium.dumps(TaskData("n", "d", WHEN, 1.0, steps=itertools.repeat(step))))
        grow = [1]
        class Growing(datetime.date):
            def isoformat(self):
                grow.append(Growing(2026, 1, 1))
                return "x"
        grow.append(Growing(2026, 1, 1))
        report(lambda: dumps_meta(grow))
        """
    )
    too_large = "ValidationError Payload exceeds maximum size of 1048576 bytes"
    assert lines == [too_large] * 2


def test_ctrl_c_interrupts_serialising_an_endless_iterator_that_writes_nothing() -> None:
    """``steps=itertools.repeat(None)`` writes nothing, so no size limit is
    ever reached: the walk lets signals in, and a real SIGINT stops it."""
    code = PRELUDE + textwrap.dedent(
        """
        print("start", flush=True)
        try:
            infinium.dumps(TaskData("n", "d", WHEN, 1.0, steps=itertools.repeat(None)))
            print("returned")
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
        env={**os.environ, "PYTHONPATH": OURS},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "start\n"
        # Into the walk: a signal sent before the call would be handled by
        # the interpreter between bytecodes, proving nothing.
        import time

        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "interrupted\n"


def test_a_dict_that_grows_while_it_is_written() -> None:
    lines = lines_of(
        """
        meta = {}
        class Adder(datetime.date):
            def isoformat(self):
                meta[len(meta)] = Adder(2026, 1, 1)
                return "x"
        meta["first"] = Adder(2026, 1, 1)
        report(lambda: dumps_meta(meta))
        shrink = {"a": None, "b": None}
        class Clearer(datetime.date):
            def isoformat(self):
                shrink.clear()
                return "x"
        shrink["a"] = Clearer(2026, 1, 1)
        report(lambda: dumps_meta(shrink))
        """
    )
    changed = "ValidationError steps[0].metadata.v: dictionary changed size during iteration"
    assert lines == [changed, changed]


def test_a_decimal_subclass_cannot_inject_text_into_the_body() -> None:
    lines = lines_of(
        """
        class D(decimal.Decimal):
            def __str__(self):
                return '1,"injected":true'
            def is_finite(self):
                return True
        report(lambda: json.loads(dumps_meta(D("2.50")))["steps"][0]["metadata"])
        class N(decimal.Decimal):
            def is_finite(self):
                return True
        report(lambda: dumps_meta(N("NaN")))
        """
    )
    assert lines == [
        "OK {'v': 2.5}",
        'ValidationError steps[0].metadata.v: Decimal text "NaN" is not a JSON number',
    ]


def test_uuid_str_and_model_dump_results_are_checked() -> None:
    lines = lines_of(
        """
        class U(uuid.UUID):
            def __str__(self):
                return b"not a str"
        report(lambda: dumps_meta(U(int=1)))
        class Model:
            def model_dump(self, **k):
                return {b"bytes key": 1}
        report(lambda: dumps_meta(Model()))
        class Model2:
            def model_dump(self, **k):
                return Model2()
        report(lambda: dumps_meta(Model2()))
        """
    )
    assert lines == [
        "TypeError __str__ returned non-string (type bytes)",
        "ValidationError steps[0].metadata.v: dict keys must be str, int, float, bool or None, "
        "not bytes",
        "ValidationError steps[0].metadata.v: nesting deeper than 64 levels",
    ]
