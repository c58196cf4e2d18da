"""The core the framework adapters share: a run tree becomes one ``TaskData``.

An adapter (OpenAI Agents SDK processor, LangChain callback handler, OpenTelemetry
span processor) records each span / run of one framework run as a :class:`Node`
of a :class:`RunTree`; when the run's root ends, :meth:`RunTree.build` turns the
tree into a trace built from the public dataclasses and :class:`Sender` hands it
to the user's client. The rules live here, once:

* model calls are steps with action ``"llm_inference"`` and an ``LlmCall``; tool
  executions are steps with action ``"tool_use"`` and a ``ToolCall``; other
  recorded kinds (handoff, guardrail, retrieval) are steps of their own action;
  aggregate spans (agent, turn, chain) are not steps: their tokens are their
  children's, so nothing is counted twice;
* steps are numbered in start order;
* a model call nested inside another model call (a framework span over a
  provider-client span of the same request) is recorded once: the outer one,
  completed with what only the inner one knew;
* the trace's ``llm_usage`` sums the steps' tokens; a failed span's error is on
  its step, and the run's own error (the root's or a top-level span's) is in the
  trace's ``errors``;
* previews are cut to the SDK's step caps, and captured at all only with
  ``capture_content``; the previews of one trace share a budget so a trace with
  very many steps still fits the API's payload limit.

Nothing here imports a framework.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Hashable,
    Iterator,
    List,
    Optional,
    Tuple,
    TypeVar,
)

from ..tracing import (
    _DECORATOR_INPUT_SUMMARY_MAX,
    _PYTHON_VERSION,
    _STACK_TRACE_MAX,
    _STEP_INPUT_PREVIEW_MAX,
    _STEP_OUTPUT_PREVIEW_MAX,
    _TOOL_INPUT_SUMMARY_MAX,
    _TOOL_OUTPUT_SUMMARY_MAX,
    _capped_repr,
    _common,
    _error_detail,
    _get_sdk_version,
    _truncate,
)
from ..types import (
    ApiResponse,
    EnvironmentContext,
    ErrorDetail,
    ExecutionStep,
    LlmCall,
    LlmUsage,
    TaskData,
    ToolCall,
)
from ..utils import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_STRING_LENGTH,
    get_current_iso_datetime,
)

error_detail = _error_detail

__all__ = [
    "LLM",
    "TOOL",
    "AdapterBase",
    "Node",
    "OpenRuns",
    "RunTree",
    "Sender",
    "message_text",
    "preview",
]

logger = logging.getLogger("infinium.integrations")

LLM = "llm_inference"
TOOL = "tool_use"

#: Step input previews, step output previews, tool input and output summaries.
INPUT_MAX = _STEP_INPUT_PREVIEW_MAX
OUTPUT_MAX = _STEP_OUTPUT_PREVIEW_MAX
TOOL_INPUT_MAX = _TOOL_INPUT_SUMMARY_MAX
TOOL_OUTPUT_MAX = _TOOL_OUTPUT_SUMMARY_MAX
#: The trace's input / output summaries (the decorators' input cap).
SUMMARY_MAX = _DECORATOR_INPUT_SUMMARY_MAX

#: Defaults of every adapter: runs open at once, spans recorded per run.
MAX_OPEN_TRACES = 1000
MAX_SPANS_PER_TRACE = 1000
#: Characters of previews one trace may carry in all (a 1 MiB payload holds them
#: even at 4 bytes a character); previews past it are left out, counted.
PREVIEW_BUDGET = 200_000
#: Seconds a framework's shutdown / force_flush waits for the sends in flight.
FLUSH_TIMEOUT = 30.0
#: Seconds the sends still in flight at exit get to finish.
EXIT_TIMEOUT = 5.0
#: The API refuses a duration over a day; a longer run is reported as one day.
MAX_DURATION_S = 86_400.0

_time_ns = time.time_ns


# ---------------------------------------------------------------------------
# Previews
# ---------------------------------------------------------------------------


def _content_text(content: Any, depth: int) -> Optional[str]:
    """Text of a message's ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)) and depth < 4:
        texts = [t for t in (message_text(p, depth + 1) for p in content[:32]) if t]
        return "\n".join(texts) if texts else None
    return None


#: Characters of a tool call's arguments kept in a preview of the call.
_CALL_ARGS_MAX = 1000
#: Keys of a dict whose value holds the text (graph state, chain inputs, tool calls).
_WRAPPER_KEYS = (
    "messages",
    "output",
    "result",
    "response",
    "input",
    "arguments",
    "query",
    "question",
)


