"""One validator: the Rust core checks a trace's head fields (for
``send_task``, ``send_task_data``/``dumps`` and the public
``infinium.utils.validate_*`` helpers) with the anchor's messages, order and
coercions, and decides ISO 8601 natively, exactly as the anchor's
``validate_iso_datetime`` does on this interpreter."""

from __future__ import annotations

import glob
import itertools
import json
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, List, Tuple

import pytest

import infinium
from infinium import InfiniumClient, TaskData, ValidationError, _core, utils

WHEN = "2026-01-01T00:00:00Z"

# --- ISO 8601: a corpus built from the pieces fromisoformat cares about -----

DATES = [
    "2026-11-22",
    "20261122",
    "2026-W47-3",
    "2026W473",
    "2026-W47",
    "2026W47",
    "2020-W53-7",
    "2021-W53-1",
    "2026-W00-1",
    "2026-W47-8",
    "2026-W47-0",
    "1900-01-01",
    "1899-12-31",
    "2100-12-31",
    "2101-01-01",
    "1900-W01-1",
    "1899-W52-7",
    "2100-W52-5",
    "2100-W53-1",
    "2024-02-29",
    "2023-02-29",
    "2026-13-01",
    "2026-00-10",
    "2026-04-31",
    "0000-01-01",
    "9999-12-31",
    "2026-1-22",
    "2026-11-2",
    "2026/11/22",
    "2026-11",
    "202611",
    "2026-112",
    "2026112",
    "2026-W4",
    "2026-W47-",
    "2026W4",
    "\uff12\uff10\uff12\uff16-11-22",
    "2026-11-22x",
    "",
]
SEPS = ["T", " ", "t", "x", "-", "0", "1", ":", "é", "😀", "\u3000", "\udc80", "\x00", "TT", ""]
TIMES = [
    "",
    "04",
    "4",
    "04:06",
    "0406",
    "04:06:00",
    "040600",
    "04:06:00.1",
    "04:06:00.12",
    "04:06:00.123",
    "04:06:00.1234",
    "04:06:00.12345",
    "04:06:00.123456",
    "04:06:00.1234567",
    "04:06:00,123",
    "04:06:00.",
    "04.5",
    "04:06.5",
    "0406.5",
    "04:06:00:123",
    "04:06:00:123456",
    "04:0600",
    "0406:00",
    "24:00",
    "24:00:00",
    "23:59:59.999999",
    "23:60",
    "23:59:60",
    "04:06:00Z",
    "04:",
    "04:06:",
    "12:+",
    "1234567890",
    "04:06:00.123x",
    "04:06 ",
    "٠٤:06",
]
ZONES = [
    "",
    "Z",
    "z",
    "+00:00",
    "-00:00",
    "+02:00",
    "-02:00",
    "+0200",
    "+02",
    "-2",
    "+02:30:15",
    "+02:30:15.123456",
    "+02:30:15.123",
    "+23:59",
    "+23:59:59.999999",
    "+24:00",
    "-24:00",
    "+99:99",
    "+05:99",
    "+02:00Z",
    "Z+02:00",
    "ZZ",
    "+02:00:",
    "+",
    "-",
    "+02:00\x00junk",
    "Z\x00",
]
PADS = ["", " ", "\t\n", "\x1c", "\x1f", "\x85", "\u3000", "\u200b", "\xa0"]


