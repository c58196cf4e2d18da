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

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
import time
import traceback
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    List,
    Literal,
    Optional,
    Set,
    Type,
    TypeVar,
    Union,
    cast,
)

from ._context import (
    TraceContext,
    _current_trace_ctx,
    exception_text,
    iso_now,
)
from .integrations._details import UsageTotals
from .types import (
    ApiResponse,
    EnvironmentContext,
    ErrorDetail,
    ExecutionStep,
    ExpectedOutcome,
    LlmCall,
    LlmUsage,
    TaskData,
    ToolCall,
)
from .utils import MAX_DESCRIPTION_LENGTH, get_current_iso_datetime, truncate_string

# infinium-o2's module has no __all__, so ``from infinium.tracing import *`` also
# gave the types and helpers it imports; they stay available that way.
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
    "remove_trace_exporter",
    "trace_agent",
    "trace_decorator",
    "truncate_string",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# ---------------------------------------------------------------------------
# Caps (identical to infinium-o2: what Maestro's judge renders per field)
# ---------------------------------------------------------------------------
_STEP_INPUT_PREVIEW_MAX = 500
_STEP_OUTPUT_PREVIEW_MAX = 1500
_TOOL_INPUT_SUMMARY_MAX = 300
_TOOL_OUTPUT_SUMMARY_MAX = 1500
_DECORATOR_INPUT_SUMMARY_MAX = 3000
_DECORATOR_OUTPUT_SUMMARY_MAX = 8000
_STACK_TRACE_MAX = 1000

_PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])
_sdk_version: Optional[str] = None


def _get_sdk_version() -> str:
    """Version reported as ``environment.sdk_version``.

    ``infinium.__version__`` (the package's single source of truth), else the
    installed ``infinium-rs`` distribution's version, else the anchor's "1.2.0".
    Resolved on first use and cached (the package may still be importing when this
    module loads).
    """
    global _sdk_version
    if _sdk_version is None:
        version: Optional[str] = None
        pkg = sys.modules.get("infinium")
        candidate = getattr(pkg, "__version__", None)
        if isinstance(candidate, str) and candidate:
            version = candidate
        if version is None:
            try:
                from importlib.metadata import version as _dist_version

                version = _dist_version("infinium-rs")
            except Exception:
                version = "1.2.0"
        _sdk_version = version
    return _sdk_version


def _truncate(text: str, max_length: int) -> str:
    """Keep ``max_length - 3`` chars and append ``...`` when too long."""
    if len(text) <= max_length:
        return text
    return text[: max_length - 3] + "..."


# ---------------------------------------------------------------------------
# Bounded, exception-proof repr
# ---------------------------------------------------------------------------

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
    return _truncate(text, cap)


def _capped_repr(obj: Any, cap: int) -> str:
    """``repr(obj)`` truncated to ``cap`` like infinium-o2, at O(cap) cost.

    Small values use the built-in ``repr`` (after a cheap size probe). Large
    built-in containers, ``str`` and ``bytes`` are rendered piecewise and stop
    once the cap is exceeded; other objects use their own ``repr``. A ``repr``
    that raises renders as ``<TypeName>`` instead of breaking the traced call.
    """
    t = type(obj)
    if t is str:
        return _truncate(repr(obj) if len(obj) <= cap else _long_text_repr(obj, cap), cap)
    if t in _LEAF_TYPES:
        return _truncate(_plain_repr(obj), cap)
    try:
        if _fits(obj, cap, 0) >= 0:
            # A str, or a str subclass from a user's __repr__ (as plain text).
            return _truncate(str.__str__(repr(obj)), cap)
    except Exception:
        pass
    return _walk_repr(obj, cap)


def _args_summary(args: Any, kwargs: Dict[str, Any]) -> str:
    """``repr({"args": args, "kwargs": kwargs})`` capped at 3000 chars."""
    cap = _DECORATOR_INPUT_SUMMARY_MAX
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
                return _truncate(text, cap)
    except Exception:
        pass
    return _walk_repr({"args": args, "kwargs": kwargs}, cap)


