"""Seeded random traces, serialised by whichever ``infinium`` is importable.

Run as a script by ``test_payload.test_random_traces_match_the_anchor`` under
both this package and the anchor SDK: the same seed builds the same traces on
both sides, and each prints one line per trace, ``<i> OK <body hex>`` or
``<i> ERR <exception class>``. Ours serialises with ``infinium.dumps``; the
anchor as its client does before a send (``_task_data_to_dict``, then
``json.dumps`` as httpx encodes a ``json=`` body).

The values stay inside what the anchor can send (text with control
characters, quotes, astral and non-BMP-adjacent code points; ints past 64
bits; floats from subnormal to the largest; int, float and str subclasses;
tuples; dict keys that are ints, floats, bools and None; dataclasses and
dicts where the wire protocol has objects; ``None`` items and empty objects
that the omission rules drop), with a few it cannot (a dataclass inside a
list inside a list), which ours sends and the anchor fails on.

Usage: ``python random_traces.py SEED COUNT [dict]`` (``dict``: ours reads
dataclass fields through ``__dict__``, the default before Python 3.11).
"""

import dataclasses
import enum
import json
import random
import sys
from typing import Optional

import infinium
from infinium import ErrorDetail, ExecutionStep, InfiniumClient, TaskData

WHEN = "2026-11-22T04:06:00.123456Z"
SPECIAL_CHARS = (
    [chr(c) for c in range(0x20)]
    + list("\"\\/\x7f\x80<>&'")
    + [
        "\u00e9",
        "\u2028",
        "\u2029",
        "\u2603",
        "\ufeff",
        "\uffff",
        "\U0001f600",
        "\U0010ffff",
    ]
)
SPECIAL_FLOATS = [
    0.0,
    -0.0,
    0.1,
    1e-7,
    1e-4,
    9.9999e-5,
    5e-324,
    1e15,
    9.999999999999999e14,
    1e16,
    1e22,
    123456789012345680.0,
    1.7976931348623157e308,
]
BIG_INTS = [2**63, -(2**63) - 1, 2**64, 10**30, -(10**40), 0, -1]
#: Every dataclass of the wire protocol but TaskData.
DATACLASSES = [
    getattr(infinium, name)
    for name in (
        "ErrorDetail ToolCall LlmCall ExecutionStep ExpectedOutcome EnvironmentContext LlmUsage"
        " TimeTracking Customer Support Sales Marketing Content Research Project Development"
        " Executive General"
    ).split()
]


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


class Count(int):
    pass


class Ratio(float):
    pass


class Traces:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self) -> str:
        rng = self.rng
        out = []
        for _ in range(rng.choice([0, 1, 2, 5, 20, 80])):
            r = rng.random()
            if r < 0.6:
                out.append(chr(rng.randrange(0x20, 0x7F)))
            elif r < 0.8:
                out.append(rng.choice(SPECIAL_CHARS))
            else:
                out.append(chr(rng.randrange(0xA0, 0xD800)))
        return "".join(out)

    def number(self) -> object:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return rng.randrange(-1000, 1000)
        if r < 0.35:
            return rng.choice(BIG_INTS)
        if r < 0.4:
            return rng.choice([True, False])
        if r < 0.6:
            return rng.uniform(-1e6, 1e6)
        if r < 0.7:
            return round(rng.uniform(-1000, 1000), rng.randrange(0, 6))
        if r < 0.8:
            return rng.choice(SPECIAL_FLOATS)
        if r < 0.85:
            return Count(rng.randrange(-5, 5))
        if r < 0.9:
            return Ratio(rng.uniform(-10, 10))
        if r < 0.95:
            return Level.HIGH
        return rng.getrandbits(64) * rng.choice([1, -1]) / 2 ** rng.randrange(0, 80)

    def key(self) -> object:
        rng = self.rng
        r = rng.random()
        if r < 0.8:
            return self.text()
        if r < 0.85:
            return rng.randrange(-100, 100)
        if r < 0.9:
            return rng.choice([True, False, None])
        if r < 0.95:
            return rng.uniform(-10, 10)
        return Text(self.text())

    def value(self, depth: int, dataclass_ok: bool) -> object:
        """Any value; a dataclass only where the anchor converts one (a field,
        or an item of a list or tuple field), and below that level by chance."""
        rng = self.rng
        r = rng.random() * (0.6 if depth > 3 else 1.0)
        if r < 0.25:
            return self.text()
        if r < 0.45:
            return self.number()
        if r < 0.5:
            return None
        if r < 0.6:
            return Text(self.text())
        if r < 0.75:
            return [self.value(depth + 1, dataclass_ok) for _ in range(rng.randrange(4))]
        if r < 0.8:
            return tuple(self.value(depth + 1, dataclass_ok) for _ in range(rng.randrange(3)))
        if r < 0.95:
            return self.mapping(depth + 1)
        return self.dataclass(depth + 1) if dataclass_ok else None

    def mapping(self, depth: int) -> dict:
        return {self.key(): self.value(depth + 1, False) for _ in range(self.rng.randrange(4))}

    def dataclass(self, depth: int, cls: Optional[type] = None) -> object:
        rng = self.rng
        cls = cls or rng.choice(DATACLASSES)
        kwargs = {}
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required or rng.random() < 0.4:
                if f.name == "metadata":
                    kwargs[f.name] = self.mapping(depth + 1)
                else:
                    kwargs[f.name] = self.value(depth + 1, True) if depth < 5 else self.text()
        return cls(**kwargs)

    def task(self, i: int) -> TaskData:
        rng = self.rng
        kwargs = {
            "name": f"t{i}",
            "description": "d " + self.text() + "x",
            "current_datetime": WHEN,
            "duration": rng.choice([0, 1, 1.5, 86400, rng.uniform(0, 100)]),
        }
        for f in dataclasses.fields(TaskData)[4:]:
            if rng.random() >= 0.3:
                continue
            if f.name in ("input_summary", "output_summary"):
                kwargs[f.name] = self.text()
            elif f.name in ("steps", "errors"):
                cls = ExecutionStep if f.name == "steps" else ErrorDetail
                items = [
                    self.dataclass(1, cls)
                    if rng.random() < 0.7
                    else rng.choice([None, {}, self.mapping(2)])
                    for _ in range(rng.randrange(4))
                ]
                kwargs[f.name] = tuple(items) if rng.random() < 0.2 else items
            elif rng.random() < 0.4:
                kwargs[f.name] = self.mapping(2)
            else:
                kwargs[f.name] = self.dataclass(1)
        return TaskData(**kwargs)


def anchor_body(client: InfiniumClient, task: TaskData) -> bytes:
    as_dict = client._task_data_to_dict(task)
    text = json.dumps(as_dict, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def main() -> None:
    seed, count = int(sys.argv[1]), int(sys.argv[2])
    ours = getattr(infinium, "dumps", None)
    if ours is not None and sys.argv[3:] == ["dict"]:
        infinium._core._set_field_reading("dict")
    client = None if ours is not None else InfiniumClient(agent_id="abc", agent_secret="12345678")
    traces = Traces(seed)
    for i in range(count):
        task = traces.task(i)
        try:
            body = ours(task) if client is None else anchor_body(client, task)
        except Exception as exc:
            print(i, "ERR", type(exc).__name__)
        else:
            print(i, "OK", body.hex())


if __name__ == "__main__":
    main()