def iso_corpus(n_random: int = 6_000, seed: int = 20261122) -> List[str]:
    out = set()
    for d, s, t, z in itertools.product(DATES[:12], SEPS, TIMES, ZONES):
        out.add(d + s + t + z)
    for d, s, t, z in itertools.product(DATES, SEPS[:3], TIMES[:8], ZONES[:6]):
        out.add(d + s + t + z)
    for pad, text in itertools.product(PADS, ["2026-11-22T04:06:00Z", "2026-11-22", "Z"]):
        out.update({pad + text, text + pad, pad + text + pad})
    rng = random.Random(seed)
    alphabet = "0123456789-:T.,+ZWz \x00é\udc80\u3000x"
    base = sorted(out)
    for _ in range(n_random):
        if rng.random() < 0.5:
            s = list(rng.choice(base))
            for _ in range(rng.randint(1, 3)):  # mutate a known shape
                i = rng.randrange(len(s) + 1)
                op = rng.random()
                if op < 0.4 and s:
                    s[min(i, len(s) - 1)] = rng.choice(alphabet)
                elif op < 0.7:
                    s.insert(i, rng.choice(alphabet))
                elif s:
                    del s[min(i, len(s) - 1)]
            out.add("".join(s))
        else:
            out.add("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))))
    return sorted(out)


ANCHOR_ISO_SCRIPT = """
import json, sys
from infinium.utils import validate_iso_datetime
texts = json.loads(sys.stdin.read())
print(json.dumps([validate_iso_datetime(t) for t in texts]))
"""


def test_iso_datetime_matches_the_anchor_on_this_python(anchor_python: str) -> None:
    texts = iso_corpus()
    assert len(texts) > 20_000
    out = subprocess.run(
        [anchor_python, "-c", ANCHOR_ISO_SCRIPT],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    expected = json.loads(out.stdout)
    ours = [utils.validate_iso_datetime(t) for t in texts]
    wrong = [(t, e) for t, e, o in zip(texts, expected, ours) if e != o]
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:10]!r}"
    # The corpus is not all one answer.
    assert 1_000 < sum(expected) < len(texts) - 1_000


REFERENCE_SCRIPT = """
import json, sys
from datetime import datetime
def anchor_rule(s):
    if not s.strip():
        return False
    try:
        return 1900 <= datetime.fromisoformat(s.strip().replace("Z", "+00:00")).year <= 2100
    except (ValueError, TypeError, OverflowError):
        return False
texts = json.loads(sys.stdin.read())
print(json.dumps([sys.version_info[1], [anchor_rule(t) for t in texts]]))
"""


def other_pythons() -> List[str]:
    found = sorted(glob.glob("/root/.pyenv/versions/3.*/bin/python3")) + sorted(
        glob.glob("/usr/bin/python3.[0-9]*")
    )
    return [p for p in found if not p.endswith("-config")]


@pytest.mark.skipif(
    not hasattr(_core, "_validate_iso_datetime_as"), reason="test hook only in debug builds"
)
def test_iso_datetime_follows_each_python_versions_grammar() -> None:
    """The anchor's rule is ``datetime.fromisoformat``'s, which changed in
    3.11: the native check follows each version's (checked against every
    interpreter on this machine, 3.9 on)."""
    texts = iso_corpus(n_random=2_000, seed=7)
    seen = set()
    for python in other_pythons():
        try:
            out = subprocess.run(
                [python, "-c", REFERENCE_SCRIPT],
                input=json.dumps(texts),
                capture_output=True,
                text=True,
                timeout=300,
            )
        except OSError:
            continue
        if out.returncode != 0:
            continue
        minor, expected = json.loads(out.stdout)
        if minor < 9 or minor in seen:
            continue
        seen.add(minor)
        ours = [_core._validate_iso_datetime_as(t, minor) for t in texts]
        wrong = [t for t, e, o in zip(texts, expected, ours) if e != o]
        assert not wrong, f"3.{minor}: {len(wrong)} differ, e.g. {wrong[:10]!r}"
    if not seen:
        pytest.skip("no other Python interpreter on this machine")


def test_iso_datetime_type_and_subclass() -> None:
    class Odd(str):
        def strip(self, *a: Any) -> Any:
            raise AssertionError("user code must not run")

        def replace(self, *a: Any) -> Any:
            raise AssertionError("user code must not run")

    assert utils.validate_iso_datetime(Odd("2026-11-22T04:06:00Z")) is True
    for value in (None, 1, b"2026-11-22", ["2026-11-22"]):
        assert utils.validate_iso_datetime(value) is False  # type: ignore[arg-type]


# --- the anchor's messages and order -----------------------------------------