def _error_detail(exc: BaseException) -> ErrorDetail:
    return ErrorDetail(
        error_type=type(exc).__name__,
        message=exception_text(exc),
        recoverable=False,
        stack_trace=_truncate(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            _STACK_TRACE_MAX,
        ),
    )


# ---------------------------------------------------------------------------
# StepContext
# ---------------------------------------------------------------------------


class StepContext:
    """One auto-timed execution step.

    Use it as ``with trace.step(...) as step:``, ``async with trace.step(...)``, or
    ``trace.step(...).run(fn)`` (``fn(step)`` is called timed; a coroutine function
    makes ``run`` return an awaitable). An exception inside is recorded as the
    step's :class:`ErrorDetail` and propagates.
    """

    __slots__ = (
        # Users may keep their own attributes on a step (the anchor's class has
        # no slots) and hold weak references to it.
        "__dict__",
        "__weakref__",
        "_action",
        "_description",
        "_duration_ms",
        "_error",
        "_input_preview",
        "_llm_call",
        "_metadata",
        "_output_preview",
        "_start_ns",
        "_step_number",
        "_tool_call",
    )

    def __init__(self, step_number: int, action: str, description: str) -> None:
        self._step_number = step_number
        self._action = action
        self._description = description
        self._start_ns = 0
        self._duration_ms: Optional[int] = None
        self._input_preview: Optional[str] = None
        self._output_preview: Optional[str] = None
        self._error: Optional[ErrorDetail] = None
        self._tool_call: Optional[ToolCall] = None
        self._llm_call: Optional[LlmCall] = None
        self._metadata: Optional[Dict[str, Any]] = None

    @property
    def step_number(self) -> int:
        return self._step_number

    # -- recording --------------------------------------------------------

    def set_input(self, preview: str) -> StepContext:
        """Input preview, truncated to 500 chars."""
        self._input_preview = _truncate(preview, _STEP_INPUT_PREVIEW_MAX)
        return self

    def set_output(self, preview: str) -> StepContext:
        """Output preview, truncated to 1500 chars."""
        self._output_preview = _truncate(preview, _STEP_OUTPUT_PREVIEW_MAX)
        return self

    def record_tool_call(
        self,
        tool_name: str,
        *,
        duration_ms: Optional[int] = None,
        input_summary: Optional[str] = None,
        output_summary: Optional[str] = None,
        http_status: Optional[int] = None,
        error: Optional[ErrorDetail] = None,
    ) -> StepContext:
        self._tool_call = ToolCall(
            tool_name=tool_name,
            duration_ms=duration_ms,
            input_summary=(
                _truncate(input_summary, _TOOL_INPUT_SUMMARY_MAX) if input_summary else None
            ),
            output_summary=(
                _truncate(output_summary, _TOOL_OUTPUT_SUMMARY_MAX) if output_summary else None
            ),
            http_status=http_status,
            error=error,
        )
        return self

    def record_llm_call(
        self,
        model: str,
        *,
        provider: Optional[str] = None,
        prompt_tokens: Optional[int] = None,
        completion_tokens: Optional[int] = None,
        latency_ms: Optional[int] = None,
        temperature: Optional[float] = None,
        purpose: Optional[str] = None,
    ) -> StepContext:
        self._llm_call = LlmCall(
            model=model,
            provider=provider,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            temperature=temperature,
            purpose=purpose,
        )
        return self

    def set_metadata(self, metadata: Dict[str, Any]) -> StepContext:
        self._metadata = metadata
        return self

    # -- timing -------------------------------------------------------------

    def __enter__(self) -> StepContext:
        self._start_ns = time.perf_counter_ns()
        return self

    def __exit__(
        self, exc_type: Any, exc_val: Optional[BaseException], exc_tb: Any
    ) -> Literal[False]:
        self._duration_ms = (time.perf_counter_ns() - self._start_ns) // 1_000_000
        if exc_val is not None and self._error is None:
            self._error = _error_detail(exc_val)
        return False

    async def __aenter__(self) -> StepContext:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: Any, exc_val: Optional[BaseException], exc_tb: Any
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc_val, exc_tb)

    def run(self, fn: Callable[[StepContext], Any]) -> Any:
        """Run ``fn(step)`` timed inside this step and return its result.

        A coroutine function (or a function returning an awaitable) makes ``run``
        return an awaitable that completes the step when it finishes, so both
        ``step.run(sync_fn)`` and ``await step.run(async_fn)`` work.
        """
        if inspect.iscoroutinefunction(fn):
            return self._run_async(fn)
        self.__enter__()
        try:
            result = fn(self)
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if inspect.isawaitable(result):
            return self._finish_awaitable(result)
        self.__exit__(None, None, None)
        return result

    async def _run_async(self, fn: Callable[[StepContext], Awaitable[T]]) -> T:
        async with self:
            return await fn(self)

    async def _finish_awaitable(self, awaitable: Awaitable[T]) -> T:
        try:
            result = await awaitable
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self.__exit__(None, None, None)
        return result

    def _build(self) -> ExecutionStep:
        # Positional (field order pinned by tests/test_tracing.py): half the
        # cost of keywords, and this runs for every step of every trace.
        return ExecutionStep(
            self._step_number,
            self._action,
            self._description,
            self._duration_ms,
            self._input_preview,
            self._output_preview,
            self._error,
            self._tool_call,
            self._llm_call,
            self._metadata,
        )


