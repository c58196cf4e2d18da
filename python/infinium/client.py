"""``InfiniumClient`` and ``AsyncInfiniumClient``.

Both clients share one implementation: every operation is written once, and
``InfiniumClient`` runs it with blocking calls into the Rust core (GIL
released, Ctrl-C honoured) while ``AsyncInfiniumClient`` runs the same
operation with awaitables that never block the event loop.
"""

# This module holds the clients' public surface: the constructor and every
# method users call. The operations (each one generator that validates its
# input, yields the HTTP requests and sleeps it needs and turns the answers
# into results) are in infinium._internal.ops; infinium._internal.drive runs
# them blocking or as a coroutine.

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional, TypeVar, Union

from . import _background, _core
from ._context import CapturedPromptFetch, get_current_trace_context
from ._internal.decorate import trace_decorator
from ._internal.drive import drive_async, drive_sync
from ._internal.ops import Op, Ops, check_rate
from .exceptions import (
    AuthenticationError,
    BatchError,
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
#: (``infinium.async_client`` re-exports this list). A literal list, as the
#: imports above: type checkers follow no other kind through ``import *``
#: (tests/test_public_api.py checks it against the modules it re-exports).
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
"""The Infinium API used when neither ``base_url`` nor ``INFINIUM_BASE_URL`` is set."""

logger = logging.getLogger("infinium.client")

T = TypeVar("T")

_COERCE_TYPES: Dict[str, type] = {
    **SECTION_TYPES,
    "llm_usage": LlmUsage,
    "expected_outcome": ExpectedOutcome,
    "environment": EnvironmentContext,
}


def _env(value: Optional[str], name: str) -> Optional[str]:
    return value if value is not None else os.environ.get(name)


class _Client(Ops):
    """What both clients share: the constructor and the helpers of their public surface."""

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
        # --- background export ---
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
            check_rate(requests_per_second)
        assert agent_id is not None and agent_secret is not None
        if base_url is None:
            # Only an absent base_url falls back: an explicit "" stays "" (and
            # fails to send, as the anchor's), never the production URL.
            base_url = os.environ.get("INFINIUM_BASE_URL") or DEFAULT_BASE_URL
        self.agent_id = agent_id
        self.agent_secret = agent_secret
        self._trace_path_cache = None
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
        self._engine_args = dict(
            requests_per_second=float(requests_per_second) if enable_rate_limiting else None,
            burst=burst,
            max_retry_after=max_retry_after,
            backoff_base=backoff_base,
        )
        # --- background export ---
        self.background = background
        self.shutdown_timeout = shutdown_timeout
        self._export_args = _background.export_args(
            max_queue_size=max_queue_size,
            spool_dir=spool_dir,
            durable=durable,
            shutdown_timeout=shutdown_timeout,
            export_concurrency=export_concurrency,
            max_spool_bytes=max_spool_bytes,
        )
        self._exporter = None
        self._export_error = None
        self._engine = None
        self._open()

    #: The logger the anchor's module of this client logs to.
    _logger_name = "infinium.client"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(agent_id={self.agent_id!r}, base_url={self.base_url!r})"

    def stats(self) -> Dict[str, int]:
        """Background export counters: queued, in_flight, sent, failed, retried,
        spooled, replayed, dropped (all 0 without ``background=True``)."""
        return _background.stats(self._exporter)

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
        return trace_decorator(self, name, auto_send=auto_send, description=description)


class InfiniumClient(_Client):
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

    def _run(self, op: Op[T]) -> T:
        return drive_sync(self._live_core(), op)

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


class AsyncInfiniumClient(_Client):
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

    async def _run(self, op: Op[T]) -> T:
        return await drive_async(self._live_core(), op)

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
