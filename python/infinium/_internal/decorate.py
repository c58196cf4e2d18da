"""The tracing decorators: ``trace_agent``, ``async_trace_agent`` and
``client.trace``.

One trace per call of the decorated function: its arguments and result (bounded
``repr``), one ``execution`` step, an exception as the trace's error (then
re-raised), and the LLM calls and prompt fetches captured while it ran. The
wrapper kind follows the function: sync, coroutine, generator (traced across its
iteration; infinium-o2 traced only the creation of the generator object) or
async generator.
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Generator,
    List,
    Optional,
    Type,
    TypeVar,
    cast,
)

from .._context import TraceContext, _current_trace_ctx
from ..types import ErrorDetail, ExecutionStep, TaskData
from ..utils import MAX_DESCRIPTION_LENGTH
from .builder import assemble, attach_prompts, error_detail, recorded_step, resumed_trace
from .hooks import exporters, run_exporters
from .repr import args_summary, capped_repr
from .send import send_from_async, send_from_sync
from .text import DECORATOR_OUTPUT_SUMMARY_MAX, STEP_OUTPUT_PREVIEW_MAX, truncate

__all__ = ["async_trace_agent", "trace_agent", "trace_decorator"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_isawaitable = inspect.isawaitable


def _func_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", None)
    if isinstance(name, str):
        return name
    inner = getattr(func, "func", None)  # functools.partial
    if inner is not None:
        return _func_name(inner)
    return type(func).__name__


_set_trace_ctx = _current_trace_ctx.set
_perf_ns = time.perf_counter_ns
_reset_trace_ctx = _current_trace_ctx.reset


class _DecoratedCall:
    """One call of a decorated function: its trace, ``execution`` step and context.

    Holds all the bookkeeping of the sync and async wrappers, which differ only in
    calling or awaiting the function and in how the built trace is sent. The step
    is timed from the end of ``__init__`` to ``returned``/``failed``; an exception
    is recorded as the step's error and, for an ``Exception``, as a trace error.

    This runs on every decorated call, so it keeps the trace in a few slots and
    builds the :class:`TaskData` directly; only a call that captured LLM calls
    goes through a :class:`TraceBuilder` (which turns them into steps).
    """

    __slots__ = (
        "_ctx",
        "_duration_ms",
        "_errors",
        "_input_summary",
        "_output_preview",
        "_result_repr",
        "_start_ns",
        "_step_desc",
        "_step_error",
        "_step_start_ns",
        "_token",
    )

    def __init__(self, args: Any, kwargs: Dict[str, Any], step_desc: str) -> None:
        self._start_ns = _perf_ns()
        self._input_summary = args_summary(args, kwargs)
        self._step_desc = step_desc
        self._duration_ms: Optional[int] = None
        self._output_preview: Optional[str] = None
        self._result_repr: Optional[str] = None
        self._step_error: Optional[ErrorDetail] = None
        self._errors: Optional[List[ErrorDetail]] = None
        ctx = self._ctx = TraceContext()
        self._token = _set_trace_ctx(ctx)
        self._step_start_ns = _perf_ns()

    def returned(self, result: T) -> T:
        """The function returned ``result``: its output preview (inside the step,
        as the anchor), then the step's end."""
        # One bounded repr serves the 8000-char summary and the 1500-char preview
        # (truncating the former to 1500 gives exactly the latter).
        text = capped_repr(result, DECORATOR_OUTPUT_SUMMARY_MAX)
        self._output_preview = truncate(text, STEP_OUTPUT_PREVIEW_MAX)
        if result is not None:
            self._result_repr = text
        self._duration_ms = (_perf_ns() - self._step_start_ns) // 1_000_000
        return result

    def ended(self) -> None:
        """The step ended without a result or an error (a generator closed early)."""
        self._duration_ms = (_perf_ns() - self._step_start_ns) // 1_000_000

    def failed(self, exc: BaseException) -> None:
        """The function raised ``exc`` (which propagates)."""
        self._duration_ms = (_perf_ns() - self._step_start_ns) // 1_000_000
        self._step_error = error_detail(exc)
        if isinstance(exc, Exception):
            self._errors = [error_detail(exc)]

    def pause(self) -> None:
        """Leave the trace scope while the caller runs (between two items of a
        traced generator, before a deferred awaitable is awaited)."""
        _reset_trace_ctx(self._token)

    def resume(self) -> None:
        """Re-enter the trace scope left by :meth:`pause`."""
        self._token = _set_trace_ctx(self._ctx)

    def finish(self, name: str, description: str) -> TaskData:
        """Leave the trace context and build the trace (exporters run on it)."""
        _reset_trace_ctx(self._token)
        ctx = self._ctx
        if ctx.calls:
            # Captured LLM calls become steps 2, 3, ... and the usage summary.
            step = recorded_step(
                1,
                "execution",
                self._step_desc,
                self._duration_ms,
                output_preview=self._output_preview,
                error=self._step_error,
            )
            trace = resumed_trace(
                name,
                description,
                self._start_ns,
                self._input_summary,
                self._result_repr,
                [step],
                self._errors,
            )
            task_data = trace.build(ctx)
        else:
            steps = [
                ExecutionStep(
                    1,
                    "execution",
                    self._step_desc,
                    self._duration_ms,
                    None,
                    self._output_preview,
                    self._step_error,
                )
            ]
            task_data = assemble(
                name,
                description,
                self._start_ns,
                self._input_summary,
                self._result_repr,
                steps,
                self._errors,
            )
            if ctx.prompts:
                attach_prompts(task_data, ctx)
        if exporters:
            run_exporters(name, task_data, ctx)
        return task_data