CASES: List[Tuple[Any, Any, Any, Any]] = [
    (None, None, 1, None),
    ("", None, 1, None),
    ("n" * 501, None, 1, None),
    ("n" * 501, " ", 1, None),
    ("n" * 501, "d" * 10_001, "x", None),
    ("n", "d" * 10_001, "x", "bad"),
    ("n", "d", "x", "bad"),
    ("n", "d", None, "bad"),
    ("n", "d", [], "bad"),
    ("n", "d", float("nan"), "bad"),
    ("n", "d", float("inf"), "bad"),
    ("n", "d", float("-inf"), "bad"),
    ("n", "d", -1, "bad"),
    ("n", "d", 86_401, "bad"),
    ("n", "d", "86400.5", "bad"),
    ("n", "d", "1.5", "bad"),
    ("n", "d", 1, "2026-13-01"),
    ("n", "d", 1, ""),
    ("n", "d", 1, 5),
    ("\x1c", "d", 1, None),
    ("n", "\u3000\x1f", 1, None),
    (0, [], True, "2026-01-01"),
]

ANCHOR_ERRORS_SCRIPT = """
import json, sys
from infinium import InfiniumClient
cases = json.loads(sys.stdin.read())
client = InfiniumClient("agent-1", "secret-123456", base_url="http://127.0.0.1:9")
out = []
for name, description, duration, when in cases:
    try:
        client.send_task(name, description, duration, when)
        out.append(None)
    except Exception as exc:
        out.append([type(exc).__name__, str(exc), getattr(exc, "field", None)])
print(json.dumps(out))
"""


