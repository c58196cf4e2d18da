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
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

from . import _core
from .types import PromptContent

__all__ = [
    "CapturedLlmCall",
    "CapturedPromptFetch",
    "TraceContext",
    "clock_now",
    "exception_text",
    "get_current_trace_context",
    "iso_now",
    "record_prompt_fetch",
    "set_trace_context",
]


# The real class, kept where freezegun does not look: it rebinds every module
# attribute that *is* the real ``datetime`` (``datetime`` below included) while
# a clock is frozen, but not the items of a tuple.
_REAL_DATETIME = (datetime,)
_rust_iso_now: Callable[[], str] = _core.iso_now


def clock_now(dt: Any) -> str:
    """Now as ISO 8601 UTC with a ``Z``, from ``dt``: a module's ``datetime``.

    The real class: stamped in Rust, always with microseconds
    (``2026-11-22T07:10:52.419928Z``; every decorated call makes one). A
    patched one (freezegun, ``mock.patch``): asked as infinium-o2 asks it,
    ``dt.now(timezone.utc).isoformat()``, so tests that freeze the clock see
    the anchor's exact text (no fraction on a whole second).
    """
    if dt is _REAL_DATETIME[0]:
        return _rust_iso_now()
    return str(dt.now(timezone.utc).isoformat()).replace("+00:00", "Z")


def iso_now() -> str:
    """Now as ISO 8601 UTC with a ``Z`` (:func:`clock_now` of this module's
    ``datetime``, the real-clock case inline: every decorated call makes one)."""
    if datetime is _REAL_DATETIME[0]:
        return _rust_iso_now()
    return clock_now(datetime)


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
