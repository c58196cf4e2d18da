"""``InfiniumClient`` and ``AsyncInfiniumClient``.

Both clients share one implementation: every operation is written once as a
generator (``_Ops``) that validates its input, *yields* the HTTP requests and
sleeps it needs and turns the answers into results. ``InfiniumClient`` drives
those generators with blocking calls into the Rust core (GIL released, Ctrl-C
honoured); ``AsyncInfiniumClient`` drives the same generators with awaitables
that never block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from . import _background, _core
from ._context import CapturedPromptFetch, get_current_trace_context
from .exceptions import (
    AuthenticationError,
    BatchError,
    ConfigurationError,
    InfiniumError,
    InfiniumTimeoutError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from .tracing import async_trace_agent, trace_agent
from .types import (
    SECTION_TYPES,
    ApiResponse,
    BatchResult,
    Content,
    Customer,
    Development,
    EnvironmentContext,
    ErrorDetail,
    ExecutionStep,
    Executive,
    ExpectedOutcome,
    General,
    LlmCall,
    LlmUsage,
    Marketing,
    Project,
    PromptContent,
    Research,
    Sales,
    Support,
    TaskData,
    TimeTracking,
    ToolCall,
)
from .utils import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_STRING_LENGTH,
    RateLimiter,
    coerce_section,
    dataclass_to_dict,
    exponential_backoff,
    get_current_iso_datetime,
    merge_dicts,
    retry_with_backoff,
    safe_json_loads,
    validate_agent_credentials,
    validate_duration,
    validate_iso_datetime,
    validate_path_id,
    validate_payload_size,
    validate_required_field,
    validate_string_length,
)

#: Besides the clients, the names the anchor's ``infinium.client`` and
#: ``infinium.async_client`` modules offer (they imported them), so
#: ``from infinium.client import TaskData`` and ``import *`` keep working
#: (``infinium.async_client`` re-exports this list).
__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncInfiniumClient",
    "InfiniumClient",
    # types
    "ApiResponse",
    "BatchResult",
    "Content",
    "Customer",
    "Development",
    "EnvironmentContext",
    "ErrorDetail",
    "ExecutionStep",
    "Executive",
    "ExpectedOutcome",
    "General",
    "LlmCall",
    "LlmUsage",
    "Marketing",
    "Project",
    "PromptContent",
    "Research",
    "Sales",
    "Support",
    "TaskData",
    "TimeTracking",
    "ToolCall",
    # exceptions
    "AuthenticationError",
    "BatchError",
    "InfiniumError",
    "InfiniumTimeoutError",
    "NetworkError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
    # utilities
    "MAX_DESCRIPTION_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_STRING_LENGTH",
    "RateLimiter",
    "coerce_section",
    "dataclass_to_dict",
    "exponential_backoff",
    "get_current_iso_datetime",
    "merge_dicts",
    "retry_with_backoff",
    "safe_json_loads",
    "validate_agent_credentials",
    "validate_duration",
    "validate_iso_datetime",
    "validate_path_id",
    "validate_payload_size",
    "validate_required_field",
    "validate_string_length",
    # tracing
    "CapturedPromptFetch",
    "async_trace_agent",
    "get_current_trace_context",
    "trace_agent",
]

DEFAULT_BASE_URL = "https://platform.i42m.ai/api/v1"
"""The Infinium API used when neither ``base_url`` nor ``INFINIUM_BASE_URL`` is set."""

logger = logging.getLogger("infinium.client")

T = TypeVar("T")

#: Keyword arguments ``send_task`` accepts besides the sections.
_TOP_LEVEL_FIELDS = _core.TOP_LEVEL_FIELDS
_SEND_TASK_KWARGS = frozenset(SECTION_TYPES) | frozenset(_TOP_LEVEL_FIELDS)
_COERCE_TYPES: Dict[str, type] = {
    **SECTION_TYPES,
    "llm_usage": LlmUsage,
    "expected_outcome": ExpectedOutcome,
    "environment": EnvironmentContext,
}
#: Client attributes the requests are made with (see ``_Ops.__setattr__``).
_SETTINGS = frozenset(
    ("agent_id", "agent_secret", "base_url", "timeout", "max_retries", "user_agent", "verify_ssl")
)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_VERSION_ERROR = "version must be a positive integer or 'latest'"


# --- what an operation may ask its driver to do ------------------------------


class _Http:
    __slots__ = ("body", "idempotency_key", "method", "path", "prompt")

    def __init__(
        self,
        method: str,
        path: str,
        body: Any = None,
        prompt: Optional[Tuple[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.prompt = prompt
        self.idempotency_key = idempotency_key


class _Batch:
    __slots__ = ("fail_fast", "max_concurrent", "path", "tasks")

    def __init__(self, path: str, tasks: List[Any], max_concurrent: int, fail_fast: bool) -> None:
        self.path = path
        self.tasks = tasks
        self.max_concurrent = max_concurrent
        self.fail_fast = fail_fast


class _Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


_Step = Union[_Http, _Batch, _Sleep]
_Op = Generator[_Step, Any, T]


class _RateNotPositive(ConfigurationError, ValueError):
    """``requests_per_second`` not > 0 with rate limiting on: the anchor raises
    ``ValueError`` here, so this ``ConfigurationError`` is one too."""


def _check_rate(requests_per_second: Any) -> None:
    try:
        rate = float(requests_per_second)
    except (TypeError, ValueError):
        return  # reported by the core, as before
    if not (rate > 0 and math.isfinite(rate)):
        raise _RateNotPositive(
            "requests_per_second must be positive", config_key="requests_per_second"
        )


def _seconds(value: Any, key: str) -> float:
    """A number of seconds as a float (its range is checked by the core)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a positive number", config_key=key) from None


