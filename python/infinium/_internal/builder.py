"""Building a trace: ``StepContext`` (one timed step), ``TraceBuilder`` (a
trace assembled step by step) and the ``TaskData`` assembly both they and the
decorators finish with.

Behaviour follows ``infinium-o2`` 1.2.0 (caps, step shapes, aggregate usage), with
``StepContext.run`` and ``async with`` (JavaScript-edition parity) and thread-safe
step numbering added.
"""

from __future__ import annotations

import inspect
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
    TypeVar,
)

from .._context import TraceContext, exception_text, iso_now
from ..integrations._details import UsageTotals
from ..types import (
    EnvironmentContext,
    ErrorDetail,
    ExecutionStep,
    ExpectedOutcome,
    LlmCall,
    LlmUsage,
    TaskData,
    ToolCall,
)
from .schema import TASK_FIELDS, by_name
from .text import (
    STACK_TRACE_MAX,
    STEP_INPUT_PREVIEW_MAX,
    STEP_OUTPUT_PREVIEW_MAX,
    TOOL_INPUT_SUMMARY_MAX,
    TOOL_OUTPUT_SUMMARY_MAX,
    truncate,
)

__all__ = [
    "PYTHON_VERSION",
    "StepContext",
    "TraceBuilder",
    "assemble",
    "attach_prompts",
    "common",
    "error_detail",
    "get_sdk_version",
    "recorded_step",
    "resumed_trace",
]

T = TypeVar("T")
_perf_ns = time.perf_counter_ns

#: This interpreter's version, as ``environment.python_version`` reports it.
PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])
_sdk_version: Optional[str] = None


def get_sdk_version() -> str:
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


def error_detail(exc: BaseException) -> ErrorDetail:
    return ErrorDetail(
        error_type=type(exc).__name__,
        message=exception_text(exc),
        recoverable=False,
        stack_trace=truncate(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            STACK_TRACE_MAX,
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
        self._input_preview = truncate(preview, STEP_INPUT_PREVIEW_MAX)
        return self

    def set_output(self, preview: str) -> StepContext:
        """Output preview, truncated to 1500 chars."""
        self._output_preview = truncate(preview, STEP_OUTPUT_PREVIEW_MAX)
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
                truncate(input_summary, TOOL_INPUT_SUMMARY_MAX) if input_summary else None
            ),
            output_summary=(
                truncate(output_summary, TOOL_OUTPUT_SUMMARY_MAX) if output_summary else None
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
            self._error = error_detail(exc_val)
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


def recorded_step(
    step_number: int,
    action: str,
    description: str,
    duration_ms: Optional[int],
    *,
    input_preview: Optional[str] = None,
    output_preview: Optional[str] = None,
    error: Optional[ErrorDetail] = None,
    llm_call: Optional[LlmCall] = None,
    metadata: Optional[Dict[str, Any]] = None,
) -> StepContext:
    """A step that already happened (a decorated call's ``execution`` step, a
    captured LLM call): its timing and outcome as measured, previews as given
    (already cut to their caps by whoever captured them)."""
    step = StepContext(step_number, action, description)
    step._duration_ms = duration_ms
    step._input_preview = input_preview
    step._output_preview = output_preview
    step._error = error
    step._llm_call = llm_call
    step._metadata = metadata
    return step


# ---------------------------------------------------------------------------
# TraceBuilder
# ---------------------------------------------------------------------------


def common(values: List[Optional[str]]) -> Optional[str]:
    """The value all of ``values`` share, else ``"multiple"`` (an aggregate
    usage's model and provider)."""
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
            python_version=python_version or PYTHON_VERSION,
            sdk_version=get_sdk_version(),
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
                error = None
                if captured.error_type:
                    error = ErrorDetail(
                        error_type=captured.error_type,
                        message=captured.error_message or "",
                        recoverable=False,
                    )
                step = recorded_step(
                    len(self._steps) + 1,
                    "llm_call",
                    f"{captured.provider}/{captured.model}",
                    latency_ms,
                    input_preview=captured.input_preview,
                    output_preview=captured.output_preview,
                    error=error,
                    llm_call=llm_call,
                    metadata=totals.add(captured),
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
                    model=common([c.model for c in llm_calls]),
                    provider=common([c.provider for c in llm_calls]),
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
        task_data = assemble(
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
            attach_prompts(task_data, _trace_ctx)
        return task_data


def resumed_trace(
    name: str,
    description: str,
    start_ns: int,
    input_summary: Optional[str],
    output_summary: Optional[str],
    steps: List[StepContext],
    errors: Optional[List[ErrorDetail]],
) -> TraceBuilder:
    """A trace that started at ``start_ns`` (``time.perf_counter_ns``) and has
    recorded these summaries, steps and errors so far (a decorated call that
    captured LLM calls finishes through one)."""
    trace = TraceBuilder(name, description)
    trace._start_ns = start_ns
    trace._input_summary = input_summary
    trace._output_summary = output_summary
    trace._steps.extend(steps)
    if errors:
        trace._errors.extend(errors)
    return trace


#: ``TaskData`` from what a trace sets (no section), its parameters in this order.
_task_data = by_name(
    TaskData,
    TASK_FIELDS,
    (
        "name",
        "description",
        "current_datetime",
        "duration",
        "input_summary",
        "output_summary",
        "steps",
        "errors",
        "expected_outcome",
        "environment",
        "llm_usage",
    ),
)


def assemble(
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
        environment = EnvironmentContext(None, None, PYTHON_VERSION, get_sdk_version())
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
    return _task_data(
        name,
        description,
        iso_now(),
        duration,
        input_summary,
        output_summary,
        steps,
        errors,
        expected_outcome,
        environment,
        llm_usage,
    )


def attach_prompts(task_data: TaskData, ctx: TraceContext) -> None:
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