# ---------------------------------------------------------------------------
# TraceBuilder
# ---------------------------------------------------------------------------


def _common(values: List[Optional[str]]) -> Optional[str]:
    first = values[0]
    for v in values:
        if v != first:
            return "multiple"
    return first


class TraceBuilder:
    """Incrementally construct a :class:`TaskData` during an agent run.

    Steps are numbered 1, 2, ... in creation order; creating steps from several
    threads or tasks of one trace is safe.
    """

    def __init__(self, name: str, description: str) -> None:
        self._name = name
        self._description = description
        self._start_ns = time.perf_counter_ns()
        self._lock = threading.Lock()
        self._steps: List[StepContext] = []
        self._errors: List[ErrorDetail] = []
        self._input_summary: Optional[str] = None
        self._output_summary: Optional[str] = None
        self._expected_outcome: Optional[ExpectedOutcome] = None
        self._environment: Optional[EnvironmentContext] = None
        self._llm_usage: Optional[LlmUsage] = None
        self._sections: Dict[str, Any] = {}
        self._incorporated = False

    # -- fluent setters -------------------------------------------------------

    def set_input_summary(self, summary: str) -> TraceBuilder:
        self._input_summary = summary
        return self

    def set_output_summary(self, summary: str) -> TraceBuilder:
        self._output_summary = summary
        return self

    def set_expected_outcome(
        self,
        task_objective: str,
        *,
        required_deliverables: Optional[List[str]] = None,
        constraints: Optional[List[str]] = None,
        acceptance_criteria: Optional[List[str]] = None,
    ) -> TraceBuilder:
        self._expected_outcome = ExpectedOutcome(
            task_objective=task_objective,
            required_deliverables=required_deliverables,
            constraints=constraints,
            acceptance_criteria=acceptance_criteria,
        )
        return self

    def set_environment(
        self,
        *,
        framework: Optional[str] = None,
        framework_version: Optional[str] = None,
        python_version: Optional[str] = None,
        runtime: Optional[str] = None,
        region: Optional[str] = None,
        custom_tags: Optional[Dict[str, str]] = None,
    ) -> TraceBuilder:
        self._environment = EnvironmentContext(
            framework=framework,
            framework_version=framework_version,
            python_version=python_version or _PYTHON_VERSION,
            sdk_version=_get_sdk_version(),
            runtime=runtime,
            region=region,
            custom_tags=custom_tags,
        )
        return self

    def set_llm_usage(self, llm_usage: LlmUsage) -> TraceBuilder:
        self._llm_usage = llm_usage
        return self

    def set_section(self, name: str, value: Any) -> TraceBuilder:
        """Set a domain section (``customer``, ``research``, ...)."""
        self._sections[name] = value
        return self

    def add_error(self, error: ErrorDetail) -> TraceBuilder:
        with self._lock:
            self._errors.append(error)
        return self

    # -- steps ----------------------------------------------------------------

    def step(self, action: str, description: str) -> StepContext:
        """A new auto-numbered step (context manager, or use ``.run(fn)``)."""
        with self._lock:
            ctx = StepContext(len(self._steps) + 1, action, description)
            self._steps.append(ctx)
        return ctx

    # -- captured calls -------------------------------------------------------

    def _incorporate_captured_calls(self, ctx: TraceContext) -> None:
        """Turn captured LLM calls into ``llm_call`` steps and an aggregate usage."""
        calls = list(ctx.calls)
        if not calls:
            return
        total_prompt = 0
        total_completion = 0
        total_latency = 0
        llm_calls: List[LlmCall] = []
        totals = UsageTotals()  # token details, tool calls, cost (watch() extras)
        with self._lock:
            for captured in calls:
                if captured._open:  # a stream abandoned before its end
                    captured.finish_stream()
                latency_ms = captured.latency_ns // 1_000_000 if captured.latency_ns else None
                llm_call = LlmCall(
                    model=captured.model,
                    provider=captured.provider,
                    prompt_tokens=captured.prompt_tokens,
                    completion_tokens=captured.completion_tokens,
                    latency_ms=latency_ms,
                    temperature=captured.temperature,
                )
                llm_calls.append(llm_call)
                step = StepContext(
                    len(self._steps) + 1, "llm_call", f"{captured.provider}/{captured.model}"
                )
                step._duration_ms = latency_ms
                step._llm_call = llm_call
                step._input_preview = captured.input_preview
                step._output_preview = captured.output_preview
                step._metadata = totals.add(captured)
                if captured.error_type:
                    step._error = ErrorDetail(
                        error_type=captured.error_type,
                        message=captured.error_message or "",
                        recoverable=False,
                    )
                self._steps.append(step)
                if captured.prompt_tokens:
                    total_prompt += captured.prompt_tokens
                if captured.completion_tokens:
                    total_completion += captured.completion_tokens
                if latency_ms:
                    total_latency += latency_ms
        if self._llm_usage is None:
            self._llm_usage = totals.apply(
                LlmUsage(
                    model=_common([c.model for c in llm_calls]),
                    provider=_common([c.provider for c in llm_calls]),
                    prompt_tokens=total_prompt or None,
                    completion_tokens=total_completion or None,
                    total_tokens=(total_prompt + total_completion) or None,
                    api_calls_count=len(llm_calls),
                    total_latency_ms=total_latency or None,
                    calls=llm_calls,
                )
            )

    # -- build ------------------------------------------------------------------

    def build(self, _trace_ctx: Optional[TraceContext] = None) -> TaskData:
        """The :class:`TaskData`: duration = wall time since creation (3 decimals).

        ``_trace_ctx`` is internal: the decorators pass the call's captured LLM
        calls and prompt fetches.
        """
        if _trace_ctx is not None and not self._incorporated:
            self._incorporated = True
            self._incorporate_captured_calls(_trace_ctx)
        with self._lock:
            steps = [s._build() for s in self._steps] if self._steps else None
            errors = list(self._errors) if self._errors else None
        task_data = _assemble(
            self._name,
            self._description,
            self._start_ns,
            self._input_summary,
            self._output_summary,
            steps,
            errors,
            expected_outcome=self._expected_outcome,
            environment=self._environment,
            llm_usage=self._llm_usage,
            sections=self._sections,
        )
        if _trace_ctx is not None and _trace_ctx.prompts:
            _attach_prompts(task_data, _trace_ctx)
        return task_data


