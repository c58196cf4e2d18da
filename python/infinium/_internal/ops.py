"""The clients' shared core: their transport and every operation, each written
once as a generator.

An operation validates its input, *yields* the HTTP requests and sleeps it
needs (``Http``, ``Batch``, ``Sleep``) and turns the answers into its result;
``infinium._internal.drive`` runs it blocking (``InfiniumClient``) or as a
coroutine (``AsyncInfiniumClient``).
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import (
    Any,
    Dict,
    Generator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from .. import _background, _core
from .._context import record_prompt_fetch
from ..exceptions import (
    ConfigurationError,
    InfiniumError,
    InfiniumTimeoutError,
    ValidationError,
)
from ..types import SECTION_TYPES, ApiResponse, BatchResult, PromptContent, TaskData
from ..utils import (
    MAX_STRING_LENGTH,
    get_current_iso_datetime,
    validate_path_id,
    validate_required_field,
    validate_string_length,
)
from .schema import TOP_LEVEL_FIELDS

__all__ = ["Batch", "Http", "Op", "Ops", "Sleep", "check_rate"]

T = TypeVar("T")

#: Keyword arguments ``send_task`` accepts: the sections and the other optional fields.
_SEND_TASK_KWARGS = frozenset(SECTION_TYPES) | frozenset(TOP_LEVEL_FIELDS)

#: Client attributes the requests are made with (see ``Ops.__setattr__``).
_SETTINGS = frozenset(
    ("agent_id", "agent_secret", "base_url", "timeout", "max_retries", "user_agent", "verify_ssl")
)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_VERSION_ERROR = "version must be a positive integer or 'latest'"


# --- what an operation may ask its driver to do ------------------------------


class Http:
    """One request; answered with ``(status, parsed JSON body)``."""

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


class Batch:
    """Many traces sent concurrently; answered with one
    ``(ok, status, payload or message, task name)`` row per trace, in order."""

    __slots__ = ("fail_fast", "max_concurrent", "path", "tasks")

    def __init__(self, path: str, tasks: List[Any], max_concurrent: int, fail_fast: bool) -> None:
        self.path = path
        self.tasks = tasks
        self.max_concurrent = max_concurrent
        self.fail_fast = fail_fast


class Sleep:
    """A pause of ``seconds``; answered with None."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


Step = Union[Http, Batch, Sleep]
Op = Generator[Step, Any, T]


class _RateNotPositive(ConfigurationError, ValueError):
    """``requests_per_second`` not > 0 with rate limiting on: the anchor raises
    ``ValueError`` here, so this ``ConfigurationError`` is one too."""


def check_rate(requests_per_second: Any) -> None:
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


class Ops:
    """The transport and the operations shared by the sync and async clients.

    The client's constructor sets the attributes declared here, then calls
    :meth:`_open`.
    """

    agent_id: str
    agent_secret: str
    base_url: str
    timeout: Any
    max_retries: Any
    user_agent: str
    verify_ssl: Any
    background: bool
    logger: logging.Logger
    _engine: Optional[_core.CoreClient]
    _engine_args: Dict[str, Any]
    _export_args: Dict[str, Any]
    _exporter: Optional[_core.Exporter]
    _export_error: Optional[ValidationError]
    _trace_path_cache: Optional[Tuple[str, str]]

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

    # --- background export --------------------------------------------------

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

    # --- operations (each one generator, driven sync or async) -------------

    def _op_send_task_data(self, task_data: TaskData) -> Op[ApiResponse]:
        path = self._trace_path()
        body = _core.dumps(task_data)
        name = getattr(task_data, "name", None)
        log = self.logger
        if log.isEnabledFor(logging.INFO):
            log.info("Sending task '%s' to %s%s", name, self.base_url, path)
        answer = yield Http("POST", path, body)
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
    ) -> Op[BatchResult]:
        if not tasks:
            raise ValidationError("tasks list cannot be empty")
        if max_concurrent < 1:
            raise ValidationError("max_concurrent must be at least 1")
        task_list = tasks if isinstance(tasks, list) else list(tasks)
        rows = yield Batch(self._trace_path(), task_list, max_concurrent, fail_fast)
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

    def _op_get_interpreted_task_result(self, task_id: str) -> Op[ApiResponse]:
        validate_required_field(task_id, "task_id")
        agent = validate_path_id(self.agent_id, "agent_id")
        task = validate_path_id(task_id, "task_id")
        answer = yield Http("GET", f"/agents/{agent}/interpreted-result/{task}")
        return _api_response(*answer)

    def _op_wait_for_interpretation(
        self, trace_id: str, timeout: float, poll_interval: float
    ) -> Op[ApiResponse]:
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
            yield Sleep(poll_interval)

    def _op_get_prompt(
        self,
        prompt_id: str,
        prompt_key: str,
        version: Union[str, int],
        variables: Optional[Dict[str, str]],
    ) -> Op[PromptContent]:
        safe_id = validate_path_id(prompt_id, "prompt_id")
        if not prompt_key or not str(prompt_key).strip():
            raise ValidationError("prompt_key is required", field="prompt_key")
        validate_string_length(prompt_key, "prompt_key", MAX_STRING_LENGTH)
        version_text = _version_text(version)
        _, data = yield Http(
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
        record_prompt_fetch(prompt, variables)
        return prompt