_MAX_COUNT = 2**32 - 1


def _count(value: Any, key: str) -> int:
    """A non-negative int (not a float, a str or None: the anchor fails on those
    only later, at send time)."""
    if not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise ConfigurationError(f"{key} must be an integer from 0 to {_MAX_COUNT}", config_key=key)
    return value


def _api_response(status: int, data: Any) -> ApiResponse:
    message = "Success"
    if isinstance(data, dict) and data:
        message = data.get("message", "Success")
    # Positional (success, status_code, message, data): a batch builds one per
    # trace, and keyword construction costs twice as much.
    return ApiResponse(True, status, message, data)


def _env(value: Optional[str], name: str) -> Optional[str]:
    return value if value is not None else os.environ.get(name)


def _render(content: str, variables: Dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        v = variables.get(m.group(1), m.group(0))
        # None renders as nothing, as the anchor's; other values as str().
        return "" if v is None else str(v)

    return _PLACEHOLDER.sub(value, content)


def _version_text(version: Union[str, int]) -> str:
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise ValidationError(_VERSION_ERROR, field="version")
    if version == "latest":
        return "latest"
    try:
        number = int(version)
    except ValueError:
        raise ValidationError(_VERSION_ERROR, field="version") from None
    if number < 1:
        raise ValidationError(_VERSION_ERROR, field="version")
    return str(number)


class _Ops:
    """State and operations shared by the sync and async clients."""

    _engine: Optional[_core.CoreClient]

    def __init__(
        self,
        agent_id: Optional[str] = None,
        agent_secret: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        enable_rate_limiting: bool = True,
        requests_per_second: float = 10.0,
        user_agent: str = "infinium-python/1.0.0",
        enable_logging: bool = False,
        log_level: str = "INFO",
        verify_ssl: bool = True,
        *,
        burst: int = 20,
        max_retry_after: float = 60.0,
        backoff_base: float = 1.0,
        # --- background export (issue 6) ---
        background: bool = False,
        max_queue_size: int = 10_000,
        spool_dir: _background.SpoolDir = None,
        durable: bool = False,
        shutdown_timeout: float = 5.0,
        export_concurrency: int = 8,
        max_spool_bytes: int = _background.DEFAULT_MAX_SPOOL_BYTES,
    ) -> None:
        agent_id = _env(agent_id, "INFINIUM_AGENT_ID")
        agent_secret = _env(agent_secret, "INFINIUM_AGENT_SECRET")
        validate_agent_credentials(agent_id, agent_secret)
        if enable_rate_limiting:
            _check_rate(requests_per_second)
        assert agent_id is not None and agent_secret is not None
        if base_url is None:
            # Only an absent base_url falls back: an explicit "" stays "" (and
            # fails to send, as the anchor's), never the production URL.
            base_url = os.environ.get("INFINIUM_BASE_URL") or DEFAULT_BASE_URL
        self.agent_id = agent_id
        self.agent_secret = agent_secret
        self._trace_path_cache: Optional[Tuple[str, str]] = None
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.user_agent = user_agent
        self.verify_ssl = verify_ssl
        self.enable_rate_limiting = enable_rate_limiting
        self.requests_per_second = requests_per_second
        if enable_logging:
            logging.basicConfig(level=getattr(logging, log_level.upper()))
        self.logger = logging.getLogger(self._logger_name)
        self._engine_args: Dict[str, Any] = dict(
            requests_per_second=float(requests_per_second) if enable_rate_limiting else None,
            burst=burst,
            max_retry_after=max_retry_after,
            backoff_base=backoff_base,
        )
        # --- background export (issue 6) ---
        self.background = background
        self.shutdown_timeout = shutdown_timeout
        self._export_args: Dict[str, Any] = _background.export_args(
            max_queue_size=max_queue_size,
            spool_dir=spool_dir,
            durable=durable,
            shutdown_timeout=shutdown_timeout,
            export_concurrency=export_concurrency,
            max_spool_bytes=max_spool_bytes,
        )
        self._exporter: Optional[_core.Exporter] = None
        self._export_error: Optional[ValidationError] = None
        self._engine = None
        self._open()

    #: The logger the anchor's module of this client logs to.
    _logger_name = "infinium.client"

    def _new_engine(self) -> _core.CoreClient:
        timeout = self.timeout
        return _core.CoreClient(
            self.base_url,
            self.agent_id,
            self.agent_secret,
            # None: no timeout at all, as with the anchor's httpx client.
            timeout=None if timeout is None else _seconds(timeout, "timeout"),
            timeout_text=str(timeout),
            max_retries=_count(self.max_retries, "max_retries"),
            user_agent=self.user_agent,
            verify_ssl=self.verify_ssl,
            **self._engine_args,
        )

    def _open(self) -> _core.CoreClient:
        """Build the transport (and the background exporter): at construction,
        and for the async client again on first use after ``close()``."""
        engine = self._new_engine()
        self._engine = engine
        if self.background:
            try:
                path = self._trace_path()
            except ValidationError as exc:  # raised again by each send
                self._export_error = exc
            else:
                self._exporter = _background.start(
                    engine, path, path.split("/")[2], **self._export_args
                )
        return engine

    def __setattr__(self, name: str, value: Any) -> None:
        # The anchor reads these attributes on every request; ours are baked
        # into the transport, so assigning one builds a new transport (and an
        # invalid value is refused with the attribute left as it was).
        if name not in _SETTINGS or self.__dict__.get("_engine") is None:
            object.__setattr__(self, name, value)
            return
        if self.__dict__.get("_exporter") is not None:
            raise ConfigurationError(
                f"{name} cannot be changed on a client with background=True; create a new client",
                config_key=name,
            )
        old = self.__dict__[name]
        object.__setattr__(self, name, value)
        try:
            engine = self._new_engine()
        except BaseException:
            object.__setattr__(self, name, old)
            raise
        object.__setattr__(self, "_engine", engine)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(agent_id={self.agent_id!r}, base_url={self.base_url!r})"

    def _live_core(self) -> _core.CoreClient:
        core = self._engine
        if core is None:
            raise InfiniumError("This client is closed")
        return core

    def _trace_path(self) -> str:
        # Validated once per agent_id value (the attribute is public).
        cached = self._trace_path_cache
        if cached is not None and cached[0] is self.agent_id:
            return cached[1]
        path = f"/agents/{validate_path_id(self.agent_id, 'agent_id')}/trace"
        self._trace_path_cache = (self.agent_id, path)
        return path

    # --- background export (issue 6) ---------------------------------------

    def _enqueue(self, task_data: TaskData) -> ApiResponse:
        """Validate and serialise here, queue the bytes in Rust, return at once."""
        exporter = self._exporter
        if exporter is None or self._engine is None:
            if self._export_error is not None:
                # Drop the previous raise's frames: re-raising one stored
                # exception would otherwise grow its traceback on every call.
                raise self._export_error.with_traceback(None)
            raise InfiniumError("This client is closed")
        # Inline (not a helper call): every background decorator send runs this.
        key, warnings = exporter.submit(task_data)
        if warnings:
            _background.log(warnings)
        return ApiResponse(True, None, "queued", {"queued": True, "idempotency_key": key})

    def stats(self) -> Dict[str, int]:
        """Background export counters: queued, in_flight, sent, failed, retried,
        spooled, replayed, dropped (all 0 without ``background=True``)."""
        return _background.stats(self._exporter)

    # --- operations (each one generator, driven sync or async) -------------

    def _op_send_task_data(self, task_data: TaskData) -> _Op[ApiResponse]:
        path = self._trace_path()
        body = _core.dumps(task_data)
        name = getattr(task_data, "name", None)
        log = self.logger
        if log.isEnabledFor(logging.INFO):
            log.info("Sending task '%s' to %s%s", name, self.base_url, path)
        answer = yield _Http("POST", path, body)
        log.info("Task '%s' sent successfully", name)
        return _api_response(*answer)

    def _build_task(
        self,
        name: str,
        description: str,
        duration: Union[int, float],
        current_datetime: Optional[str],
        kwargs: Dict[str, Any],
    ) -> TaskData:
        unknown = sorted(set(kwargs) - _SEND_TASK_KWARGS)
        if unknown:
            raise TypeError("send_task() got unexpected keyword argument(s): " + ", ".join(unknown))
        seconds = _core.validate_task_fields(name, description, duration, current_datetime)
        if current_datetime is None:
            current_datetime = get_current_iso_datetime()
        return TaskData(
            name=name,
            description=description,
            current_datetime=current_datetime,
            duration=seconds,
            **kwargs,
        )

    def _op_send_tasks_batch(
        self, tasks: Sequence[TaskData], max_concurrent: int, fail_fast: bool
    ) -> _Op[BatchResult]:
        if not tasks:
            raise ValidationError("tasks list cannot be empty")
        if max_concurrent < 1:
            raise ValidationError("max_concurrent must be at least 1")
        task_list = tasks if isinstance(tasks, list) else list(tasks)
        rows = yield _Batch(self._trace_path(), task_list, max_concurrent, fail_fast)
        results: List[ApiResponse] = []
        errors: List[str] = []
        for ok, status, payload, name in rows:
            if ok:
                results.append(_api_response(status, payload))
            else:
                message = payload if payload is not None else f"Task '{name}' was not sent"
                errors.append(message)
                self.logger.error("%s", message)
                results.append(
                    ApiResponse(success=False, message=message, data={"task_name": name})
                )
        successful = len(results) - len(errors)
        return BatchResult(
            successful=successful, failed=len(errors), results=results, errors=errors
        )

    def _op_get_interpreted_task_result(self, task_id: str) -> _Op[ApiResponse]:
        validate_required_field(task_id, "task_id")
        agent = validate_path_id(self.agent_id, "agent_id")
        task = validate_path_id(task_id, "task_id")
        answer = yield _Http("GET", f"/agents/{agent}/interpreted-result/{task}")
        return _api_response(*answer)

    def _op_wait_for_interpretation(
        self, trace_id: str, timeout: float, poll_interval: float
    ) -> _Op[ApiResponse]:
        validate_required_field(trace_id, "trace_id")
        deadline = time.monotonic() + timeout
        while True:
            response = yield from self._op_get_interpreted_task_result(trace_id)
            if response.data and response.data.get("interpretedTraceResult"):
                return response
            if time.monotonic() >= deadline:
                raise InfiniumTimeoutError(
                    f"Interpretation not ready after {timeout}s for trace {trace_id}",
                    timeout_duration=timeout,
                )
            yield _Sleep(poll_interval)

    def _op_get_prompt(
        self,
        prompt_id: str,
        prompt_key: str,
        version: Union[str, int],
        variables: Optional[Dict[str, str]],
    ) -> _Op[PromptContent]:
        safe_id = validate_path_id(prompt_id, "prompt_id")
        if not prompt_key or not str(prompt_key).strip():
            raise ValidationError("prompt_key is required", field="prompt_key")
        validate_string_length(prompt_key, "prompt_key", MAX_STRING_LENGTH)
        version_text = _version_text(version)
        _, data = yield _Http(
            "GET", f"/prompts/{safe_id}/v/{version_text}", prompt=(safe_id, str(prompt_key))
        )
        if not data or not isinstance(data, dict):
            raise InfiniumError("Empty or invalid response from prompt API")
        raw = data.get("content")
        content = raw if isinstance(raw, str) else ""
        prompt = PromptContent(
            prompt_id=data.get("promptId", ""),
            name=data.get("name", ""),
            version=data.get("version", 0),
            content=content,
            created_at=data.get("createdAt", ""),
            rendered_content=_render(content, variables) if variables is not None else None,
        )
        from ._context import record_prompt_fetch

        record_prompt_fetch(prompt, variables)
        return prompt

    # --- the rest of the public surface, identical for both clients -------

    @staticmethod
    def get_current_iso_datetime() -> str:
        """Now, UTC, ISO 8601 with microseconds and ``Z``."""
        return get_current_iso_datetime()

    @staticmethod
    def create_task_data(
        name: str,
        description: str,
        duration: Union[int, float],
        current_datetime: Optional[str] = None,
        **sections: Any,
    ) -> TaskData:
        """Build a ``TaskData``: validates ``duration`` and turns dicts given
        for sections, ``llm_usage``, ``expected_outcome`` and ``environment``
        into their dataclasses."""
        if current_datetime is None:
            current_datetime = get_current_iso_datetime()
        coerced = {
            key: coerce_section(value, _COERCE_TYPES[key])
            if key in _COERCE_TYPES and isinstance(value, dict)
            else value
            for key, value in sections.items()
        }
        return TaskData(
            name=name,
            description=description,
            current_datetime=current_datetime,
            duration=validate_duration(duration),
            **coerced,
        )

    def trace(
        self, name: str, *, auto_send: bool = True, description: Optional[str] = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator tracing a sync or async function (picked per function)."""
        from .tracing import trace_decorator

        return trace_decorator(self, name, auto_send=auto_send, description=description)


# --- drivers -------------------------------------------------------------------


def _drive_sync(core: _core.CoreClient, op: _Op[T]) -> T:
    try:
        step = next(op)
        while True:
            if isinstance(step, _Http):
                answer: Any = core.request(
                    step.method,
                    step.path,
                    step.body,
                    prompt=step.prompt,
                    idempotency_key=step.idempotency_key,
                )
            elif isinstance(step, _Batch):
                answer = core.send_batch(step.path, step.tasks, step.max_concurrent, step.fail_fast)
            else:
                time.sleep(step.seconds)
                answer = None
            step = op.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        op.close()


async def _drive_async(core: _core.CoreClient, op: _Op[T]) -> T:
    try:
        step = next(op)
        while True:
            if isinstance(step, _Http):
                answer: Any = await core.request_async(
                    step.method,
                    step.path,
                    step.body,
                    prompt=step.prompt,
                    idempotency_key=step.idempotency_key,
                )
            elif isinstance(step, _Batch):
                answer = await core.send_batch_async(
                    step.path, step.tasks, step.max_concurrent, step.fail_fast
                )
            else:
                await asyncio.sleep(step.seconds)
                answer = None
            step = op.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        op.close()


class InfiniumClient(_Ops):
    """Blocking client. Every call waits with the GIL released and answers Ctrl-C.

    ``agent_id``, ``agent_secret`` and ``base_url`` fall back to the
    ``INFINIUM_AGENT_ID``, ``INFINIUM_AGENT_SECRET`` and ``INFINIUM_BASE_URL``
    environment variables.
    """

    def __enter__(self) -> InfiniumClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool. The client cannot be used afterwards.

        With ``background=True``: first deliver what is queued, for at most
        ``shutdown_timeout`` seconds, then save the rest in the spool."""
        exporter, self._exporter = self._exporter, None
        if exporter is not None:
            _background.close(exporter, self.shutdown_timeout)
        self._engine = None

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every trace queued so far (and any backlog taken over
        from the spool) is delivered or rejected by the server: True; False
        when ``timeout`` seconds pass first, or when traces were dropped
        since the previous flush (the log says why)."""
        exporter = self._exporter
        if exporter is None:
            return True
        done = exporter.flush(timeout)
        _background.log_warnings(exporter)
        return done

    def _run(self, op: _Op[T]) -> T:
        return _drive_sync(self._live_core(), op)

    def send_task(
        self,
        name: str,
        description: str,
        duration: Union[int, float],
        current_datetime: Optional[str] = None,
        **kwargs: Any,
    ) -> ApiResponse:
        """Validate and send one trace given as fields (sections as kwargs)."""
        task = self._build_task(name, description, duration, current_datetime, kwargs)
        return self.send_task_data(task)

    def send_task_data(self, task_data: TaskData) -> ApiResponse:
        """Validate, serialise and send one ``TaskData``."""
        if self.background:
            return self._enqueue(task_data)
        return self._run(self._op_send_task_data(task_data))

    def send_tasks_batch(self, tasks: List[TaskData], max_concurrent: int = 5) -> BatchResult:
        """Send many traces, ``max_concurrent`` at a time; results in input order."""
        return self._run(self._op_send_tasks_batch(tasks, max_concurrent, False))

    def get_interpreted_task_result(self, task_id: str) -> ApiResponse:
        """Fetch the interpreted result of a trace."""
        return self._run(self._op_get_interpreted_task_result(task_id))

    def wait_for_interpretation(
        self, trace_id: str, timeout: float = 120.0, poll_interval: float = 3.0
    ) -> ApiResponse:
        """Poll until the trace is interpreted or ``timeout`` seconds pass."""
        return self._run(self._op_wait_for_interpretation(trace_id, timeout, poll_interval))

    def get_prompt(
        self,
        prompt_id: str,
        prompt_key: str,
        version: Union[str, int] = "latest",
        variables: Optional[Dict[str, str]] = None,
    ) -> PromptContent:
        """Fetch a Prompt Studio prompt; ``variables`` fill its ``{{placeholders}}``."""
        return self._run(self._op_get_prompt(prompt_id, prompt_key, version, variables))


class AsyncInfiniumClient(_Ops):
    """asyncio client: the same calls as ``InfiniumClient``, as coroutines.

    As the anchor's, it can be used again after ``close()`` (or a second
    ``async with``): the next call opens a new connection pool."""

    _logger_name = "infinium.async_client"

    async def __aenter__(self) -> AsyncInfiniumClient:
        self._live_core()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the connection pool; a later call opens a new one.

        With ``background=True``: first deliver what is queued, for at most
        ``shutdown_timeout`` seconds, then save the rest in the spool."""
        exporter, self._exporter = self._exporter, None
        if exporter is not None:
            await _background.close_async(exporter, self.shutdown_timeout)
        self._engine = None

    async def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every trace queued so far (and any backlog taken over
        from the spool) is delivered or rejected by the server: True; False
        when ``timeout`` seconds pass first, or when traces were dropped
        since the previous flush (the log says why). Never blocks the event
        loop."""
        exporter = self._exporter
        if exporter is None:
            return True
        done = await exporter.flush_async(timeout)
        _background.log_warnings(exporter)
        return bool(done)

    def _live_core(self) -> _core.CoreClient:
        core = self._engine
        if core is None:  # closed: reopen, as the anchor's async client does
            core = self._open()
        return core

    async def _run(self, op: _Op[T]) -> T:
        return await _drive_async(self._live_core(), op)

    async def send_task(
        self,
        name: str,
        description: str,
        duration: Union[int, float],
        current_datetime: Optional[str] = None,
        **kwargs: Any,
    ) -> ApiResponse:
        """Validate and send one trace given as fields (sections as kwargs)."""
        task = self._build_task(name, description, duration, current_datetime, kwargs)
        return await self.send_task_data(task)

    async def send_task_data(self, task_data: TaskData) -> ApiResponse:
        """Validate, serialise and send one ``TaskData``."""
        if self.background:
            self._live_core()
            return self._enqueue(task_data)
        return await self._run(self._op_send_task_data(task_data))

    async def send_tasks_batch(
        self, tasks: List[TaskData], max_concurrent: int = 5, fail_fast: bool = False
    ) -> BatchResult:
        """Send many traces concurrently. With ``fail_fast`` the first failure
        stops the batch (in-flight sends are cancelled) and raises ``BatchError``
        with the true counts at that moment."""
        return await self._run(self._op_send_tasks_batch(tasks, max_concurrent, fail_fast))

    async def send_batch_sequential(self, tasks: List[TaskData]) -> BatchResult:
        """Send traces one at a time (JavaScript-edition ``sendBatchSequential``)."""
        return await self._run(self._op_send_tasks_batch(tasks, 1, False))

    async def get_interpreted_task_result(self, task_id: str) -> ApiResponse:
        """Fetch the interpreted result of a trace."""
        return await self._run(self._op_get_interpreted_task_result(task_id))

    async def wait_for_interpretation(
        self, trace_id: str, timeout: float = 120.0, poll_interval: float = 3.0
    ) -> ApiResponse:
        """Poll until the trace is interpreted or ``timeout`` seconds pass."""
        return await self._run(self._op_wait_for_interpretation(trace_id, timeout, poll_interval))

    async def get_prompt(
        self,
        prompt_id: str,
        prompt_key: str,
        version: Union[str, int] = "latest",
        variables: Optional[Dict[str, str]] = None,
    ) -> PromptContent:
        """Fetch a Prompt Studio prompt; ``variables`` fill its ``{{placeholders}}``."""
        return await self._run(self._op_get_prompt(prompt_id, prompt_key, version, variables))
