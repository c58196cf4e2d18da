"""Trace context (re-exported from :mod:`infinium._context`) and the machinery the
provider adapters share: call wrappers and transparent stream wrappers.

A wrapped call outside a trace goes straight to the original method (one context
variable read). Inside one, a :class:`CapturedLlmCall` is appended to the trace
context before the request, so calls keep their start order, and completed from the
response (or the stream's items) afterwards.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

from .._context import (
    CapturedLlmCall,
    CapturedPromptFetch,
    TraceContext,
    _current_trace_ctx,
    get_current_trace_context,
    record_prompt_fetch,
    set_trace_context,
)

__all__ = [
    "Adapter",
    "AsyncStreamWrapper",
    "CapturedLlmCall",
    "CapturedPromptFetch",
    "StreamWrapper",
    "TraceContext",
    "get_current_trace_context",
    "is_patched",
    "make_wrapper",
    "mark_patched",
    "record_prompt_fetch",
    "set_trace_context",
    "truncate_preview",
]

# Input previews stay short (the judge renders ~100 chars of a step input);
# output previews match the 1500-char cap of a step output preview.
INPUT_CONTENT_LIMIT = 500
OUTPUT_CONTENT_LIMIT = 1500

_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns


def truncate_preview(text: Optional[str], limit: int) -> Optional[str]:
    """Preview truncation of infinium-o2's adapters: ``limit`` chars plus ``...``."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    return text[:limit] + "..." if len(text) > limit else text