#: The 11 domain sections of a TaskData, all absent.
_NO_SECTIONS = (None,) * 11


def _assemble(
    name: str,
    description: str,
    start_ns: int,
    input_summary: Optional[str],
    output_summary: Optional[str],
    steps: Optional[List[ExecutionStep]],
    errors: Optional[List[ErrorDetail]],
    *,
    expected_outcome: Optional[ExpectedOutcome] = None,
    environment: Optional[EnvironmentContext] = None,
    llm_usage: Optional[LlmUsage] = None,
    sections: Optional[Dict[str, Any]] = None,
) -> TaskData:
    """The :class:`TaskData` of a trace that started at ``start_ns``: duration is
    the wall time since (3 decimals), ``current_datetime`` now, ``environment``
    the default one when not given."""
    if environment is None:
        environment = EnvironmentContext(None, None, _PYTHON_VERSION, _get_sdk_version())
    duration = round((_perf_ns() - start_ns) / 1_000_000_000, 3)
    if sections:
        return TaskData(
            name=name,
            description=description,
            current_datetime=iso_now(),
            duration=duration,
            input_summary=input_summary,
            output_summary=output_summary,
            expected_outcome=expected_outcome,
            environment=environment,
            llm_usage=llm_usage,
            steps=steps,
            errors=errors,
            **sections,
        )
    # Positional (field order pinned by tests/test_tracing.py): every decorated
    # call makes one, and keywords cost twice as much.
    return TaskData(
        name,
        description,
        iso_now(),
        duration,
        *_NO_SECTIONS,
        llm_usage,
        input_summary,
        output_summary,
        steps,
        expected_outcome,
        environment,
        errors,
    )


