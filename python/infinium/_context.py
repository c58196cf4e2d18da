"""Trace-scope context shared by the decorators, ``watch()`` wrappers and ``get_prompt``.

A decorated call opens one :class:`TraceContext` and makes it current through a
:class:`contextvars.ContextVar`; LLM wrappers and prompt fetches append to it, and the
decorator turns what was captured into execution steps, an aggregate ``LlmUsage`` and
the ``prompt_studio`` section when the call ends.

The context object itself is shared by reference, so threads started through
``contextvars.copy_context()`` and tasks created inside the traced call record into
the same trace. Appends are single ``list.append`` calls (atomic under the GIL);
stream finalisation is guarded so it happens exactly once.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import InitVar, dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .types import PromptContent
from .utils import get_current_iso_datetime

__all__ = [
    "CapturedLlmCall",
    "CapturedPromptFetch",
    "TraceContext",
    "exception_text",
    "get_current_trace_context",
    "iso_now",
    "record_prompt_fetch",
    "set_trace_context",
]


#: Now as ISO 8601 UTC with a ``Z``: ``utils.get_current_iso_datetime``, the
#: one clock every timestamp of the SDK comes from (and so a patched
#: ``infinium.utils.datetime`` or freezegun reaches all of them, as in the
#: anchor, whose timestamps all come from that function).
iso_now: Callable[[], str] = get_current_iso_datetime


def exception_text(exc: BaseException) -> str:
    """``str(exc)`` for a trace's error records. An exception whose ``__str__``
    fails reads as Python's traceback prints it, so recording it never replaces
    the exception the traced code raised."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


class _CallState:
    """Bookkeeping of a :class:`CapturedLlmCall` kept out of its dataclass fields, so
    ``fields()``, ``asdict()``, ``repr`` and ``==`` are infinium-o2's (annotations
    on a plain base class are not dataclass fields; instances override these
    class-level defaults when a wrapper sets them)."""

    # Wall-clock start (ns since the epoch), used by the OpenTelemetry exporter.
    start_time_ns: Optional[int] = None
    # Streaming state: monotonic start, time of the last item received,
    # accumulated output text, whether a stream is still open, preview cap.
    _t0: int = 0
    _t_last: int = 0
    _parts: Optional[List[str]] = None
    _open: bool = False
    _output_limit: int = 1500
    # What watch() records beyond these fields (integrations._details.CallDetails).
    _details: Any = None


@dataclass
class CapturedLlmCall(_CallState):
    """One intercepted LLM API call (fields, their order and names as in infinium-o2)."""

    provider: str
    model: str
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    temperature: Optional[float] = None
    latency_ns: Optional[int] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    # Opt-in content capture
    input_preview: Optional[str] = None
    output_preview: Optional[str] = None
    # ``start_time_ns`` (see _CallState) is also a constructor argument, not a field.
    start_time_ns: InitVar[Optional[int]] = None

    def __post_init__(self, start_time_ns: Optional[int]) -> None:
        if start_time_ns is not None:
            self.start_time_ns = start_time_ns

    def finish_stream(self, error: Optional[BaseException] = None) -> None:
        """Finalise a streamed call exactly once (end, close, GC or trace end).

        Latency runs from the request to the last item received (or to now when
        nothing arrived); the output preview is the accumulated text.
        """
        if not self._open:
            return
        self._open = False
        end = self._t_last or time.perf_counter_ns()
        self.latency_ns = end - self._t0
        if error is not None and self.error_type is None:
            self.error_type = type(error).__name__
            self.error_message = str(error)
        parts = self._parts
        if parts:
            text = "".join(parts)
            limit = self._output_limit
            self.output_preview = text[:limit] + "..." if len(text) > limit else text
            self._parts = None


@dataclass
class CapturedPromptFetch:
    """One ``get_prompt()`` call recorded inside a trace scope."""

    prompt_id: str
    prompt_name: str
    version: int
    source: str = "prompt_studio"
    variables_used: Optional[List[str]] = None
    fetched_at: Optional[str] = None


@dataclass
class TraceContext:
    """Mutable bag of what was captured during one decorated call."""

    calls: List[CapturedLlmCall] = field(default_factory=list)
    prompts: List[CapturedPromptFetch] = field(default_factory=list)


_current_trace_ctx: contextvars.ContextVar[Optional[TraceContext]] = contextvars.ContextVar(
    "infinium_trace_ctx", default=None
)


def get_current_trace_context() -> Optional[TraceContext]:
    """The active :class:`TraceContext`, or ``None`` outside a traced call.

    A function (as in infinium-o2: ``inspect.signature`` and ``help`` work on it);
    the SDK's own wrappers read the context variable directly.
    """
    return _current_trace_ctx.get()


def set_trace_context(ctx: Optional[TraceContext]) -> contextvars.Token[Optional[TraceContext]]:
    """Set (or clear) the active trace context; returns the token for ``reset``."""
    return _current_trace_ctx.set(ctx)


def record_prompt_fetch(prompt: PromptContent, variables: Optional[Dict[str, Any]]) -> None:
    """Record a successful ``get_prompt`` into the active trace, if any.

    Called by the clients after every fetch; a no-op outside a traced call.
    """
    ctx = _current_trace_ctx.get()
    if ctx is None:
        return
    ctx.prompts.append(
        CapturedPromptFetch(
            prompt_id=prompt.prompt_id,
            prompt_name=prompt.name,
            version=prompt.version,
            source="prompt_studio",
            variables_used=list(variables.keys()) if variables else None,
            fetched_at=iso_now(),
        )
    )