def as_number(value: Any) -> Optional[float]:
    """A temperature as given, or None for sentinels (``NOT_GIVEN``) and non-numbers."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def as_int(value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def model_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "unknown"
    return str(value)


class Adapter:
    """Provider-specific extraction; subclasses override the hooks."""

    provider = "unknown"
    #: The patched method always returns a stream (``generate_content_stream``).
    always_stream = False

    def __init__(self, capture_content: bool) -> None:
        self.capture_content = capture_content

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        """The call record before the request, and whether a stream is requested."""
        raise NotImplementedError

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        """Complete ``call`` from a non-streamed response."""

    def on_item(self, call: CapturedLlmCall, item: Any) -> None:
        """Update ``call`` from one stream chunk / event."""


def _record_error(call: CapturedLlmCall, t0: int, exc: BaseException) -> None:
    call.latency_ns = _perf_ns() - t0
    call.error_type = type(exc).__name__
    call.error_message = str(exc)


def make_wrapper(
    original: Callable[..., Any],
    adapter: Adapter,
    *,
    is_async: bool,
    method: bool = False,
) -> Callable[..., Any]:
    """Wrap ``original`` (a bound method, or with ``method`` a class function)."""
    get_ctx = _current_trace_ctx.get

    def _begin(
        ctx: TraceContext, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        if method:
            call, streaming = adapter.describe(args[0] if args else None, args[1:], kwargs)
        else:
            call, streaming = adapter.describe(None, args, kwargs)
        call.start_time_ns = _time_ns()
        ctx.calls.append(call)
        return call, streaming or adapter.always_stream

    def _complete(call: CapturedLlmCall, t0: int, response: Any) -> None:
        call.latency_ns = _perf_ns() - t0
        try:
            adapter.on_response(call, response)
        except Exception:  # never let extraction break the user's call
            pass

    if is_async:

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = get_ctx()
            if ctx is None:
                return await original(*args, **kwargs)
            call, streaming = _begin(ctx, args, kwargs)
            t0 = _perf_ns()
            try:
                response = await original(*args, **kwargs)
            except BaseException as exc:
                _record_error(call, t0, exc)
                raise
            if streaming:
                return AsyncStreamWrapper(response, call, t0, adapter)
            _complete(call, t0, response)
            return response

        wrapper: Callable[..., Any] = async_wrapper
    else:

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = get_ctx()
            if ctx is None:
                return original(*args, **kwargs)
            call, streaming = _begin(ctx, args, kwargs)
            t0 = _perf_ns()
            try:
                response = original(*args, **kwargs)
            except BaseException as exc:
                _record_error(call, t0, exc)
                raise
            if streaming:
                return StreamWrapper(response, call, t0, adapter)
            _complete(call, t0, response)
            return response

        wrapper = sync_wrapper

    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(wrapper, attr, getattr(original, attr))
        except (AttributeError, TypeError):
            pass
    mark_patched(wrapper, original)
    return wrapper


def mark_patched(wrapper: Any, original: Any) -> None:
    wrapper._infinium_patched = True
    wrapper._infinium_original = original


def is_patched(fn: Any) -> bool:
    return getattr(fn, "_infinium_patched", None) is True


def _start_stream(call: CapturedLlmCall, t0: int, adapter: Adapter) -> None:
    call._t0 = t0
    call._t_last = 0
    call._parts = [] if adapter.capture_content else None
    call._output_limit = OUTPUT_CONTENT_LIMIT
    call._open = True


class StreamWrapper:
    """Transparent wrapper of a sync stream (iterator and context manager).

    The call record is finalised exactly once: at the end of the stream, on
    ``close()`` / ``__exit__``, when the wrapper is garbage-collected, or at the
    latest when the trace is built.
    """

    __slots__ = ("__weakref__", "_adapter", "_call", "_it", "_stream")

    def __init__(self, stream: Any, call: CapturedLlmCall, t0: int, adapter: Adapter) -> None:
        self._stream = stream
        self._call = call
        self._adapter = adapter
        self._it: Any = None
        _start_stream(call, t0, adapter)

    def __iter__(self) -> StreamWrapper:
        return self

    def __next__(self) -> Any:
        it = self._it
        if it is None:
            it = self._it = iter(self._stream)
        call = self._call
        try:
            item = next(it)
        except StopIteration:
            call.finish_stream()
            raise
        except BaseException as exc:
            call.finish_stream(exc)
            raise
        call._t_last = _perf_ns()
        try:
            self._adapter.on_item(call, item)
        except Exception:
            pass
        return item

    def __enter__(self) -> StreamWrapper:
        enter = getattr(self._stream, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        self._call.finish_stream()
        exit_ = getattr(self._stream, "__exit__", None)
        if exit_ is not None:
            return exit_(*exc_info)
        return False

    def close(self) -> None:
        self._call.finish_stream()
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        try:
            self._call.finish_stream()
        except Exception:
            pass

    def __getattr__(self, name: str) -> Any:
        if name in StreamWrapper.__slots__:
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return f"<infinium stream wrapper of {self._stream!r}>"


class AsyncStreamWrapper:
    """Transparent wrapper of an async stream (async iterator and context manager)."""

    __slots__ = ("__weakref__", "_adapter", "_call", "_it", "_stream")

    def __init__(self, stream: Any, call: CapturedLlmCall, t0: int, adapter: Adapter) -> None:
        self._stream = stream
        self._call = call
        self._adapter = adapter
        self._it: Any = None
        _start_stream(call, t0, adapter)

    def __aiter__(self) -> AsyncStreamWrapper:
        return self

    async def __anext__(self) -> Any:
        it = self._it
        if it is None:
            it = self._it = self._stream.__aiter__()
        call = self._call
        try:
            item = await it.__anext__()
        except StopAsyncIteration:
            call.finish_stream()
            raise
        except BaseException as exc:
            call.finish_stream(exc)
            raise
        call._t_last = _perf_ns()
        try:
            self._adapter.on_item(call, item)
        except Exception:
            pass
        return item

    async def __aenter__(self) -> AsyncStreamWrapper:
        enter = getattr(self._stream, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        self._call.finish_stream()
        exit_ = getattr(self._stream, "__aexit__", None)
        if exit_ is not None:
            return await exit_(*exc_info)
        return False

    async def close(self) -> None:
        self._call.finish_stream()
        close = getattr(self._stream, "close", None) or getattr(self._stream, "aclose", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result

    aclose = close

    def __del__(self) -> None:
        try:
            self._call.finish_stream()
        except Exception:
            pass

    def __getattr__(self, name: str) -> Any:
        if name in AsyncStreamWrapper.__slots__:
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return f"<infinium async stream wrapper of {self._stream!r}>"