def _attach_prompts(task_data: TaskData, ctx: TraceContext) -> None:
    """The ``prompt_studio`` section of the prompts fetched during the trace
    (emitted by the serialiser after ``environment``)."""
    task_data._prompt_studio = {  # type: ignore[assignment]  # per instance; the class has None
        "prompts_used": [
            {
                "prompt_id": pf.prompt_id,
                "prompt_name": pf.prompt_name,
                "version": pf.version,
                "source": pf.source,
                "variables_used": pf.variables_used,
                "fetched_at": pf.fetched_at,
            }
            for pf in list(ctx.prompts)
        ]
    }


# ---------------------------------------------------------------------------
# Exporters (e.g. infinium.integrations.otel.InfiniumOTelExporter.install())
# ---------------------------------------------------------------------------

_exporters: List[Any] = []


def add_trace_exporter(exporter: Any) -> None:
    """Call ``exporter.export_trace(name, duration_s, ctx)`` after every decorated call."""
    if exporter not in _exporters:
        _exporters.append(exporter)


def remove_trace_exporter(exporter: Any) -> None:
    """Stop calling ``exporter`` (added with :func:`add_trace_exporter`); no-op if absent."""
    if exporter in _exporters:
        _exporters.remove(exporter)


def _run_exporters(name: str, task_data: TaskData, ctx: TraceContext) -> None:
    for exporter in list(_exporters):
        try:
            exporter.export_trace(name, task_data.duration, ctx)
        except Exception:
            logger.warning("Trace exporter %r failed for %s", exporter, name, exc_info=True)


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------

_background_sends: Set[Any] = set()
_isawaitable = inspect.isawaitable


def _log_send_failure(name: str) -> None:
    logger.warning("Failed to auto-send trace for %s", name, exc_info=True)


async def _await_send(awaitable: Awaitable[Any], name: str) -> None:
    try:
        await awaitable
    except Exception:
        _log_send_failure(name)


def _send_from_sync(client: Any, task_data: TaskData, name: str) -> None:
    try:
        pending = client.send_task_data(task_data)
    except Exception:
        _log_send_failure(name)
        return
    if isinstance(pending, ApiResponse) or not _isawaitable(pending):  # the common case first
        return
    # An async client used from a sync function: finish the send on the running
    # loop if there is one, otherwise on a private one.
    import asyncio

    coro = _await_send(pending, name)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    task = loop.create_task(coro)
    _background_sends.add(task)
    task.add_done_callback(_background_sends.discard)


async def _send_from_async(client: Any, task_data: TaskData, name: str) -> None:
    try:
        pending = client.send_task_data(task_data)
        if _isawaitable(pending):
            await pending
    except Exception:
        _log_send_failure(name)


