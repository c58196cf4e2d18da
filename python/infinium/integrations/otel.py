"""OpenTelemetry in both directions.

``InfiniumSpanProcessor`` turns OTel spans into Infinium traces: every span with the
OTel GenAI semantic conventions or OpenInference attributes (PydanticAI, Google ADK,
``opentelemetry-instrumentation-openai-v2``, every OpenInference instrumentor)
becomes a step, one trace per OTel trace::

    from infinium.integrations.otel import InfiniumSpanProcessor
    tracer_provider.add_span_processor(InfiniumSpanProcessor(client))

``InfiniumOTelExporter`` goes the other way: one span per Infinium trace, a child span
per LLM call, mirrored into an existing OTel pipeline::

    from infinium.integrations.otel import InfiniumOTelExporter
    InfiniumOTelExporter(service_name="my-agent").install()   # every decorated call

Neither imports OpenTelemetry at ``import infinium``; the exporter imports
``opentelemetry-api`` when it is created (warning once and doing nothing without it),
the processor reads spans by attribute and imports nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

from .._context import TraceContext
from ..types import ErrorDetail
from ._adapter import (
    FLUSH_TIMEOUT,
    MAX_OPEN_TRACES,
    MAX_SPANS_PER_TRACE,
    AdapterBase,
)
from ._runtree import (
    INPUT_MAX,
    LLM,
    OUTPUT_MAX,
    SUMMARY_MAX,
    TOOL,
    Node,
    RunTree,
    args_preview,
    as_int,
    error_from,
    number,
    preview,
    text,
)

__all__ = ["InfiniumOTelExporter", "InfiniumSpanProcessor"]

logger = logging.getLogger(__name__)


class InfiniumOTelExporter:
    """Emit OTel spans for Infinium traces.

    ``export_trace(name, duration_s, ctx)`` can be called directly; ``install()``
    makes every ``@trace_agent`` / ``@client.trace`` call export automatically.
    ``tracer_provider`` defaults to the global OTel provider.
    """

    def __init__(
        self,
        service_name: str = "infinium-agent",
        tracer_name: str = "infinium",
        tracer_provider: Any = None,
    ) -> None:
        self.service_name = service_name
        self.tracer_name = tracer_name
        self._tracer_provider = tracer_provider
        self._tracer: Any = None
        self._otel: Any = None
        try:
            from opentelemetry import trace as otel_trace
        except ImportError:
            logger.warning(
                "opentelemetry-api not installed; InfiniumOTelExporter will not emit spans. "
                "Install with: pip install opentelemetry-api opentelemetry-sdk"
            )
        else:
            self._otel = otel_trace

    @property
    def enabled(self) -> bool:
        return self._otel is not None

    def _get_tracer(self) -> Any:
        if self._tracer is None and self._otel is not None:
            self._tracer = self._otel.get_tracer(
                self.tracer_name, tracer_provider=self._tracer_provider
            )
        return self._tracer

    def install(self) -> InfiniumOTelExporter:
        """Export every decorated trace from now on (until :meth:`uninstall`)."""
        from ..tracing import add_trace_exporter

        add_trace_exporter(self)
        return self

    def uninstall(self) -> None:
        from ..tracing import remove_trace_exporter

        remove_trace_exporter(self)

    def export_trace(
        self,
        trace_name: str,
        duration_s: float,
        ctx: Optional[TraceContext] = None,
    ) -> None:
        """Create a span for the trace (ending now), with a child span per LLM call."""
        tracer = self._get_tracer()
        if tracer is None:
            return
        otel = self._otel
        end_ns = time.time_ns()
        start_ns = end_ns - int(duration_s * 1_000_000_000)
        root = tracer.start_span(trace_name, start_time=start_ns)
        try:
            root.set_attribute("infinium.service", self.service_name)
            root.set_attribute("infinium.duration_s", duration_s)
            if ctx is None:
                return
            calls = list(ctx.calls)
            prompts = list(ctx.prompts)
            root.set_attribute("infinium.llm_call_count", len(calls))
            root.set_attribute("infinium.prompt_fetch_count", len(prompts))
            parent = otel.set_span_in_context(root)
            total_prompt = 0
            total_completion = 0
            for i, call in enumerate(calls):
                call_start = call.start_time_ns or start_ns
                span = tracer.start_span(
                    f"llm.{call.provider}.{i}", context=parent, start_time=call_start
                )
                span.set_attribute("llm.provider", call.provider)
                span.set_attribute("llm.model", call.model)
                if call.prompt_tokens is not None:
                    span.set_attribute("llm.prompt_tokens", call.prompt_tokens)
                    total_prompt += call.prompt_tokens
                if call.completion_tokens is not None:
                    span.set_attribute("llm.completion_tokens", call.completion_tokens)
                    total_completion += call.completion_tokens
                if call.temperature is not None:
                    span.set_attribute("llm.temperature", call.temperature)
                if call.latency_ns is not None:
                    span.set_attribute("llm.latency_ms", call.latency_ns / 1_000_000)
                if call.error_type:
                    span.set_status(otel.Status(otel.StatusCode.ERROR, call.error_message or ""))
                    span.set_attribute("error.type", call.error_type)
                span.end(end_time=call_start + (call.latency_ns or 0))
            root.set_attribute("llm.total_prompt_tokens", total_prompt)
            root.set_attribute("llm.total_completion_tokens", total_completion)
            for pf in prompts:
                root.add_event(
                    "prompt_studio.fetch",
                    attributes={
                        "prompt.id": pf.prompt_id,
                        "prompt.name": pf.prompt_name,
                        "prompt.version": pf.version,
                    },
                )
        finally:
            root.end(end_time=end_ns)


# ---------------------------------------------------------------------------
# OTel spans -> Infinium traces
# ---------------------------------------------------------------------------

#: ``gen_ai.operation.name`` values that are model calls, tool executions, aggregates.
_GENAI_MODEL_OPS = frozenset(("chat", "text_completion", "generate_content", "embeddings"))
_GENAI_TOOL_OPS = frozenset(("execute_tool",))
#: ``openinference.span.kind`` -> step action (None: an aggregate).
_OPENINFERENCE_KINDS = {
    "LLM": LLM,
    "EMBEDDING": LLM,
    "TOOL": TOOL,
    "RETRIEVER": "retrieval",
    "RERANKER": "rerank",
    "GUARDRAIL": "guardrail",
    "AGENT": None,
    "CHAIN": None,
}
#: Content read with ``capture_content``, by convention: inputs, then outputs.
_INPUT_KEYS = ("gen_ai.input.messages", "input.value", "gen_ai.prompt")
_OUTPUT_KEYS = ("gen_ai.output.messages", "output.value", "gen_ai.completion", "final_result")
_TOOL_INPUT_KEYS = ("gen_ai.tool.call.arguments", "tool_arguments", "input.value")
_TOOL_OUTPUT_KEYS = ("gen_ai.tool.call.result", "tool_response", "output.value")
#: Spans started and not yet ended remembered per open trace (see _roots_cap).
_OPEN_SPANS_PER_TRACE = 100
#: JSON attributes longer than this are previewed as text, not parsed.
_PARSE_MAX = 65_536
_UNRECOGNISED = 0


def _first(attrs: Any, keys: Tuple[str, ...]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return value
    return None


def _content(value: Any, cap: int) -> Optional[str]:
    """A preview of a content attribute: JSON messages read as messages."""
    if isinstance(value, str) and len(value) <= _PARSE_MAX and value[:1] in ("[", "{"):
        try:
            return preview(json.loads(value), cap)
        except ValueError:
            pass
    return preview(value, cap)


def _short_type(value: Any) -> Optional[str]:
    """``InternalServerError`` from ``openai.InternalServerError`` or
    ``<class 'openai.InternalServerError'>``."""
    name = text(value)
    if name is None:
        return None
    if name.startswith("<class '") and name.endswith("'>"):
        name = name[8:-2]
    return name.rsplit(".", 1)[-1] or None


def _span_error(span: Any, attrs: Any) -> Optional[ErrorDetail]:
    """The error of a span whose status is ERROR (its exception event, if any)."""
    status = getattr(span, "status", None)
    code = getattr(getattr(status, "status_code", None), "name", None)
    if code != "ERROR":
        return None
    error_type = _short_type(attrs.get("error.type"))
    message = text(getattr(status, "description", None))
    event_message = stack = None
    for event in getattr(span, "events", None) or ():
        if getattr(event, "name", None) == "exception":
            ev = getattr(event, "attributes", None) or {}
            error_type = error_type or _short_type(ev.get("exception.type"))
            event_message = text(ev.get("exception.message"))
            stack = text(ev.get("exception.stacktrace"))
    # The SDK describes an exception that ends a span as "Type: message".
    if message and error_type and message.startswith(f"{error_type}: "):
        message = message[len(error_type) + 2 :]
    return error_from(error_type, message or event_message or "", stack)


def _classify(attrs: Any) -> Tuple[Optional[str], int]:
    """The step action of a span, and whether it follows a convention we read
    (1 GenAI, 2 OpenInference, 0 neither: the span only links its children)."""
    op = attrs.get("gen_ai.operation.name")
    if op is not None:
        if op in _GENAI_MODEL_OPS:
            return LLM, 1
        if op in _GENAI_TOOL_OPS:
            return TOOL, 1
        return None, 1  # invoke_agent, create_agent, ...: aggregates
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str):
        return _OPENINFERENCE_KINDS.get(kind.upper()), 2
    return None, _UNRECOGNISED


def _recognised(tree: RunTree) -> bool:
    """Whether any span of the trace follows the GenAI or OpenInference conventions."""
    return any(node.source is not None for node in tree.nodes.values())


class InfiniumSpanProcessor(AdapterBase):
    """An OpenTelemetry ``SpanProcessor`` that sends one Infinium trace per OTel trace.

    ``tracer_provider.add_span_processor(InfiniumSpanProcessor(client))``. Ended
    spans are buffered per trace (per local root: the span with no parent, or a
    remote one), at most ``max_spans_per_trace`` spans each and at most
    ``max_open_traces`` traces (past it the oldest is dropped unsent, with a
    counted warning); when the root span ends, the trace is built and sent
    through ``client`` (an ``InfiniumClient`` or ``AsyncInfiniumClient``). A trace
    with no GenAI / OpenInference span (an HTTP request, say) is not sent. Spans
    ending after their root are dropped, counted as ``late_spans``.

    Model calls (GenAI ``chat`` / ``text_completion`` / ``generate_content`` /
    ``embeddings``, OpenInference ``LLM`` / ``EMBEDDING``) become ``llm_inference``
    steps, tool executions (``execute_tool``, ``TOOL``) ``tool_use`` steps;
    ``invoke_agent`` / ``AGENT`` / ``CHAIN`` spans are aggregates. A model call
    recorded by two instrumentations (a framework's span over a provider client's)
    is one step. With ``capture_content=True`` the messages, tool arguments and
    results the spans carry are previewed.
    """

    #: Per trace: the instrumentation scope of its outermost GenAI / OpenInference span.
    framework = None

    def __init__(
        self,
        client: Any,
        *,
        capture_content: bool = False,
        max_open_traces: int = MAX_OPEN_TRACES,
        max_spans_per_trace: int = MAX_SPANS_PER_TRACE,
    ) -> None:
        super().__init__(
            client,
            capture_content=capture_content,
            max_open_traces=max_open_traces,
            max_spans_per_trace=max_spans_per_trace,
            what="OpenTelemetry traces",
        )
        self._stats["late_spans"] = 0
        self._stats["traces_skipped"] = 0
        #: Span id -> the span id of its local root (set when a span starts).
        self._roots: Dict[int, int] = {}
        #: Spans open at once (started, not ended) are few per trace: nesting depth
        #: times concurrency; past this bound the oldest mapping is forgotten.
        self._roots_cap = max_open_traces * _OPEN_SPANS_PER_TRACE
        #: Recently finished (trace id, local root), so a late span does not start
        #: a new trace.
        self._finished: OrderedDict[Tuple[int, int], None] = OrderedDict()

    # -- SpanProcessor -------------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        """Note which local root the span belongs to."""
        try:
            span_id = span.context.span_id
            parent = span.parent
            with self._lock:
                roots = self._roots
                if parent is None or parent.is_remote:
                    roots[span_id] = span_id
                else:
                    roots[span_id] = roots.get(parent.span_id, parent.span_id)
                if len(roots) > self._roots_cap:  # spans that never end
                    del roots[next(iter(roots))]
        except Exception:
            self._callback_failed("on_start")

    def _on_ending(self, span: Any) -> None:
        """Nothing to do (called by recent SDKs before ``on_end``)."""

    def on_end(self, span: Any) -> None:
        try:
            self._on_end(span)
        except Exception:
            self._callback_failed("on_end")

    def shutdown(self) -> None:
        """Wait (up to ``FLUSH_TIMEOUT``) for sends in flight; open traces are dropped."""
        self.flush(FLUSH_TIMEOUT)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush(timeout_millis / 1000)

    # -- spans -> nodes ------------------------------------------------------

    def _on_end(self, span: Any) -> None:
        context = span.context
        span_id = context.span_id
        parent = span.parent
        is_root = parent is None or bool(getattr(parent, "is_remote", False))
        parent_id = None if is_root else parent.span_id
        attrs = span.attributes or {}
        action, convention = _classify(attrs)
        start_ns = span.start_time
        finished: Optional[RunTree] = None
        with self._lock:
            # Buffered per local root: a trace id can hold several (a remote
            # parent's trace continued by many jobs here).
            root = self._roots.pop(span_id, None)
            if root is None:  # started before this processor was added
                root = span_id if is_root else parent.span_id
            key = (context.trace_id, root)
            tree = self._open.get(key)
            if tree is None:
                if key in self._finished:
                    self._stats["late_spans"] += 1
                    return
                # A root ending with nothing buffered is a trace of one span:
                # it need not (and must not evict another to) join the open ones.
                tree = self._new_tree(key, "", "", start_ns, register=not is_root)
            node = tree.add(span_id, parent_id, action, span.name or "span", start_ns)
            if node is not None:
                node.end_ns = span.end_time
                if convention:
                    scope = getattr(span, "instrumentation_scope", None)
                    node.source = (
                        text(getattr(scope, "name", None)),
                        text(getattr(scope, "version", None)),
                    )
                    self._fill(node, span, attrs, convention)
            if is_root:
                finished = self._open.pop(key) or tree
                self._finished[key] = None
                if len(self._finished) > self._open.cap:
                    self._finished.popitem(last=False)
                if not _recognised(finished):
                    self._stats["traces_skipped"] += 1
                    return
        if finished is not None:
            self._close(finished, span, attrs)

    def _fill(self, node: Node, span: Any, attrs: Any, convention: int) -> None:
        """Model, provider, tokens, tool name, previews and error of a known span."""
        capture = self.capture_content
        if node.action == LLM:
            if convention == 1:
                node.model = text(attrs.get("gen_ai.response.model")) or text(
                    attrs.get("gen_ai.request.model")
                )
                node.provider = text(attrs.get("gen_ai.provider.name")) or text(
                    attrs.get("gen_ai.system")
                )
                node.prompt_tokens = as_int(
                    _first(attrs, ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"))
                )
                node.completion_tokens = as_int(
                    _first(attrs, ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"))
                )
                node.temperature = number(attrs.get("gen_ai.request.temperature"))
            else:
                node.model = text(attrs.get("llm.model_name")) or text(
                    attrs.get("embedding.model_name")
                )
                node.provider = text(attrs.get("llm.provider")) or text(attrs.get("llm.system"))
                node.prompt_tokens = as_int(attrs.get("llm.token_count.prompt"))
                node.completion_tokens = as_int(attrs.get("llm.token_count.completion"))
            node.name = f"{node.provider or 'unknown'}/{node.model or 'unknown'}"
            if capture:
                node.input = _content(_first(attrs, _INPUT_KEYS), INPUT_MAX)
                node.output = _content(_first(attrs, _OUTPUT_KEYS), OUTPUT_MAX)
        elif node.action is not None:
            if node.action == TOOL:
                node.name = (
                    text(attrs.get("gen_ai.tool.name")) or text(attrs.get("tool.name")) or node.name
                )
            if capture:
                node.input = args_preview(_first(attrs, _TOOL_INPUT_KEYS), INPUT_MAX)
                node.output = _content(_first(attrs, _TOOL_OUTPUT_KEYS), OUTPUT_MAX)
        node.error = _span_error(span, attrs)

    def _close(
        self,
        tree: RunTree,
        root: Any,
        attrs: Any,
    ) -> None:
        """Name, timing, summaries and outcome from the root span; then send."""
        # What instrumented the outermost GenAI / OpenInference span (a framework
        # over the provider client it calls).
        first = min(
            (n for n in tree.nodes.values() if n.source is not None),
            key=lambda n: (n.start_ns, n.seq),
            default=None,
        )
        source = first.source if first is not None else None
        tree.framework, tree.framework_version = source or (None, None)
        tree.framework = tree.framework or "opentelemetry"
        tree.name = root.name or "trace"
        tree.description = (
            f"{root.name or 'trace'} (OpenTelemetry trace {root.context.trace_id:032x})"
        )
        if root.start_time:
            tree.start_ns = root.start_time
        tree.end_ns = root.end_time
        if self.capture_content:
            tree.input_summary = _content(_first(attrs, _INPUT_KEYS), SUMMARY_MAX)
            tree.output_summary = _content(_first(attrs, _OUTPUT_KEYS), SUMMARY_MAX)
        error = _span_error(root, attrs)
        if error is not None:
            tree.errors.append(error)
        self._finish(tree)
