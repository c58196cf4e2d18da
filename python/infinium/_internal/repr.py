"""A bounded, exception-proof ``repr`` for the decorators' summaries.

``capped_repr(obj, cap)`` is ``repr(obj)`` cut to ``cap`` characters as
infinium-o2 cuts it, at O(cap) cost: small values go through the built-in
``repr`` after a cheap size probe; large built-in containers, ``str`` and
``bytes`` are rendered piecewise and stop once the cap is exceeded; a ``repr``
that raises renders as ``<TypeName>`` instead of breaking the traced call.
"""

from __future__ import annotations

from typing import Any, Dict, List, Set, Union

from .text import DECORATOR_INPUT_SUMMARY_MAX, truncate

__all__ = ["args_summary", "capped_repr"]

_LEAF_TYPES = frozenset((int, float, bool, type(None), complex))
_PROBE_MAX_DEPTH = 6


def _plain_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:
        return f"<{type(obj).__name__}>"
    # repr() accepts a str subclass from __repr__ (and raises for anything
    # else): its text, as a plain str.
    return text if type(text) is str else str.__str__(text)


def _long_text_repr(obj: Union[str, bytes], budget: int) -> str:
    """Exact first ``budget + 1`` chars of ``repr(obj)`` without escaping all of it.

    ``repr`` picks its quote character from the whole value, so the head is
    extended with the quote characters the full value contains; escaping is per
    character, so the head's repr is then a prefix of the full repr.
    """
    if isinstance(obj, str):
        tail = ("'" if "'" in obj else "") + ('"' if '"' in obj else "")
        return repr(obj[:budget] + tail)
    btail = (b"'" if b"'" in obj else b"") + (b'"' if b'"' in obj else b"")
    return repr(obj[:budget] + btail)


def _fits(obj: Any, budget: int, depth: int) -> int:
    """Cheap lower bound of the remaining budget after ``repr(obj)``; < 0: too big."""
    t = type(obj)
    if t is str or t is bytes:
        return budget - len(obj)
    if t is dict or t is list or t is tuple:
        if depth >= _PROBE_MAX_DEPTH:
            return -1
        budget -= len(obj)  # every item renders as at least one char
        if budget < 0:
            return budget
        depth += 1
        if t is dict:
            for key, value in obj.items():
                budget = _fits(key, budget, depth)
                if budget < 0:
                    return budget
                budget = _fits(value, budget, depth)
                if budget < 0:
                    return budget
        else:
            for item in obj:
                if type(item) in _LEAF_TYPES:
                    continue
                budget = _fits(item, budget, depth)
                if budget < 0:
                    return budget
        return budget
    return budget - 1  # leaves and other objects render through their own repr


def _emit(obj: Any, out: List[str], budget: int, active: Set[int]) -> int:
    """Append ``repr(obj)`` to ``out``; stop early once ``budget`` is spent."""
    t = type(obj)
    if t is str or t is bytes:
        r = repr(obj) if len(obj) <= budget else _long_text_repr(obj, budget)
    elif t is dict or t is list or t is tuple:
        if not obj:
            r = "{}" if t is dict else ("[]" if t is list else "()")
        elif id(obj) in active:
            r = "{...}" if t is dict else ("[...]" if t is list else "(...)")
        else:
            return _emit_container(obj, t, out, budget, active)
    else:
        r = _plain_repr(obj)
    out.append(r)
    return budget - len(r)


def _emit_container(obj: Any, t: type, out: List[str], budget: int, active: Set[int]) -> int:
    oid = id(obj)
    active.add(oid)
    try:
        if t is dict:
            out.append("{")
            budget -= 1
            first = True
            for key, value in obj.items():
                if budget <= 0:
                    return budget
                if not first:
                    out.append(", ")
                    budget -= 2
                first = False
                budget = _emit(key, out, budget, active)
                if budget <= 0:
                    return budget
                out.append(": ")
                budget = _emit(value, out, budget - 2, active)
            out.append("}")
            return budget - 1
        out.append("[" if t is list else "(")
        budget -= 1
        count = 0
        for item in obj:
            if budget <= 0:
                return budget
            if count:
                out.append(", ")
                budget -= 2
            count += 1
            budget = _emit(item, out, budget, active)
        if t is list:
            out.append("]")
            return budget - 1
        if count == 1:
            out.append(",)")
            return budget - 2
        out.append(")")
        return budget - 1
    finally:
        active.discard(oid)


def _walk_repr(obj: Any, cap: int) -> str:
    out: List[str] = []
    try:
        _emit(obj, out, cap + 1, set())
        text = "".join(out)
    except Exception:  # RecursionError, dict mutated concurrently, ...
        text = _plain_repr(obj)
    return truncate(text, cap)


def capped_repr(obj: Any, cap: int) -> str:
    """``repr(obj)`` truncated to ``cap`` like infinium-o2, at O(cap) cost.

    Small values use the built-in ``repr`` (after a cheap size probe). Large
    built-in containers, ``str`` and ``bytes`` are rendered piecewise and stop
    once the cap is exceeded; other objects use their own ``repr``. A ``repr``
    that raises renders as ``<TypeName>`` instead of breaking the traced call.
    """
    t = type(obj)
    if t is str:
        return truncate(repr(obj) if len(obj) <= cap else _long_text_repr(obj, cap), cap)
    if t in _LEAF_TYPES:
        return truncate(_plain_repr(obj), cap)
    try:
        if _fits(obj, cap, 0) >= 0:
            # A str, or a str subclass from a user's __repr__ (as plain text).
            return truncate(str.__str__(repr(obj)), cap)
    except Exception:
        pass
    return _walk_repr(obj, cap)


def args_summary(args: Any, kwargs: Dict[str, Any]) -> str:
    """``repr({"args": args, "kwargs": kwargs})`` capped at 3000 chars."""
    cap = DECORATOR_INPUT_SUMMARY_MAX
    budget = cap - 24
    try:
        for value in args:
            t = type(value)
            if t in _LEAF_TYPES:
                continue
            budget = budget - len(value) if t is str else _fits(value, budget, 1)
            if budget < 0:
                break
        else:
            for key, value in kwargs.items():
                t = type(value)
                budget -= len(key)
                if t in _LEAF_TYPES:
                    continue
                budget = budget - len(value) if t is str else _fits(value, budget, 1)
                if budget < 0:
                    break
            else:
                # What repr({"args": args, "kwargs": kwargs}) gives, without the dict.
                text = "{'args': " + repr(args) + ", 'kwargs': " + repr(kwargs) + "}"
                return truncate(text, cap)
    except Exception:
        pass
    return _walk_repr({"args": args, "kwargs": kwargs}, cap)