# ---------------------------------------------------------------------------
# Decorators
# ---------------------------------------------------------------------------


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
        self._input_summary = _args_summary(args, kwargs)
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
        text = _capped_repr(result, _DECORATOR_OUTPUT_SUMMARY_MAX)
        self._output_preview = _truncate(text, _STEP_OUTPUT_PREVIEW_MAX)
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
        self._step_error = _error_detail(exc)
        if isinstance(exc, Exception):
            self._errors = [_error_detail(exc)]

    def finish(self, name: str, description: str) -> TaskData:
        """Leave the trace context and build the trace (exporters run on it)."""
        _reset_trace_ctx(self._token)
        ctx = self._ctx
        if ctx.calls:
            # Captured LLM calls become steps 2, 3, ... and the usage summary.
            step = StepContext(1, "execution", self._step_desc)
            step._duration_ms = self._duration_ms
            step._output_preview = self._output_preview
            step._error = self._step_error
            trace = TraceBuilder(name, description)
            trace._start_ns = self._start_ns
            trace._input_summary = self._input_summary
            trace._output_summary = self._result_repr
            trace._steps.append(step)
            if self._errors:
                trace._errors.extend(self._errors)
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
            task_data = _assemble(
                name,
                description,
                self._start_ns,
                self._input_summary,
                self._result_repr,
                steps,
                self._errors,
            )
            if ctx.prompts:
                _attach_prompts(task_data, ctx)
        if _exporters:
            _run_exporters(name, task_data, ctx)
        return task_data


def _end_sync(
    call: _DecoratedCall, name: str, desc: str, client: Any, send: bool, wrapper: Any
) -> None:
    """Finish a decorated call's trace: send it (blocking) or keep it as
    ``wrapper.last_trace``. (``_wrap_sync`` and ``_wrap_async``, the hot paths,
    do the same inline.)"""
    task_data = call.finish(name, desc)
    if send:
        _send_from_sync(client, task_data, name)
    else:
        wrapper.last_trace = task_data


async def _end_async(
    call: _DecoratedCall, name: str, desc: str, client: Any, send: bool, wrapper: Any
) -> None:
    """:func:`_end_sync` for a trace that ends in a coroutine."""
    task_data = call.finish(name, desc)
    if send:
        await _send_from_async(client, task_data, name)
    else:
        wrapper.last_trace = task_data


def _wrap_sync(
    func: Callable[..., Any],
    name: str,
    desc: str,
    step_desc: str,
    client: Any,
    send: bool,
) -> Callable[..., Any]:
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
                _send_from_sync(client, task_data, name)
            else:
                wrapper.last_trace = task_data  # type: ignore[attr-defined]

    wrapper.last_trace = None  # type: ignore[attr-defined]
    return wrapper


def _wrap_async(
    func: Callable[..., Any],
    name: str,
    desc: str,
    step_desc: str,
    client: Any,
    send: bool,
    awaits_any: bool = False,
) -> Callable[..., Awaitable[Any]]:
    """A coroutine function tracing ``func``'s awaited call. ``awaits_any``:
    ``func`` is not itself a coroutine function but returns awaitables (see
    :func:`_returns_awaitables`); what it returns is awaited when awaitable."""
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
                await _send_from_async(client, task_data, name)
            else:
                wrapper.last_trace = task_data  # type: ignore[attr-defined]

    wrapper.last_trace = None  # type: ignore[attr-defined]
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


def _wrap_awaiting(
    func: Callable[..., Any],
    name: str,
    desc: str,
    step_desc: str,
    client: Any,
    send: bool,
) -> Callable[..., Any]:
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
        call = _DecoratedCall(args, kwargs, step_desc)
        deferred = False
        try:
            result = func(*args, **kwargs)
            if _isawaitable(result):
                # Leave the scope until the awaitable runs (in the awaiting task).
                _reset_trace_ctx(call._token)
                deferred = True
                return finish_awaited(call, result)
            return call.returned(result)
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            if not deferred:
                _end_sync(call, name, desc, client, send, wrapper)

    async def finish_awaited(call: _DecoratedCall, awaitable: Awaitable[Any]) -> Any:
        call._token = _set_trace_ctx(call._ctx)
        try:
            return call.returned(await awaitable)
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            await _end_async(call, name, desc, client, send, wrapper)

    wrapper.last_trace = None  # type: ignore[attr-defined]
    return wrapper