def field_of(value: Any, key: str) -> Any:
    """``value[key]`` of a dict, else the attribute (None when absent or failing)."""
    if isinstance(value, dict):
        return value.get(key)
    try:
        return getattr(value, key, None)
    except Exception:
        return None


def _call_text(call: Any) -> Optional[str]:
    """``name(arguments)`` of a tool call (OpenAI ``function`` form, Responses
    ``function_call`` items, LangChain ``{"name", "args"}``)."""
    function = field_of(call, "function") or call
    name = field_of(function, "name")
    if not isinstance(name, str):
        return None
    args = field_of(function, "arguments")
    if args is None:
        args = field_of(call, "args")
    if args is None:
        return None
    shown = args[:_CALL_ARGS_MAX] if isinstance(args, str) else _capped_repr(args, _CALL_ARGS_MAX)
    return f"{name}({shown})"


def message_text(value: Any, depth: int = 0) -> Optional[str]:
    """The text a message-like value carries, or None when it has none.

    A string; a dict or object with ``content`` / ``parts`` / ``text`` (chat
    messages, content parts, GenAI semantic-convention messages, LangChain
    messages), or with tool calls (``name(arguments)``); a dict holding them under
    ``messages`` / ``output`` / ``input`` / ``arguments`` / ``query`` / ``question``
    / ``result`` / ``response`` (graph state, chain inputs, Responses input items,
    tool results); for a list of messages, the last one's text.
    """
    if isinstance(value, str):
        return value
    if depth > 4 or value is None or isinstance(value, (int, float)):
        return None
    if isinstance(value, (list, tuple)):
        for item in reversed(value[-32:]):
            found = message_text(item, depth + 1)
            if found:
                return found
        return None
    for key in ("content", "parts", "text"):  # a message or a content part
        found = _content_text(field_of(value, key), depth)
        if found:
            return found
    calls = field_of(value, "tool_calls")
    if isinstance(calls, (list, tuple)) and calls:
        texts = [t for t in (_call_text(c) for c in calls[:8]) if t]
        if texts:
            return "; ".join(texts)
    found = _call_text(value)
    if found:
        return found
    if isinstance(value, dict):
        for key in _WRAPPER_KEYS:  # inputs / outputs holding messages
            if key in value:
                inner = value[key]
                if isinstance(inner, (int, float)) and not isinstance(inner, bool):
                    return str(inner)  # a tool's result
                found = message_text(inner, depth + 1)
                if found:
                    return found
    return None


def args_preview(value: Any, cap: int) -> Optional[str]:
    """A bounded preview of a tool's arguments: a string as given (JSON, say),
    anything else as its capped repr (all of its keys, not one message's text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _truncate(value, cap)
    try:
        return _capped_repr(value, cap)
    except Exception:
        return f"<{type(value).__name__}>"


def preview(value: Any, cap: int) -> Optional[str]:
    """A bounded preview of ``value``: its message text, else its capped repr."""
    if value is None:
        return None
    try:
        text = message_text(value)
        if text is None:
            return _capped_repr(value, cap)
        return _truncate(text, cap)
    except Exception:
        return f"<{type(value).__name__}>"


# ---------------------------------------------------------------------------
# The run tree
# ---------------------------------------------------------------------------


class Node:
    """One span / run of a framework run: a step, or an aggregate (``action`` None)."""

    __slots__ = (
        "action",
        "completion_tokens",
        "end_ns",
        "error",
        "input",
        "key",
        "metadata",
        "model",
        "name",
        "output",
        "parent",
        "prompt_tokens",
        "provider",
        "seq",
        "source",
        "start_ns",
        "temperature",
    )

    def __init__(
        self,
        key: Hashable,
        parent: Optional[Hashable],
        action: Optional[str],
        name: str,
        start_ns: int,
        seq: int,
    ) -> None:
        self.key = key
        self.parent = parent
        self.action = action
        self.name = name
        self.start_ns = start_ns
        self.seq = seq
        self.end_ns: Optional[int] = None
        self.model: Optional[str] = None
        self.provider: Optional[str] = None
        self.prompt_tokens: Optional[int] = None
        self.completion_tokens: Optional[int] = None
        self.temperature: Optional[float] = None
        #: Previews, already cut to the step caps by :func:`preview` (None
        #: without ``capture_content``).
        self.input: Optional[str] = None
        self.output: Optional[str] = None
        self.error: Optional[ErrorDetail] = None
        self.metadata: Optional[Dict[str, Any]] = None
        #: What recorded it (an OTel instrumentation scope's name and version).
        self.source: Optional[Tuple[Optional[str], Optional[str]]] = None

    def absorb(self, inner: Node) -> None:
        """Complete this model call with what a nested record of it knew."""
        for field in (
            "model",
            "provider",
            "prompt_tokens",
            "completion_tokens",
            "temperature",
            "input",
            "output",
            "error",
        ):
            if getattr(self, field) is None:
                setattr(self, field, getattr(inner, field))


def as_int(value: Any) -> Optional[int]:
    """A token count as given, or None for anything that is not a plain int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def text(value: Any) -> Optional[str]:
    """``value`` when it is a non-empty string (a user value read by name)."""
    return value if isinstance(value, str) and value else None


