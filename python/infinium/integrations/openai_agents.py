"""OpenAI Agents SDK runs become Infinium traces (an Agents SDK trace processor).

::

    import agents
    from infinium.integrations.openai_agents import InfiniumTracingProcessor
    agents.add_trace_processor(InfiniumTracingProcessor(client))
    # or agents.set_trace_processors([...]) to replace OpenAI's own exporter

One Agents SDK trace (one ``Runner.run`` / ``run_sync`` / ``run_streamed``, or every
run inside one ``agents.trace(...)`` block) becomes one Infinium trace named after
its ``workflow_name``. Response spans (the Responses model) and generation spans
(the Chat Completions model) become ``llm_inference`` steps; function spans
``tool_use`` steps with the tool's name, input and output; handoffs and guardrails
steps of their own action, without tokens; task, turn and agent spans are
aggregates (their usage is their children's). Importing this module imports
``openai-agents``.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from agents.tracing import TracingProcessor

from ._adapter import (
    FLUSH_TIMEOUT,
    MAX_OPEN_TRACES,
    MAX_SPANS_PER_TRACE,
    AdapterBase,
    Facade,
)
from ._runtree import (
    INPUT_MAX,
    LLM,
    OUTPUT_MAX,
    TOOL,
    Node,
    RunTree,
    args_preview,
    as_int,
    error_from,
    field_of,
    number,
    preview,
    text,
)

__all__ = ["InfiniumTracingProcessor"]

#: Span data type -> step action (absent: an aggregate).
_ACTIONS = {
    "response": LLM,
    "generation": LLM,
    "transcription": LLM,
    "speech": LLM,
    "function": TOOL,
    "handoff": "handoff",
    "guardrail": "guardrail",
}
#: What the error of a span of each action is called (the SDK records no type).
_ERROR_TYPES = {LLM: "ModelError", TOOL: "ToolError", "guardrail": "GuardrailError"}


def _span_error(error: Any, action: Optional[str]) -> Optional[Any]:
    """An ``ErrorDetail`` from a span's ``{"message", "data"}`` error record."""
    if not isinstance(error, dict):
        return None
    message = text(error.get("message")) or "error"
    detail = text(field_of(error.get("data"), "error"))
    return error_from(
        _ERROR_TYPES.get(action or "", "AgentError"),
        f"{message}: {detail}" if detail else message,
    )


class InfiniumTracingProcessor(Facade, TracingProcessor):  # type: ignore[misc]
    """An Agents SDK ``TracingProcessor`` that sends one Infinium trace per Agents trace.

    ``client`` is an ``InfiniumClient`` or ``AsyncInfiniumClient``; the trace is
    sent when the Agents trace ends (queued with ``background=True``; a blocking
    send from inside the run's event loop goes to a send thread, see
    :meth:`force_flush`). With ``capture_content=True`` model inputs and outputs,
    tool inputs and results are previewed (cut to the SDK's caps). Open traces
    are bounded by ``max_open_traces`` (the oldest dropped unsent, counted) and
    their spans by ``max_spans_per_trace``. A failure here never reaches the
    run: it is logged and counted (:meth:`stats`).
    """

    _core: _Core

    def __init__(
        self,
        client: Any,
        *,
        capture_content: bool = False,
        max_open_traces: int = MAX_OPEN_TRACES,
        max_spans_per_trace: int = MAX_SPANS_PER_TRACE,
    ) -> None:
        self._core = _Core(
            client,
            capture_content=capture_content,
            max_open_traces=max_open_traces,
            max_spans_per_trace=max_spans_per_trace,
            what="Agents SDK traces",
        )

    # -- TracingProcessor ----------------------------------------------------

    def on_trace_start(self, trace: Any) -> None:
        try:
            self._core.trace_start(trace)
        except Exception:
            self._core._callback_failed("on_trace_start")

    def on_trace_end(self, trace: Any) -> None:
        try:
            self._core.trace_end(trace)
        except Exception:
            self._core._callback_failed("on_trace_end")

    def on_span_start(self, span: Any) -> None:
        try:
            self._core.span_start(span)
        except Exception:
            self._core._callback_failed("on_span_start")

    def on_span_end(self, span: Any) -> None:
        try:
            self._core.span_end(span)
        except Exception:
            self._core._callback_failed("on_span_end")

    def shutdown(self) -> None:
        """Wait (up to ``FLUSH_TIMEOUT``) for sends in flight; open traces are dropped."""
        self._core.flush(FLUSH_TIMEOUT)

    def force_flush(self) -> None:
        """Wait for the sends in flight (up to ``FLUSH_TIMEOUT``)."""
        self._core.flush(FLUSH_TIMEOUT)