def _wrap_generator(
    func: Callable[..., Any],
    name: str,
    desc: str,
    step_desc: str,
    client: Any,
    send: bool,
) -> Callable[..., Any]:
    """A generator function traced across its iteration.

    The wrapper is a generator function too. Its trace starts when its body first
    runs (the first ``next``/``send``) and ends when the inner generator returns
    (its return value is the result), raises, or is closed early (``close()``,
    ``break``, garbage collection: not an error). Each resume of the inner
    generator runs inside the trace scope, which is left before every value is
    handed to the consumer; ``send``, ``throw`` and ``close`` are delegated as by
    ``yield from``.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DecoratedCall(args, kwargs, step_desc)  # in the scope from here
        try:
            gen = func(*args, **kwargs)
            sent: Any = None
            thrown: Optional[BaseException] = None
            while True:
                try:
                    item = gen.send(sent) if thrown is None else gen.throw(thrown)
                except StopIteration as stop:
                    return call.returned(stop.value)
                finally:
                    thrown = None  # drop the reference (no traceback cycle)
                _reset_trace_ctx(call._token)  # the consumer runs outside the trace
                try:
                    sent = yield item
                except GeneratorExit:
                    call._token = _set_trace_ctx(call._ctx)
                    gen.close()
                    raise
                except BaseException as exc:
                    thrown = exc
                    sent = None
                call._token = _set_trace_ctx(call._ctx)
        except GeneratorExit:
            call.ended()
            raise
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            _end_sync(call, name, desc, client, send, wrapper)

    wrapper.last_trace = None  # type: ignore[attr-defined]
    return wrapper


def _wrap_async_generator(
    func: Callable[..., Any],
    name: str,
    desc: str,
    step_desc: str,
    client: Any,
    send: bool,
) -> Callable[..., Any]:
    """An async generator function traced across its iteration, as
    :func:`_wrap_generator` (``asend``, ``athrow`` and ``aclose`` delegated; the
    result is always None, an async generator returns no value)."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DecoratedCall(args, kwargs, step_desc)  # in the scope from here
        try:
            agen = func(*args, **kwargs)
            sent: Any = None
            thrown: Optional[BaseException] = None
            while True:
                try:
                    if thrown is None:
                        item = await agen.asend(sent)
                    else:
                        item = await agen.athrow(thrown)
                except StopAsyncIteration:
                    call.returned(None)
                    return
                finally:
                    thrown = None
                _reset_trace_ctx(call._token)  # the consumer runs outside the trace
                try:
                    sent = yield item
                except GeneratorExit:
                    call._token = _set_trace_ctx(call._ctx)
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    thrown = exc
                    sent = None
                call._token = _set_trace_ctx(call._ctx)
        except GeneratorExit:
            call.ended()
            raise
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            await _end_async(call, name, desc, client, send, wrapper)

    wrapper.last_trace = None  # type: ignore[attr-defined]
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
        desc = _truncate(desc, MAX_DESCRIPTION_LENGTH)
        step_desc = f"Execute {fname}"
        wrapped: Callable[..., Any]
        if inspect.iscoroutinefunction(target):
            wrapped = _wrap_async(target, name, desc, step_desc, client, send)
        elif inspect.isgeneratorfunction(target):
            wrapped = _wrap_generator(target, name, desc, step_desc, client, send)
        elif inspect.isasyncgenfunction(target):
            wrapped = _wrap_async_generator(target, name, desc, step_desc, client, send)
        elif awaits_results and _returns_awaitables(target):
            # As infinium-o2's: a coroutine function awaiting what it returns, so
            # frameworks that ask `iscoroutinefunction` (FastAPI, Starlette) await it.
            wrapped = _wrap_async(target, name, desc, step_desc, client, send, True)
        elif awaits_results:
            wrapped = _wrap_awaiting(target, name, desc, step_desc, client, send)
        else:
            wrapped = _wrap_sync(target, name, desc, step_desc, client, send)
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


def __getattr__(name: str) -> Any:
    # infinium-o2 exposes ``infinium.tracing.__version__``; resolve it lazily.
    if name == "__version__":
        return _get_sdk_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