def test_send_task_checks_in_the_anchors_order_with_its_messages(
    anchor_python: str,
) -> None:
    def enc(v: Any) -> Any:
        return f"\x01{v}" if isinstance(v, float) else v

    # NaN/inf do not survive JSON: sent as tagged strings, turned back there.
    script = ANCHOR_ERRORS_SCRIPT.replace(
        "for name, description, duration, when in cases:",
        "def dec(v):\n    return float(v[1:]) if isinstance(v, str) and v.startswith('\\x01') else v\n"
        "for name, description, duration, when in ([dec(x) for x in c] for c in cases):",
    )
    out = subprocess.run(
        [anchor_python, "-c", script],
        input=json.dumps([[enc(x) for x in c] for c in CASES]),
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    expected = json.loads(out.stdout)
    client = InfiniumClient("agent-1", "secret-123456", base_url="http://127.0.0.1:9")
    try:
        for case, want in zip(CASES, expected):
            assert want is not None, case
            with pytest.raises(ValidationError) as info:
                client.send_task(*case)
            got = [type(info.value).__name__, str(info.value), info.value.field]
            assert got == want, case
    finally:
        client.close()


def test_send_task_coerces_duration_as_the_anchor(client: Any, capture_server: Any) -> None:
    """``send_task`` takes ``float(duration)`` (a numeric str, a Decimal, a
    bool); the body carries the float. ``send_task_data`` takes the value as
    it is: a number."""
    for given, sent in (("1.5", 1.5), (Decimal("2.25"), 2.25), (True, 1.0), (3, 3.0)):
        client.send_task("n", "d", given, WHEN)
        raw = capture_server.requests[-1].body
        assert json.loads(raw)["duration"] == sent
        assert b'"duration":' + repr(sent).encode() + b"}" in raw
    with pytest.raises(ValidationError, match="^duration must be a number$"):
        client.send_task_data(TaskData("n", "d", WHEN, "1.5"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="^duration must be a number$"):
        infinium.dumps(TaskData("n", "d", WHEN, True))


def test_validate_duration_chains_floats_error_and_lets_others_through() -> None:
    with pytest.raises(ValidationError, match="^duration must be a number$") as info:
        utils.validate_duration("abc")  # type: ignore[arg-type]
    assert isinstance(info.value.__context__, ValueError)
    assert info.value.field == "duration"
    with pytest.raises(ValidationError) as info:
        utils.validate_duration(None)  # type: ignore[arg-type]
    assert isinstance(info.value.__context__, TypeError)
    with pytest.raises(OverflowError):
        utils.validate_duration(10**400)

    class Boom:
        def __float__(self) -> float:
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        utils.validate_duration(Boom())  # type: ignore[arg-type]
    assert utils.validate_duration(" 7 ") == 7.0  # type: ignore[arg-type]
    assert utils.validate_duration(b"7") == 7.0  # type: ignore[arg-type]


HELPERS_SCRIPT = """
import json, sys
from infinium import utils
def run(f, *args):
    try:
        r = f(*args)
        return ["ok", r if isinstance(r, (bool, float, str, type(None))) else repr(r)]
    except Exception as exc:
        return [type(exc).__name__, str(exc), getattr(exc, "field", None)]
cases = json.loads(sys.stdin.read())
print(json.dumps([run(getattr(utils, c[0]), *c[1:]) for c in cases]))
"""

HELPER_CASES: List[List[Any]] = [
    ["validate_required_field", None, "f"],
    ["validate_required_field", "", "f"],
    ["validate_required_field", " \x1c\u3000", "f"],
    ["validate_required_field", "x", "f"],
    ["validate_required_field", 0, "f"],
    ["validate_required_field", [], "f"],
    ["validate_required_field", "\ud800", "f"],
    ["validate_string_length", "abc", "f", 2],
    ["validate_string_length", "abc", "f", 3],
    ["validate_string_length", "abc", "f", 2.5],
    ["validate_string_length", "\u00e9" * 3, "f", 2],
    ["validate_string_length", "\ud800\ud800", "f", 1],
    ["validate_string_length", 12345, "f", 1],
    ["validate_string_length", None, "f", 1],
    ["validate_duration", "1e3"],
    ["validate_duration", "  12  "],
    ["validate_duration", "nan"],
    ["validate_duration", "-inf"],
    ["validate_duration", "inf"],
    ["validate_duration", 86400],
    ["validate_duration", "86400.0000001"],
    ["validate_duration", -0.0],
    ["validate_duration", "x"],
    ["validate_duration", None],
    ["validate_duration", False],
    ["validate_iso_datetime", None],
    ["validate_iso_datetime", "  2026-11-22Z "],
]


def test_public_helpers_answer_as_the_anchors(anchor_python: str) -> None:
    def run(python: str) -> Any:
        out = subprocess.run(
            [python, "-c", HELPERS_SCRIPT],
            input=json.dumps(HELPER_CASES),
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
            env={**os.environ, "PYTHONPATH": ours_path if python == sys.executable else ""},
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    ours_path = str(Path(infinium.__file__).resolve().parent.parent)
    assert run(sys.executable) == run(anchor_python)


NO_CALLBACK_SCRIPT = """
import infinium, infinium.utils
def trap(s):
    raise SystemExit("the core called back into infinium.utils")
infinium.utils.validate_iso_datetime = trap
for when in ("2026-W47-3T04:06", "20261122T0406", "2026-11-22T04:06:00.1+05", "x"):
    try:
        infinium.dumps(infinium.TaskData("n", "d", when, 1.0))
        print(when, "ok")
    except infinium.ValidationError as exc:
        print(when, exc)
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="these shapes are 3.11's fromisoformat")
def test_the_core_decides_iso_without_calling_python() -> None:
    out = subprocess.run(
        [sys.executable, "-c", NO_CALLBACK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(infinium.__file__).resolve().parent.parent)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "2026-W47-3T04:06 ok",
        "20261122T0406 ok",
        "2026-11-22T04:06:00.1+05 ok",
        "x current_datetime must be a valid ISO 8601 string",
    ]


def test_dumps_checks_in_the_anchors_order_with_pythons_whitespace() -> None:
    """``send_task_data``/``dumps`` run the same rules as ``send_task``:
    both required checks before either length; blank as ``str.strip()``."""
    cases = [
        (("n" * 501, None), "description is required"),
        (("n" * 501, "\u3000"), "description cannot be empty"),
        (("\x1c\x1d", "d"), "name cannot be empty"),
        (("n", "\x1f"), "description cannot be empty"),
        (("n" * 501, "d" * 10_001), "name exceeds maximum length of 500 characters"),
    ]
    for (name, description), message in cases:
        with pytest.raises(ValidationError) as info:
            infinium.dumps(TaskData(name, description, WHEN, 1.0))  # type: ignore[arg-type]
        assert str(info.value) == message
