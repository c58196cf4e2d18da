"""What a watched call records beyond infinium-o2's fields: the token details
(cached, cache-write and reasoning tokens), the tool calls the model requested, and
the opt-in cost estimate.

They live on the call record as one private object (``CapturedLlmCall._details``),
so the record's dataclass fields stay infinium-o2's, and become, when the trace is
built, the ``metadata`` of the call's ``llm_call`` step and sums on the trace's
``llm_usage``. A call with none of them gets no step metadata and a trace with none
a plain :class:`LlmUsage`: the bytes sent are infinium-o2's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional

from .._context import CapturedLlmCall
from ..types import LlmUsage
from . import _pricing
from ._values import INPUT_CONTENT_LIMIT, as_int, truncate_preview

__all__ = [
    "TOKEN_DETAILS",
    "CallDetails",
    "DetailedLlmUsage",
    "UsageTotals",
    "add_tool_call",
    "details_of",
    "set_token_details",
]

#: The token details a step's metadata and the trace's usage may carry, in order.
TOKEN_DETAILS = ("cached_tokens", "cache_write_tokens", "reasoning_tokens")

#: A requested tool call's arguments are previewed like a step input.
TOOL_ARGUMENTS_LIMIT = INPUT_CONTENT_LIMIT


class CallDetails:
    """The extra facts of one call (see the module docstring)."""

    __slots__ = (
        "cache_write_tokens",
        "cached_tokens",
        "capture_content",
        "estimate_cost",
        "pending_tools",
        "reasoning_tokens",
        "tool_calls",
    )

    def __init__(self, capture_content: bool = False, estimate_cost: bool = False) -> None:
        self.cached_tokens: Optional[int] = None
        self.cache_write_tokens: Optional[int] = None
        self.reasoning_tokens: Optional[int] = None
        self.tool_calls: List[Dict[str, str]] = []
        #: Streamed tool calls still receiving their arguments: index -> [name, parts].
        self.pending_tools: Optional[Dict[Any, List[Any]]] = None
        self.capture_content = capture_content
        self.estimate_cost = estimate_cost


def details_of(call: CapturedLlmCall) -> CallDetails:
    """The call's details, created on first use."""
    found: Optional[CallDetails] = call._details
    if found is None:
        found = call._details = CallDetails()
    return found


def set_token_details(
    call: CapturedLlmCall,
    cached: Any = None,
    cache_write: Any = None,
    reasoning: Any = None,
) -> None:
    """Record the token details a response reports; zero, missing and non-int values
    are not recorded (a detail is present only when the provider counted some)."""
    cached, cache_write, reasoning = as_int(cached), as_int(cache_write), as_int(reasoning)
    if not (cached or cache_write or reasoning):
        return
    found = details_of(call)
    if cached:
        found.cached_tokens = cached
    if cache_write:
        found.cache_write_tokens = cache_write
    if reasoning:
        found.reasoning_tokens = reasoning


def _arguments_text(arguments: Any) -> str:
    """Arguments as JSON text (a string is taken as it is)."""
    if isinstance(arguments, str):
        return arguments
    try:
        if isinstance(arguments, Mapping) and not isinstance(arguments, dict):
            arguments = dict(arguments)
        return json.dumps(arguments, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(arguments)


def add_tool_call(call: CapturedLlmCall, name: Any, arguments: Any) -> None:
    """Record a tool call the model requested: its name, and with ``capture_content``
    a preview of its arguments (JSON text, <= 500 chars)."""
    found = details_of(call)
    entry = {"name": name if isinstance(name, str) else str(name)}
    if found.capture_content:
        preview = truncate_preview(_arguments_text(arguments), TOOL_ARGUMENTS_LIMIT)
        entry["arguments"] = preview or ""
    found.tool_calls.append(entry)


def start_streamed_tool(call: CapturedLlmCall, key: Any, name: Any, arguments: str = "") -> None:
    """A tool call begins in a stream; its arguments arrive in pieces under ``key``."""
    found = details_of(call)
    if found.pending_tools is None:
        found.pending_tools = {}
    found.pending_tools[key] = [name, [arguments] if arguments else []]


def streamed_tool_arguments(call: CapturedLlmCall, key: Any, piece: Any) -> None:
    found: Optional[CallDetails] = call._details
    pending = found.pending_tools if found is not None else None
    if pending and key in pending and isinstance(piece, str) and found is not None:
        if found.capture_content:
            pending[key][1].append(piece)


def end_streamed_tools(call: CapturedLlmCall) -> None:
    """Record the streamed tool calls begun so far (at the end of their block or stream)."""
    found: Optional[CallDetails] = call._details
    if found is None or not found.pending_tools:
        return
    pending, found.pending_tools = found.pending_tools, None
    for name, parts in pending.values():
        add_tool_call(call, name, "".join(parts))


@dataclass
class DetailedLlmUsage(LlmUsage):
    """An :class:`LlmUsage` with the summed token details of the trace's calls (sent
    after ``calls``; used only when some call reported such tokens)."""

    cached_tokens: Optional[int] = None
    cache_write_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None


_USAGE_FIELDS = tuple(f.name for f in fields(LlmUsage))


class UsageTotals:
    """The sums over a trace's calls: token details and the cost estimate."""

    __slots__ = ("cost", "cost_known", "sums")

    def __init__(self) -> None:
        self.sums: Dict[str, int] = {}
        self.cost: Optional[Decimal] = None
        self.cost_known = True

    def add(self, call: CapturedLlmCall) -> Optional[Dict[str, Any]]:
        """Count ``call`` in; the metadata of its step (None when it has nothing)."""
        found: Optional[CallDetails] = call._details
        if found is None:
            return None
        end_streamed_tools(call)
        meta: Dict[str, Any] = {}
        for key in TOKEN_DETAILS:
            value = getattr(found, key)
            if value:
                meta[key] = value
                self.sums[key] = self.sums.get(key, 0) + value
        if found.tool_calls:
            meta["tool_calls"] = list(found.tool_calls)
        if found.estimate_cost and (call.prompt_tokens or call.completion_tokens):
            cost = _pricing.estimate(call, found)
            if cost is None:
                self.cost_known = False  # a price unknown: no total rather than a guess
            else:
                meta["estimated_cost_usd"] = float(cost)
                self.cost = cost if self.cost is None else self.cost + cost
        return meta or None

    def apply(self, usage: LlmUsage) -> LlmUsage:
        """``usage`` with the sums: the estimated cost when every priced call's model
        was known, the token details on a :class:`DetailedLlmUsage`."""
        if self.cost is not None and self.cost_known:
            usage.estimated_cost_usd = float(self.cost)
        if not self.sums:
            return usage
        values: Dict[str, Any] = {name: getattr(usage, name) for name in _USAGE_FIELDS}
        values.update(self.sums)
        return DetailedLlmUsage(**values)
