"""A framework run as a tree of spans, and the one ``TaskData`` it becomes.

An adapter (OpenAI Agents SDK processor, LangChain callback handler, OpenTelemetry
span processor) records each span / run of one framework run as a :class:`Node`
of a :class:`RunTree`; when the run's root ends, :meth:`RunTree.build` turns the
tree into a trace built from the public dataclasses (``_adapter.AdapterBase``
then hands it to the user's client). The rules live here, once:

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

import logging
import time
from typing import Any, Dict, Hashable, Iterator, List, Optional, Tuple

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
    "Node",
    "RunTree",
    "args_preview",
    "error_detail",
    "error_from",
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

#: Spans recorded per run, by default.
MAX_SPANS_PER_TRACE = 1000
#: Characters of previews one trace may carry in all (a 1 MiB payload holds them
#: even at 4 bytes a character); previews past it are left out, counted.
PREVIEW_BUDGET = 200_000
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