class _Traced:
    """What every call of one decorated function shares: the trace's name and
    description, the step's description, where the trace goes (sent through
    ``client``, or kept as ``wrapper.last_trace``)."""

    __slots__ = ("client", "description", "name", "send", "step_description", "wrapper")

    def __init__(
        self, name: str, description: str, step_description: str, client: Any, send: bool
    ) -> None:
        self.name = name
        self.description = description
        self.step_description = step_description
        self.client = client
        self.send = send
        self.wrapper: Any = None

    def end(self, call: _DecoratedCall) -> None:
        """Finish ``call``'s trace: send it (blocking) or keep it as
        ``wrapper.last_trace``. (``_wrap_sync`` and ``_wrap_async``, the hot
        paths, do the same inline.)"""
        task_data = call.finish(self.name, self.description)
        if self.send:
            send_from_sync(self.client, task_data, self.name)
        else:
            self.wrapper.last_trace = task_data

    async def end_async(self, call: _DecoratedCall) -> None:
        """:meth:`end` for a trace that ends in a coroutine."""
        task_data = call.finish(self.name, self.description)
        if self.send:
            await send_from_async(self.client, task_data, self.name)
        else:
            self.wrapper.last_trace = task_data


def _wrap_sync(func: Callable[..., Any], traced: _Traced) -> Callable[..., Any]:
    name, desc, step_desc = traced.name, traced.description, traced.step_description
    client, send = traced.client, traced.send

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DecoratedCall(args, kwargs, step_desc)
        try:
            return call.returned(func(*args, **kwargs))
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            task_data = call.finish(name, desc)
            if send:
                send_from_sync(client, task_data, name)
            else:
                wrapper.last_trace = task_data  # type: ignore[attr-defined]

    return wrapper