class _Core(AdapterBase):
    framework = "openai-agents"

    def _framework_version(self) -> Optional[str]:
        import agents

        return text(getattr(agents, "__version__", None))

    def trace_start(self, trace: Any) -> None:
        trace_id = trace.trace_id
        name = text(trace.name) or "Agent workflow"
        with self._lock:
            tree = self._new_tree(trace_id, name, f"{name} (OpenAI Agents SDK trace {trace_id})")
            tree.root = trace_id

    def span_start(self, span: Any) -> None:
        data = span.span_data
        kind = data.type
        action = _ACTIONS.get(kind)
        name = text(field_of(data, "name")) or kind
        with self._lock:
            tree = self._open.get(span.trace_id)
            if tree is None:  # a trace started before this processor was added
                self._stats["spans_dropped"] += 1
                return
            tree.add(span.span_id, span.parent_id, action, name)

    def span_end(self, span: Any) -> None:
        with self._lock:
            tree = self._open.get(span.trace_id)
            node = tree.nodes.get(span.span_id) if tree is not None else None
        if node is None:
            return
        node.end_ns = time.time_ns()
        data = span.span_data
        kind = data.type
        if kind == "response":
            self._response(node, data)
        elif node.action == LLM:
            self._generation(node, data)
        elif node.action == TOOL:
            if self.capture_content:
                node.input = args_preview(field_of(data, "input"), INPUT_MAX)
                node.output = preview(field_of(data, "output"), OUTPUT_MAX)
        elif kind == "handoff":
            source, target = text(data.from_agent), text(data.to_agent)
            node.name = f"{source or '?'} -> {target or '?'}"
            node.metadata = {"from_agent": source, "to_agent": target}
        elif kind == "guardrail":
            node.metadata = {"triggered": bool(data.triggered)}
        node.error = _span_error(span.error, node.action)

    def _response(self, node: Node, data: Any) -> None:
        response = data.response
        usage = field_of(response, "usage") or data.usage
        node.model = text(field_of(response, "model"))
        node.provider = "openai"
        node.prompt_tokens = as_int(field_of(usage, "input_tokens"))
        node.completion_tokens = as_int(field_of(usage, "output_tokens"))
        node.temperature = number(field_of(response, "temperature"))
        node.name = f"openai/{node.model or 'unknown'}"
        if self.capture_content:
            node.input = preview(data.input, INPUT_MAX)
            node.output = preview(field_of(response, "output"), OUTPUT_MAX)

    def _generation(self, node: Node, data: Any) -> None:
        usage = field_of(data, "usage")
        config = field_of(data, "model_config")
        node.model = text(field_of(data, "model"))
        # The Chat Completions model speaks OpenAI's API; LiteLLM names "provider/model".
        model = node.model or ""
        node.provider = model.split("/", 1)[0] if "/" in model else "openai"
        node.prompt_tokens = as_int(
            field_of(usage, "input_tokens") or field_of(usage, "prompt_tokens")
        )
        node.completion_tokens = as_int(
            field_of(usage, "output_tokens") or field_of(usage, "completion_tokens")
        )
        node.temperature = number(field_of(config, "temperature"))
        node.name = f"{node.provider or 'unknown'}/{node.model or 'unknown'}"
        if self.capture_content:
            node.input = preview(field_of(data, "input"), INPUT_MAX)
            node.output = preview(field_of(data, "output"), OUTPUT_MAX)

    def trace_end(self, trace: Any) -> None:
        with self._lock:
            tree = self._open.pop(trace.trace_id)
        if tree is None:
            return
        tree.end_ns = time.time_ns()
        _run_errors(tree)
        self._finish(tree)


def _run_errors(tree: RunTree) -> None:
    """The run's errors: those of aggregate spans (task, agent) not inside a step,
    each once (the task and its agent often carry the same one)."""
    seen = set()
    for node in sorted(tree.nodes.values(), key=lambda n: n.seq):
        error = node.error
        if error is None or node.action is not None:
            continue
        parent = tree.nodes.get(node.parent) if node.parent is not None else None
        inside_step = False
        for _ in range(len(tree.nodes)):  # bounded: a parent cycle cannot hang it
            if parent is None:
                break
            if parent.action is not None:
                inside_step = True
                break
            parent = tree.nodes.get(parent.parent) if parent.parent is not None else None
        key = (error.error_type, error.message)
        if not inside_step and key not in seen:
            seen.add(key)
            tree.errors.append(error)