class RunTree:
    """The spans of one framework run, in start order, and the run's outcome."""

    __slots__ = (
        "_seq",
        "description",
        "dropped",
        "end_ns",
        "errors",
        "framework",
        "framework_version",
        "input_summary",
        "keys",
        "max_nodes",
        "name",
        "nodes",
        "output_summary",
        "root",
        "start_ns",
    )

    def __init__(
        self,
        name: str,
        description: str,
        *,
        start_ns: Optional[int] = None,
        framework: Optional[str] = None,
        framework_version: Optional[str] = None,
        max_nodes: int = MAX_SPANS_PER_TRACE,
    ) -> None:
        self.name = name
        self.description = description
        self.start_ns = _time_ns() if start_ns is None else start_ns
        self.end_ns: Optional[int] = None
        self.framework = framework
        self.framework_version = framework_version
        self.nodes: Dict[Hashable, Node] = {}
        self.errors: List[ErrorDetail] = []
        self.input_summary: Optional[str] = None
        self.output_summary: Optional[str] = None
        self.max_nodes = max_nodes
        self.dropped = 0
        self._seq = 0
        #: The key of the root span / run, and every key an adapter mapped to this
        #: run (recorded or dropped), for its clean-up when the run ends.
        self.root: Optional[Hashable] = None
        self.keys: List[Hashable] = []

    def add(
        self,
        key: Hashable,
        parent: Optional[Hashable],
        action: Optional[str],
        name: str,
        start_ns: Optional[int] = None,
    ) -> Optional[Node]:
        """Record a span; None (and one more ``dropped``) past ``max_nodes``."""
        if len(self.nodes) >= self.max_nodes:
            self.dropped += 1
            return None
        self._seq += 1
        node = Node(
            key, parent, action, name, _time_ns() if start_ns is None else start_ns, self._seq
        )
        self.nodes[key] = node
        return node

    def _outer_model_call(self, node: Node) -> Optional[Node]:
        """The model call ``node`` is nested in (through aggregates only), if any."""
        seen = 0
        parent = self.nodes.get(node.parent) if node.parent is not None else None
        while parent is not None and seen < len(self.nodes):
            if parent.action == LLM:
                return parent
            if parent.action is not None:  # a tool (say) calling a model: its own call
                return None
            seen += 1
            parent = self.nodes.get(parent.parent) if parent.parent is not None else None
        return None

    def steps(self) -> Iterator[Node]:
        """The nodes that become steps, in start order (nested model calls merged)."""
        ordered = sorted(self.nodes.values(), key=lambda n: (n.start_ns, n.seq))
        merged = set()
        for node in ordered:
            if node.action == LLM:
                outer = self._outer_model_call(node)
                if outer is not None:
                    outer.absorb(node)
                    merged.add(id(node))
        for node in ordered:
            if node.action is not None and id(node) not in merged:
                yield node

    def build(self, end_ns: Optional[int] = None) -> TaskData:
        """The trace: steps, aggregate usage, errors, summaries, environment."""
        end = self.end_ns or end_ns or _time_ns()
        steps: List[ExecutionStep] = []
        calls: List[LlmCall] = []
        budget = PREVIEW_BUDGET
        first_input: Optional[str] = None
        last_output: Optional[str] = None
        for node in self.steps():
            end_ns = node.end_ns
            duration = None if end_ns is None else max(0, (end_ns - node.start_ns) // 1_000_000)
            inp, out = node.input, node.output
            if inp is not None or out is not None:
                size = (len(inp) if inp else 0) + (len(out) if out else 0)
                if size > budget:
                    inp = out = None
                budget -= size
            action = node.action or ""
            llm_call = tool_call = None
            if action == LLM:
                llm_call = LlmCall(
                    node.model or "unknown",
                    node.provider,
                    node.prompt_tokens,
                    node.completion_tokens,
                    duration,
                    node.temperature,
                )
                calls.append(llm_call)
                if first_input is None:
                    first_input = inp
                if out:
                    last_output = out
            elif action == TOOL:
                tool_input = _truncate(inp, TOOL_INPUT_MAX) if inp else None
                tool_call = ToolCall(node.name, duration, tool_input, out, node.error)
            steps.append(
                ExecutionStep(
                    len(steps) + 1,
                    action,
                    node.name,
                    duration,
                    inp,
                    out,
                    node.error,
                    tool_call,
                    llm_call,
                    node.metadata,
                )
            )
        duration_s = min(max(0.0, (end - self.start_ns) / 1e9), MAX_DURATION_S)
        return TaskData(
            name=_truncate(self.name or "framework run", MAX_NAME_LENGTH),
            description=_truncate(self.description or self.name, MAX_DESCRIPTION_LENGTH),
            current_datetime=get_current_iso_datetime(),
            duration=round(duration_s, 3),
            llm_usage=usage(calls),
            input_summary=self.input_summary or first_input,
            output_summary=self.output_summary or last_output,
            steps=steps or None,
            environment=EnvironmentContext(
                self.framework,
                self.framework_version,
                _PYTHON_VERSION,
                _get_sdk_version(),
            ),
            errors=list(self.errors) or None,
        )


def usage(calls: List[LlmCall]) -> Optional[LlmUsage]:
    """The run's usage: the sums of its model calls' tokens and latencies."""
    if not calls:
        return None
    prompt = sum(c.prompt_tokens or 0 for c in calls)
    completion = sum(c.completion_tokens or 0 for c in calls)
    latency = sum(c.latency_ms or 0 for c in calls)
    return LlmUsage(
        model=_common([c.model for c in calls]),
        provider=_common([c.provider for c in calls]),
        prompt_tokens=prompt or None,
        completion_tokens=completion or None,
        total_tokens=(prompt + completion) or None,
        api_calls_count=len(calls),
        total_latency_ms=latency or None,
        calls=calls,
    )


# ---------------------------------------------------------------------------
# Open runs: bounded, oldest evicted
# ---------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class OpenRuns(Generic[K, V]):
    """Runs not finished yet, at most ``cap``; a new one past the cap evicts the
    oldest (counted, with a warning). Callers hold the adapter's lock."""

    __slots__ = ("_runs", "cap", "evicted", "on_evict", "what")

    def __init__(self, cap: int, what: str, on_evict: Optional[Callable[[V], None]] = None) -> None:
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise ValueError(f"the cap on open {what} must be a positive int, got {cap!r}")
        self.cap = cap
        self.what = what
        self.evicted = 0
        self.on_evict = on_evict
        self._runs: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, key: K) -> Optional[V]:
        return self._runs.get(key)

    def pop(self, key: K) -> Optional[V]:
        return self._runs.pop(key, None)

    def add(self, key: K, value: V) -> None:
        runs = self._runs
        while len(runs) >= self.cap:
            _, oldest = runs.popitem(last=False)
            self.evicted += 1
            if self.on_evict is not None:
                self.on_evict(oldest)
            logger.warning(
                "Infinium: more than %d open %s; the oldest was dropped unsent (%d so far)",
                self.cap,
                self.what,
                self.evicted,
            )
        runs[key] = value

    def values(self) -> List[V]:
        return list(self._runs.values())

    def clear(self) -> None:
        self._runs.clear()