def _wrap_async(
    func: Callable[..., Any], traced: _Traced, awaits_any: bool = False
) -> Callable[..., Awaitable[Any]]:
    """A coroutine function tracing ``func``'s awaited call. ``awaits_any``:
    ``func`` is not itself a coroutine function but returns awaitables (see
    :func:`_returns_awaitables`); what it returns is awaited when awaitable."""
    name, desc, step_desc = traced.name, traced.description, traced.step_description
    client, send = traced.client, traced.send
    target = func
    if awaits_any:

        async def target(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            return (await result) if _isawaitable(result) else result

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DecoratedCall(args, kwargs, step_desc)
        try:
            return call.returned(await target(*args, **kwargs))
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            task_data = call.finish(name, desc)
            if send:
                await send_from_async(client, task_data, name)
            else:
                wrapper.last_trace = task_data  # type: ignore[attr-defined]

    return wrapper


def _returns_awaitables(target: Callable[..., Any]) -> bool:
    """``target`` is written to be awaited though not a coroutine function
    itself: a plain decorator around one (``functools.wraps`` leaves the
    ``__wrapped__`` chain), or an object with an ``async def __call__``."""
    try:
        inner = inspect.unwrap(target)
    except Exception:  # a __wrapped__ cycle, a proxy whose attributes raise
        inner = target
    dunder_call = inspect.getattr_static(type(target), "__call__", None)
    return inspect.iscoroutinefunction(inner) or inspect.iscoroutinefunction(dunder_call)


def _wrap_awaiting(func: Callable[..., Any], traced: _Traced) -> Callable[..., Any]:
    """``async_trace_agent`` on a callable with no sign of being async (a plain
    function, or a wrapper that hides a coroutine function without
    ``functools.wraps``).

    infinium-o2 awaits whatever such a callable returns (and fails on a plain
    value). Here the call stays synchronous: a plain value is traced as by the
    sync wrapper; an awaitable result is traced to its completion, the returned
    coroutine re-entering the trace scope while it awaits (LLM calls made there
    are captured), recording the awaited value or exception, then sending.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DecoratedCall(args, kwargs, traced.step_description)
        deferred = False
        try:
            result = func(*args, **kwargs)
            if _isawaitable(result):
                # Leave the scope until the awaitable runs (in the awaiting task).
                call.pause()
                deferred = True
                return finish_awaited(call, result)
            return call.returned(result)
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            if not deferred:
                traced.end(call)

    async def finish_awaited(call: _DecoratedCall, awaitable: Awaitable[Any]) -> Any:
        call.resume()
        try:
            return call.returned(await awaitable)
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            await traced.end_async(call)

    return wrapper


def _drive_generator(
    call: _DecoratedCall, gen: Generator[Any, Any, Any]
) -> Generator[Any, Any, Any]:
    """Run the generator ``gen`` to its end, each resume inside ``call``'s trace
    scope (left before every value is handed to the consumer); ``send``,
    ``throw`` and ``close`` are delegated as by ``yield from``. Returns the
    generator's return value, recorded as the call's result."""
    sent: Any = None
    thrown: Optional[BaseException] = None
    while True:
        try:
            item = gen.send(sent) if thrown is None else gen.throw(thrown)
        except StopIteration as stop:
            return call.returned(stop.value)
        finally:
            thrown = None  # drop the reference (no traceback cycle)
        call.pause()
        try:
            sent = yield item
        except GeneratorExit:
            call.resume()
            gen.close()
            raise
        except BaseException as exc:
            thrown, sent = exc, None
        call.resume()


def _wrap_generator(func: Callable[..., Any], traced: _Traced) -> Callable[..., Any]:
    """A generator function traced across its iteration.

    The wrapper is a generator function too. Its trace starts when its body first
    runs (the first ``next``/``send``) and ends when the inner generator returns
    (its return value is the result), raises, or is closed early (``close()``,
    ``break``, garbage collection: not an error). See :func:`_drive_generator`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DecoratedCall(args, kwargs, traced.step_description)  # in the scope from here
        try:
            return (yield from _drive_generator(call, func(*args, **kwargs)))
        except GeneratorExit:
            call.ended()
            raise
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            traced.end(call)

    return wrapper


def _wrap_async_generator(func: Callable[..., Any], traced: _Traced) -> Callable[..., Any]:
    """An async generator function traced across its iteration, as
    :func:`_wrap_generator`; the wrapper is its own driver (an async generator
    cannot delegate with ``yield from``): the loop of :func:`_drive_generator`
    with ``asend``, ``athrow`` and ``aclose`` awaited. The result is always
    None (an async generator returns no value)."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DecoratedCall(args, kwargs, traced.step_description)  # in the scope from here
        try:
            agen = func(*args, **kwargs)
            sent: Any = None
            thrown: Optional[BaseException] = None
            while True:
                try:
                    item = await (agen.asend(sent) if thrown is None else agen.athrow(thrown))
                except StopAsyncIteration:
                    call.returned(None)
                    return
                finally:
                    thrown = None
                call.pause()
                try:
                    sent = yield item
                except GeneratorExit:
                    call.resume()
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    thrown, sent = exc, None
                call.resume()
        except GeneratorExit:
            call.ended()
            raise
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            await traced.end_async(call)

    return wrapper


def _make_decorator(
    name: str,
    client: Any,
    auto_send: bool,
    description: Optional[str],
    awaits_results: bool = False,
) -> Callable[[F], F]:
    send = bool(auto_send) and client is not None

    def decorator(func: F) -> F:
        descriptor: Optional[Type[Any]] = None
        target: Callable[..., Any] = func
        if isinstance(func, (staticmethod, classmethod)):
            descriptor = type(func)
            target = func.__func__
        if not callable(target):
            raise TypeError(f"trace decorator needs a callable, got {type(target).__name__}")
        fname = _func_name(target)
        desc = (description or getattr(target, "__doc__", None) or "").strip()
        if not desc:
            desc = f"Auto-traced call to {fname}"
        # A docstring longer than a trace's description may be: cut to fit,
        # rather than every trace failing validation (the anchor sends it whole).
        desc = truncate(desc, MAX_DESCRIPTION_LENGTH)
        traced = _Traced(name, desc, f"Execute {fname}", client, send)
        wrapped: Any
        if inspect.iscoroutinefunction(target):
            wrapped = _wrap_async(target, traced)
        elif inspect.isgeneratorfunction(target):
            wrapped = _wrap_generator(target, traced)
        elif inspect.isasyncgenfunction(target):
            wrapped = _wrap_async_generator(target, traced)
        elif awaits_results and _returns_awaitables(target):
            # As infinium-o2's: a coroutine function awaiting what it returns, so
            # frameworks that ask `iscoroutinefunction` (FastAPI, Starlette) await it.
            wrapped = _wrap_async(target, traced, True)
        elif awaits_results:
            wrapped = _wrap_awaiting(target, traced)
        else:
            wrapped = _wrap_sync(target, traced)
        traced.wrapper = wrapped
        wrapped.last_trace = None
        if descriptor is not None:
            return cast(F, descriptor(wrapped))
        return cast(F, wrapped)

    return decorator


def trace_agent(
    name: str,
    client: Any = None,
    *,
    auto_send: bool = True,
    description: Optional[str] = None,
) -> Callable[[F], F]:
    """Trace every call of the decorated function (one trace per call).

    Captures duration, ``repr`` of the arguments (input summary, <= 3000 chars)
    and of the result (output summary, <= 8000), one ``execution`` step, an
    exception as a top-level error (then re-raised), and every LLM call made
    through a ``watch()``-ed client. With ``client`` and ``auto_send`` the trace is
    sent through ``client.send_task_data``; a failed send is logged, never raised.
    Without sending, the built trace is kept as ``wrapper.last_trace``.

    Coroutine functions get an async wrapper. A generator function (sync or async)
    gets a generator wrapper traced across the iteration: from the first ``next``
    to exhaustion (the return value is the result), an exception, or an early
    close (not an error).
    """
    return _make_decorator(name, client, auto_send, description)


def async_trace_agent(
    name: str,
    client: Any = None,
    *,
    auto_send: bool = True,
    description: Optional[str] = None,
) -> Callable[[F], F]:
    """Async variant of :func:`trace_agent`.

    A coroutine function gets the async wrapper. Any other callable is called at
    once; when it returns an awaitable (a sync decorator around a coroutine
    function, an object with an ``async def __call__``), the trace follows that
    awaitable to its end, as infinium-o2 does; a plain result is traced as by
    :func:`trace_agent`. A generator function is traced across its iteration, as
    by :func:`trace_agent` (infinium-o2 returned a coroutine that failed when
    awaited).
    """
    return _make_decorator(name, client, auto_send, description, awaits_results=True)


def trace_decorator(
    client: Any,
    name: str,
    *,
    auto_send: bool = True,
    description: Optional[str] = None,
) -> Callable[[F], F]:
    """Implementation of ``client.trace(name, auto_send=..., description=...)``."""
    return _make_decorator(name, client, auto_send, description)
