"""The ``TaskData`` field lists as the Python layer reads them, and
constructors that fill a dataclass by field name at the cost of a positional
call.

The lists are the Rust core's schema (``_core.TASK_FIELDS``,
``_core.TOP_LEVEL_FIELDS``); the dataclasses are checked against them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Sequence, Tuple, Type, TypeVar

from .. import _core

__all__ = ["TASK_FIELDS", "TOP_LEVEL_FIELDS", "by_name"]

T = TypeVar("T")

#: Every ``TaskData`` field, in declaration order.
TASK_FIELDS: Tuple[str, ...] = _core.TASK_FIELDS

#: The optional ``TaskData`` fields that are not sections (what ``send_task``
#: accepts as keyword arguments besides the sections), in declaration order.
TOP_LEVEL_FIELDS: Tuple[str, ...] = _core.TOP_LEVEL_FIELDS


def by_name(cls: Type[T], fields: Sequence[str], params: Sequence[str]) -> Callable[..., T]:
    """A function ``f(*params)`` returning ``cls(...)`` with each of ``params``
    passed to the field of that name and every other field left at its default.

    ``fields`` is ``cls``'s field list as the schema states it (checked against
    the dataclass here, so a drift fails at import rather than misplacing a
    value). The call to ``cls`` is positional: keyword arguments cost half as
    much again, and the decorators build one ``TaskData`` per call.
    """
    declared = dataclasses.fields(cls)  # type: ignore[arg-type]
    if [f.name for f in declared] != list(fields):
        raise TypeError(f"{cls.__name__} fields {[f.name for f in declared]} != schema {fields}")
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
    namespace: Dict[str, Any] = {"_cls": cls}
    args = []
    for f in declared:
        if f.name in params:
            args.append(f.name)
        elif f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            args.append(f"_default_{f.name}")
        else:
            raise TypeError(f"{cls.__name__}.{f.name} has no default: pass it")
    source = f"def make({', '.join(params)}):\n    return _cls({', '.join(args)})\n"
    exec(source, namespace)
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = make.__name__ = f"{cls.__name__}_by_name"
    return make
