"""Stream helpers that return a context manager whose ``__enter__`` makes the request
(Anthropic's ``messages.stream(...)``): the call is recorded when the manager is
entered, and the stream object it yields has its raw event stream (``_raw_stream``)
replaced by a transparent :class:`StreamWrapper`, which every way of reading it
(iteration, ``text_stream``, ``get_final_message()``, ``until_done()``) goes
through. The record is finalised exactly once, as for any wrapped stream.

Outside a trace the helper is called and its manager returned untouched.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from .._context import CapturedLlmCall, TraceContext, _current_trace_ctx
from ._context import (
    Adapter,
    AsyncStreamWrapper,
    StreamWrapper,
    begin_call,
    copy_identity,
    record_error,
)

__all__ = ["AsyncManagerWrapper", "ManagerWrapper", "make_manager_wrapper"]


class _ManagerBase:
    """What the sync and async manager wrappers share."""

    __slots__ = ("_adapter", "_args", "_call", "_ctx", "_kwargs", "_manager", "_method", "_stream")

    def __init__(
        self,
        manager: Any,
        ctx: TraceContext,
        adapter: Adapter,
        method: bool,
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
    ) -> None:
        self._manager = manager
        self._ctx = ctx
        self._adapter = adapter
        self._method = method
        self._args = args
        self._kwargs = kwargs
        self._call: Optional[CapturedLlmCall] = None
        self._stream: Any = None

    def _begin(self) -> Tuple[CapturedLlmCall, int]:
        call, _, t0 = begin_call(self._ctx, self._adapter, self._method, self._args, self._kwargs)
        self._call = call
        return call, t0

    def _observe(self, stream: Any, call: CapturedLlmCall, t0: int, wrapper_cls: Any) -> Any:
        """Route the entered stream's raw events through a stream wrapper."""
        observed = wrapper_cls(getattr(stream, "_raw_stream", None), call, t0, self._adapter)
        if observed._stream is not None:
            try:
                stream._raw_stream = observed
            except (AttributeError, TypeError):
                pass
        # Kept either way: when the events cannot be observed, the record is still
        # finalised (at exit, close or garbage collection) with its latency.
        self._stream = observed
        return stream

    def _finish(self) -> None:
        if self._call is not None:
            self._call.finish_stream()

    def __getattr__(self, name: str) -> Any:
        if name in _ManagerBase.__slots__:
            raise AttributeError(name)
        return getattr(self._manager, name)


class ManagerWrapper(_ManagerBase):
    """A sync stream manager (``with client.messages.stream(...) as stream``)."""

    __slots__ = ()

    def __enter__(self) -> Any:
        call, t0 = self._begin()
        try:
            stream = self._manager.__enter__()
        except BaseException as exc:
            record_error(call, t0, exc)
            raise
        return self._observe(stream, call, t0, StreamWrapper)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._manager.__exit__(*exc_info)
        finally:
            self._finish()


class AsyncManagerWrapper(_ManagerBase):
    """An async stream manager (``async with client.messages.stream(...) as stream``)."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        call, t0 = self._begin()
        try:
            stream = await self._manager.__aenter__()
        except BaseException as exc:
            record_error(call, t0, exc)
            raise
        return self._observe(stream, call, t0, AsyncStreamWrapper)

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._manager.__aexit__(*exc_info)
        finally:
            self._finish()


def make_manager_wrapper(
    original: Callable[..., Any],
    adapter: Adapter,
    *,
    is_async: bool,
    method: bool = False,
) -> Callable[..., Any]:
    """Wrap a stream helper ``original`` (bound, or with ``method`` a class function)
    whose result is a (sync or, with ``is_async``, async) stream manager."""
    get_ctx = _current_trace_ctx.get
    manager_cls = AsyncManagerWrapper if is_async else ManagerWrapper

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = get_ctx()
        manager = original(*args, **kwargs)
        if ctx is None:
            return manager
        return manager_cls(manager, ctx, adapter, method, args, kwargs)

    copy_identity(wrapper, original)
    return wrapper
