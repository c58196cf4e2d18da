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
    exception_text,
    get_current_trace_context,
    record_prompt_fetch,
    set_trace_context,
)
from ._details import CallDetails
from ._values import OUTPUT_CONTENT_LIMIT, as_int, as_number, model_name, truncate_preview

__all__ = [
    "Adapter",
    "AsyncStreamWrapper",
    "begin_call",
    "copy_identity",
    "record_error",
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

_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns


def take_model_and_usage(
    call: CapturedLlmCall, response: Any, prompt_field: str, completion_field: str
) -> None:
    """Model and token counts of a response with ``model`` and ``usage`` attributes."""
    model = getattr(response, "model", None)
    if model:
        call.model = model_name(model)
    usage = getattr(response, "usage", None)
    if usage:
        call.prompt_tokens = as_int(getattr(usage, prompt_field, None))
        call.completion_tokens = as_int(getattr(usage, completion_field, None))


class Adapter:
    """Provider-specific extraction; subclasses override the hooks."""

    provider = "unknown"
    #: The patched method always returns a stream (``generate_content_stream``).
    always_stream = False
    #: The patched method never returns a stream (``parse``), whatever ``stream`` says.
    never_stream = False

    def __init__(
        self, capture_content: bool, estimate_cost: bool = False, never_stream: bool = False
    ) -> None:
        self.capture_content = capture_content
        self.estimate_cost = estimate_cost
        if never_stream:  # (else the class's own default)
            self.never_stream = True

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        """The call record before the request, and whether a stream is requested."""
        raise NotImplementedError

    def new_call(
        self, provider: str, kwargs: Dict[str, Any], preview: Callable[[], Optional[str]]
    ) -> CapturedLlmCall:
        """The record of a call made with ``model=`` and ``temperature=`` keywords;
        ``preview()`` gives its input preview (called with ``capture_content`` only)."""
        return CapturedLlmCall(
            provider=provider,
            model=model_name(kwargs.get("model", "unknown")),
            temperature=as_number(kwargs.get("temperature")),
            input_preview=preview() if self.capture_content else None,
        )

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        """Complete ``call`` from a non-streamed response."""

    def on_item(self, call: CapturedLlmCall, item: Any) -> None:
        """Update ``call`` from one stream chunk / event."""


def begin_call(
    ctx: TraceContext,
    adapter: Adapter,
    method: bool,
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
) -> Tuple[CapturedLlmCall, bool, int]:
    """Record a call in ``ctx`` before its request: (call, streaming, monotonic start).
    With ``method``, ``args[0]`` is the resource the method is called on."""
    if method:
        call, streaming = adapter.describe(args[0] if args else None, args[1:], kwargs)
    else:
        call, streaming = adapter.describe(None, args, kwargs)
    call.start_time_ns = _time_ns()
    if adapter.capture_content or adapter.estimate_cost:
        call._details = CallDetails(adapter.capture_content, adapter.estimate_cost)
    ctx.calls.append(call)
    streaming = (streaming or adapter.always_stream) and not adapter.never_stream
    return call, streaming, _perf_ns()


def record_error(call: CapturedLlmCall, t0: int, exc: BaseException) -> None:
    """The call failed ``t0`` (monotonic) after it started, raising ``exc``."""
    call.latency_ns = _perf_ns() - t0
    call.error_type = type(exc).__name__
    call.error_message = exception_text(exc)


def copy_identity(wrapper: Any, original: Any) -> None:
    """Give ``wrapper`` the name and docstring of ``original`` and mark it patched."""
    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(wrapper, attr, getattr(original, attr))
        except (AttributeError, TypeError):
            pass
    mark_patched(wrapper, original)


def make_wrapper(
    original: Callable[..., Any],
    adapter: Adapter,
    *,
    is_async: bool,
    method: bool = False,
) -> Callable[..., Any]:
    """Wrap ``original`` (a bound method, or with ``method`` a class function)."""
    get_ctx = _current_trace_ctx.get

    stream_wrapper = AsyncStreamWrapper if is_async else StreamWrapper

    def _end(call: CapturedLlmCall, streaming: bool, t0: int, response: Any) -> Any:
        """What the caller gets: the wrapped stream, or the completed response."""
        if streaming:
            return stream_wrapper(response, call, t0, adapter)
        call.latency_ns = _perf_ns() - t0
        try:
            adapter.on_response(call, response)
        except Exception:  # never let extraction break the user's call
            pass
        return response

    if is_async:

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = get_ctx()
            if ctx is None:
                return await original(*args, **kwargs)
            call, streaming, t0 = begin_call(ctx, adapter, method, args, kwargs)
            try:
                response = await original(*args, **kwargs)
            except BaseException as exc:
                record_error(call, t0, exc)
                raise
            return _end(call, streaming, t0, response)

        wrapper: Callable[..., Any] = async_wrapper
    else:

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = get_ctx()
            if ctx is None:
                return original(*args, **kwargs)
            call, streaming, t0 = begin_call(ctx, adapter, method, args, kwargs)
            try:
                response = original(*args, **kwargs)
            except BaseException as exc:
                record_error(call, t0, exc)
                raise
            return _end(call, streaming, t0, response)

        wrapper = sync_wrapper

    copy_identity(wrapper, original)
    return wrapper


def mark_patched(wrapper: Any, original: Any) -> None:
    wrapper._infinium_patched = True
    wrapper._infinium_original = original


def is_patched(fn: Any) -> bool:
    return getattr(fn, "_infinium_patched", None) is True


class _StreamWrapperBase:
    """What the sync and async stream wrappers share: the call record's bookkeeping
    and transparent access to the wrapped stream's other attributes.

    The call record is finalised exactly once: at the end of the stream, on
    ``close()`` / ``__exit__``, when the wrapper is garbage-collected, or at the
    latest when the trace is built.
    """

    __slots__ = ("__weakref__", "_adapter", "_call", "_it", "_stream")

    #: The exception that ends the iteration normally.
    _stop: type = StopIteration
    _kind = "stream"

    def __init__(self, stream: Any, call: CapturedLlmCall, t0: int, adapter: Adapter) -> None:
        self._stream = stream
        self._call = call
        self._adapter = adapter
        self._it: Any = None
        call._t0 = t0
        call._t_last = 0
        call._parts = [] if adapter.capture_content else None
        call._output_limit = OUTPUT_CONTENT_LIMIT
        call._open = True

    def _received(self, item: Any) -> Any:
        """Update the call record from one item, which is passed on unchanged."""
        call = self._call
        call._t_last = _perf_ns()
        try:
            self._adapter.on_item(call, item)
        except Exception:
            pass
        return item

    def _ended(self, exc: BaseException) -> None:
        """The iteration stopped (``exc`` is the stop exception) or failed."""
        self._call.finish_stream(None if isinstance(exc, self._stop) else exc)

    def __del__(self) -> None:
        try:
            self._call.finish_stream()
        except Exception:
            pass

    def __getattr__(self, name: str) -> Any:
        if name in _StreamWrapperBase.__slots__:
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return f"<infinium {self._kind} wrapper of {self._stream!r}>"


class StreamWrapper(_StreamWrapperBase):
    """Transparent wrapper of a sync stream (iterator and context manager)."""

    __slots__ = ()

    def __iter__(self) -> StreamWrapper:
        return self

    def __next__(self) -> Any:
        it = self._it
        if it is None:
            it = self._it = iter(self._stream)
        try:
            item = next(it)
        except BaseException as exc:
            self._ended(exc)
            raise
        return self._received(item)

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


class AsyncStreamWrapper(_StreamWrapperBase):
    """Transparent wrapper of an async stream (async iterator and context manager)."""

    __slots__ = ()

    _stop = StopAsyncIteration
    _kind = "async stream"

    def __aiter__(self) -> AsyncStreamWrapper:
        return self

    async def __anext__(self) -> Any:
        it = self._it
        if it is None:
            it = self._it = self._stream.__aiter__()
        try:
            item = await it.__anext__()
        except BaseException as exc:
            self._ended(exc)
            raise
        return self._received(item)

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
