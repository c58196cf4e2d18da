"""Fuzzing the serialiser with hostile user objects: protocol methods
(``isoformat``, ``model_dump``, ``__str__``, ``__iter__``, ``__eq__``,
``__lt__``, ``__hash__``, properties, ``.value``) that return wrong types,
raise, or mutate the structure being walked. Whatever they do, the result is
bytes holding valid JSON, a ValidationError/TypeError with a message, or the
user's own exception; never a crash.

The example budget is fixed and derandomised so the suite runs the same
examples every time; ``INFINIUM_FUZZ_EXAMPLES`` raises it for a long run.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import os
import uuid
from typing import Any, ClassVar, Dict, List, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import infinium
from infinium import ExecutionStep, TaskData, ValidationError, _core

WHEN = "2026-01-01T00:00:00Z"
EXAMPLES = int(os.environ.get("INFINIUM_FUZZ_EXAMPLES", "300"))


class Boom(Exception):
    """What a hostile method raises on purpose."""


class Victims:
    """The lists and dicts of the structure being written (hostile methods
    mutate them while the walk is inside)."""

    lists: ClassVar[List[List[Any]]] = []
    dicts: ClassVar[List[Dict[Any, Any]]] = []
    #: Hostile methods act only while the serialiser runs (not while
    #: hypothesis builds the values).
    armed: ClassVar[bool] = False


class StrSub(str):
    pass


def act(action: str, target: int) -> Any:
    """Run ``action`` (a mutation or a kind of result) and return the result."""
    if not Victims.armed:
        return "2026-01-01"
    if action == "clear_list" and Victims.lists:
        Victims.lists[target % len(Victims.lists)].clear()
    elif action == "grow_list" and Victims.lists:
        victim = Victims.lists[target % len(Victims.lists)]
        if len(victim) < 10_000:
            victim.append(len(victim))
    elif action == "grow_dict" and Victims.dicts:
        victim = Victims.dicts[target % len(Victims.dicts)]
        victim[f"k{len(victim)}"] = 1
    elif action == "clear_dict" and Victims.dicts:
        Victims.dicts[target % len(Victims.dicts)].clear()
    elif action == "raise":
        raise Boom(action)
    return {
        "bytes": b"\xff" * 64,
        "int": 12345,
        "none": None,
        "strsub": StrSub("s\u00e9\U0001f600"),
        "list": [1, "x"],
        "surrogate": "\ud800",
    }.get(action, "2026-01-01")


ACTIONS = st.sampled_from(
    [
        "str",
        "bytes",
        "int",
        "none",
        "strsub",
        "list",
        "surrogate",
        "raise",
        "clear_list",
        "grow_list",
        "grow_dict",
        "clear_dict",
    ]
)


class HostileDate(datetime.date):
    action = "str"
    target = 0

    def isoformat(self) -> Any:  # type: ignore[override]
        return act(self.action, self.target)


class HostileModel:
    def __init__(self, action: str, target: int, inner: Any) -> None:
        self.action, self.target, self.inner = action, target, inner

    def model_dump(self, **kw: Any) -> Any:
        result = act(self.action, self.target)
        return self.inner if result == "2026-01-01" else result


class HostileUUID(uuid.UUID):
    action = "str"

    def __str__(self) -> Any:
        result = act(self.action, 0)
        return result if isinstance(result, str) else "u"


class HostileOrder:
    """In a set: sorting calls ``__lt__``; as a dict key in an instance
    dict, lookups call ``__eq__`` (same hash as a field name)."""

    def __init__(self, action: str, target: int) -> None:
        self.action, self.target = action, target

    def __lt__(self, other: Any) -> Any:
        return act(self.action, self.target)

    def __eq__(self, other: Any) -> Any:
        return act(self.action, self.target)

    def __hash__(self) -> int:
        return hash("x")


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


@dataclasses.dataclass
class Meta:
    x: Any = None
    y: Any = None

    @property
    def z(self) -> Any:
        return act("grow_list", 0)


class HostileIterable:
    def __init__(self, action: str, target: int, items: List[Any]) -> None:
        self.action, self.target, self.items = action, target, items

    def __iter__(self) -> Any:
        for item in self.items:
            act(self.action, self.target)
            yield item


def hostile_date(action: str, target: int) -> HostileDate:
    d = HostileDate(2026, 1, 1)
    d.action, d.target = action, target
    return d


def hostile_uuid(action: str) -> HostileUUID:
    u = HostileUUID(int=7)
    object.__setattr__(u, "action", action)
    return u


LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.uuids(),
    st.sampled_from(list(Color)),
    st.builds(hostile_date, ACTIONS, st.integers(0, 5)),
    st.builds(hostile_uuid, ACTIONS),
    st.builds(StrSub, st.text(max_size=4)),
)


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(
        st.text(max_size=4),
        st.integers(-5, 5),
        st.none(),
        st.booleans(),
        st.sampled_from(list(Color)),
        st.uuids(),
    )
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.builds(Meta, children, children),
        st.builds(HostileModel, ACTIONS, st.integers(0, 5), children),
        st.builds(HostileIterable, ACTIONS, st.integers(0, 5), st.lists(children, max_size=3)),
        st.frozensets(
            st.one_of(st.integers(-3, 3), st.builds(HostileOrder, ACTIONS, st.integers(0, 5))),
            max_size=3,
        ),
        st.builds(
            lambda action, target, value: with_hostile_key(Meta(value), action, target),
            ACTIONS,
            st.integers(0, 5),
            children,
        ),
    )


def with_hostile_key(meta: Meta, action: str, target: int) -> Meta:
    meta.__dict__[HostileOrder(action, target)] = 1
    return meta


VALUES = st.recursive(LEAVES, extend, max_leaves=12)


def collect(value: Any, seen: Optional[set[int]] = None) -> None:
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, list):
        Victims.lists.append(value)
        items: Any = value
    elif isinstance(value, dict):
        Victims.dicts.append(value)
        items = list(value.values())
    elif isinstance(value, (tuple, frozenset)):
        items = value
    elif isinstance(value, (Meta, HostileModel, HostileIterable)):
        items = [v for v in vars(value).values() if not isinstance(v, (str, int))]
    else:
        return
    for item in list(items):
        collect(item, seen)


def check(make: Any) -> None:
    Victims.armed = True
    try:
        out = make()
    except (ValidationError, TypeError) as exc:
        assert str(exc), "an error without a message"
        return
    except Boom:
        return
    finally:
        Victims.armed = False
    assert isinstance(out, bytes)
    json.loads(out)


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(value=VALUES, as_steps=st.booleans())
def test_hostile_values_never_crash(value: Any, as_steps: bool) -> None:
    Victims.lists, Victims.dicts = [], []
    metadata = {"v": value}
    steps: Any = [ExecutionStep(1, "a", "d", metadata=metadata)]
    if as_steps:
        steps.append(value)
    collect(steps)
    check(lambda: infinium.dumps(TaskData("n", "d", WHEN, 1.0, steps=steps)))
    Victims.lists, Victims.dicts = [], []
    holder = [value]
    collect(holder)
    check(lambda: _core.dumps_value(holder))
    check(
        lambda: infinium.dumps(
            {
                "name": "n",
                "description": "d",
                "current_datetime": WHEN,
                "duration": 1.0,
                "llm_usage": {"v": value},
            }
        )
    )