# ---------------------------------------------------------------------------
# Sending through the user's client
# ---------------------------------------------------------------------------


class _LoopThread:
    """One daemon thread running an event loop, for sends that must not block
    (or cannot run on) the caller's thread. Started on first use; a forked child
    starts its own. At exit, sends still in flight get up to
    ``EXIT_TIMEOUT`` seconds to finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._pid = 0
        self._atexit = False
        self.pending: set[concurrent.futures.Future[Any]] = set()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="infinium-integrations-send", daemon=True
                )
                thread.start()
                self._loop, self._pid = loop, os.getpid()
                self.pending = set()
                if not self._atexit:
                    atexit.register(self.drain)
                    self._atexit = True
            return self._loop

    def drain(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Wait for the sends in flight (at exit)."""
        with self._lock:
            pending = list(self.pending) if self._pid == os.getpid() else []
        if pending:
            concurrent.futures.wait(pending, timeout=timeout)


_loop_thread = _LoopThread()


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Sender:
    """Hands finished traces to the user's client; never raises.

    * a sync client: ``send_task_data`` in the caller's thread (with
      ``background=True`` that only queues); a blocking send called from a thread
      running an event loop goes to the send thread instead, so the loop never
      waits on the network;
    * an async client: its coroutine runs on the send thread's own loop, so a sync
      callback neither blocks the caller's loop nor depends on it outliving the
      send (``asyncio.run`` cancels what is left on its loop when it returns).

    :meth:`flush` waits for the sends handed to the send thread.
    """

    def __init__(self, client: Any, stats: Dict[str, int], lock: threading.Lock) -> None:
        send = getattr(client, "send_task_data", None)
        if not callable(send):
            raise TypeError(
                "client must be an InfiniumClient or AsyncInfiniumClient "
                f"(with send_task_data), got {type(client).__name__}"
            )
        self.client = client
        self._stats = stats
        self._lock = lock
        self._pending: set[concurrent.futures.Future[Any]] = set()
        is_async = asyncio.iscoroutinefunction(send)
        self._is_async = is_async
        self._blocking = not is_async and not getattr(client, "background", False)

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _outcome(self, result: Any, name: str) -> None:
        if isinstance(result, ApiResponse) and not result.success:
            self._count("send_errors")
            logger.warning(
                "Infinium: sending the trace of %r failed: %s %s",
                name,
                result.status_code,
                result.message,
            )
        else:
            self._count("traces_sent")

    def _failed(self, name: str) -> None:
        self._count("send_errors")
        logger.warning("Infinium: sending the trace of %r failed", name, exc_info=True)

    def send(self, task_data: TaskData) -> None:
        name = task_data.name
        if self._is_async or (self._blocking and _running_loop() is not None):
            self._hand_off(task_data, name)
            return
        try:
            result = self.client.send_task_data(task_data)
        except Exception:
            self._failed(name)
            return
        self._outcome(result, name)

    async def _send_async(self, task_data: TaskData, name: str) -> None:
        try:
            if self._is_async:
                result = await self.client.send_task_data(task_data)
            else:
                # Blocking, on the send thread itself (it is ours; an executor
                # could not start its threads while the interpreter exits).
                result = self.client.send_task_data(task_data)
        except Exception:
            self._failed(name)
            return
        self._outcome(result, name)

    def _hand_off(self, task_data: TaskData, name: str) -> None:
        try:
            future = asyncio.run_coroutine_threadsafe(
                self._send_async(task_data, name), _loop_thread.loop()
            )
        except Exception:
            self._failed(name)
            return
        with self._lock:
            self._pending.add(future)
            _loop_thread.pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
            _loop_thread.pending.discard(future)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for the sends handed to the send thread (True when all are done)."""
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return True
        _done, not_done = concurrent.futures.wait(pending, timeout=timeout)
        return not not_done


# ---------------------------------------------------------------------------
# What every adapter shares
# ---------------------------------------------------------------------------

STAT_KEYS = (
    "traces_sent",
    "send_errors",
    "build_errors",
    "callback_errors",
    "traces_evicted",
    "spans_dropped",
)


class AdapterBase:
    """Client, ``capture_content``, the lock, counters, the open runs and sending.

    ``stats()`` reports: ``traces_sent`` (handed to the client and accepted: queued
    or delivered), ``send_errors``, ``build_errors`` (a run that could not be made a
    trace), ``callback_errors`` (a framework callback this adapter failed on; the
    framework never sees the error), ``traces_evicted`` (runs dropped unsent past
    ``max_open_traces``), ``spans_dropped`` (spans past ``max_spans_per_trace``),
    ``open_traces`` and ``pending_sends``.
    """

    framework: Optional[str] = None

    def __init__(
        self,
        client: Any,
        *,
        capture_content: bool,
        max_open_traces: int,
        max_spans_per_trace: int,
        what: str,
    ) -> None:
        if not isinstance(capture_content, bool):
            raise TypeError(f"capture_content must be a bool, got {type(capture_content).__name__}")
        if (
            not isinstance(max_spans_per_trace, int)
            or isinstance(max_spans_per_trace, bool)
            or max_spans_per_trace < 1
        ):
            raise ValueError(
                f"max_spans_per_trace must be a positive int, got {max_spans_per_trace!r}"
            )
        self._lock = threading.Lock()
        self._stats: Dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._sender = Sender(client, self._stats, self._lock)
        self.client = client
        self.capture_content = capture_content
        self.max_spans_per_trace = max_spans_per_trace
        self._open: OpenRuns[Any, RunTree] = OpenRuns(max_open_traces, what, self._forget)
        self._logged_callback_error = False
        self._version: Optional[Tuple[Optional[str]]] = None

    def stats(self) -> Dict[str, int]:
        """Counters of this adapter (see the class docstring)."""
        with self._lock:
            out = dict(self._stats)
            out["traces_evicted"] = self._open.evicted
            out["open_traces"] = len(self._open)
        out["pending_sends"] = self._sender.pending()
        return out

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until the traces finished so far are handed over (True), or
        ``timeout`` seconds pass (False). A client with ``background=True`` has
        its own ``flush()`` for delivery."""
        return self._sender.flush(timeout)

    def _callback_failed(self, where: str) -> None:
        """A framework callback failed inside this adapter: log it (the first
        time with its traceback) and count it; never raise into the framework."""
        with self._lock:
            self._stats["callback_errors"] += 1
            first = not self._logged_callback_error
            self._logged_callback_error = True
        if first:
            logger.warning("Infinium: %s failed in %s", where, type(self).__name__, exc_info=True)
        else:
            logger.debug("Infinium: %s failed in %s", where, type(self).__name__, exc_info=True)

    def _new_tree(
        self,
        key: Any,
        name: str,
        description: str,
        start_ns: Optional[int] = None,
        *,
        register: bool = True,
    ) -> RunTree:
        """A run tree, registered among the open runs unless ``register`` is False
        (a run that ends as it starts). Called under the lock."""
        if self._version is None:
            self._version = (self._framework_version(),)
        tree = RunTree(
            name,
            description,
            start_ns=start_ns,
            framework=self.framework,
            framework_version=self._version[0],
            max_nodes=self.max_spans_per_trace,
        )
        if register:
            self._open.add(key, tree)
        return tree

    def _framework_version(self) -> Optional[str]:
        """The framework's version (read once, on the first run)."""
        return None

    def _forget(self, tree: RunTree) -> None:
        """A run is gone (finished or evicted): drop what maps to it (under the lock)."""

    def _finish(self, tree: RunTree, end_ns: Optional[int] = None) -> None:
        """Build the trace of a finished run and send it (never raises)."""
        try:
            if tree.dropped:
                with self._lock:
                    self._stats["spans_dropped"] += tree.dropped
            task_data = tree.build(end_ns)
        except Exception:
            with self._lock:
                self._stats["build_errors"] += 1
            logger.warning("Infinium: could not build the trace of %r", tree.name, exc_info=True)
            return
        self._sender.send(task_data)


class Facade:
    """The public face of an adapter whose state is an :class:`AdapterBase` in
    ``_core`` (the adapter itself subclasses the framework's base class)."""

    _core: AdapterBase

    @property
    def client(self) -> Any:
        """The Infinium client the traces are sent through."""
        return self._core.client

    @property
    def capture_content(self) -> bool:
        return self._core.capture_content

    def stats(self) -> Dict[str, int]:
        """Counters: ``traces_sent``, ``send_errors``, ``build_errors``,
        ``callback_errors``, ``traces_evicted``, ``spans_dropped``,
        ``open_traces``, ``pending_sends``."""
        return self._core.stats()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for the sends handed to the send thread (True when none is left)."""
        return self._core.flush(timeout)


def error_from(
    error_type: Optional[str], message: Optional[str], stack_trace: Optional[str] = None
) -> ErrorDetail:
    """An ``ErrorDetail`` from a framework's error record (strings checked)."""
    return ErrorDetail(
        error_type=text(error_type) or "Error",
        message=_truncate(message if isinstance(message, str) else "", MAX_STRING_LENGTH),
        recoverable=False,
        stack_trace=(
            _truncate(stack_trace, _STACK_TRACE_MAX) if isinstance(stack_trace, str) else None
        ),
    )
