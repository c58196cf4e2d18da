"""TraceBuilder, StepContext and the tracing decorators.

Behaviour follows ``infinium-o2`` 1.2.0 (caps, step shapes, aggregate usage), with
these additions: ``StepContext.run`` and ``async with`` (JavaScript-edition parity),
thread-safe step numbering, a bounded and exception-proof ``repr`` for the decorator
summaries, the decorators picking sync or async by the decorated function, and
generator functions traced across their iteration (infinium-o2 traced only the
creation of the generator object).

All captured data is factual (timings, token counts, error types); the agent never
grades its own work.
"""

# This module is the public face; the code lives in infinium._internal
# (builder: steps and traces, decorate: the decorators, hooks: the trace hook
# registry, repr: the bounded repr, send: sending a decorated call's trace).

from __future__ import annotations

import logging
from typing import Any

from ._internal.builder import StepContext, TraceBuilder, get_sdk_version
from ._internal.decorate import async_trace_agent, trace_agent, trace_decorator
from ._internal.hooks import add_trace_exporter, remove_trace_exporter
from .types import (
    EnvironmentContext,
    ErrorDetail,
    ExecutionStep,
    ExpectedOutcome,
    LlmCall,
    LlmUsage,
    TaskData,
    ToolCall,
)
from .utils import get_current_iso_datetime, truncate_string

# infinium-o2's module has no __all__, so ``from infinium.tracing import *`` also
# gave its logger and the types and helpers it imports; they stay available that way.
__all__ = [
    "EnvironmentContext",
    "ErrorDetail",
    "ExecutionStep",
    "ExpectedOutcome",
    "LlmCall",
    "LlmUsage",
    "StepContext",
    "TaskData",
    "ToolCall",
    "TraceBuilder",
    "add_trace_exporter",
    "async_trace_agent",
    "get_current_iso_datetime",
    "logger",
    "remove_trace_exporter",
    "trace_agent",
    "trace_decorator",
    "truncate_string",
]

logger = logging.getLogger(__name__)
"""The ``infinium.tracing`` logger: where the decorators log a failed send or trace hook."""

# The public classes and functions present themselves as this module's (repr,
# help, pickling by reference), wherever in _internal they are written.
for _public in (
    StepContext,
    TraceBuilder,
    add_trace_exporter,
    async_trace_agent,
    remove_trace_exporter,
    trace_agent,
    trace_decorator,
):
    _public.__module__ = __name__
del _public


def __getattr__(name: str) -> Any:
    # infinium-o2 exposes ``infinium.tracing.__version__``; resolve it lazily.
    if name == "__version__":
        return get_sdk_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
