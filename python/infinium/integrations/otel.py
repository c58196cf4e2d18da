"""Optional OpenTelemetry bridge: one span per trace, a child span per LLM call.

Active only when ``opentelemetry-api`` is installed (imported when an exporter is
created, never by ``import infinium``); otherwise the exporter warns once and does
nothing. Infinium keeps its own ``contextvars`` scope; this only mirrors finished
traces into an existing OTel pipeline::

    from infinium.integrations.otel import InfiniumOTelExporter
    InfiniumOTelExporter(service_name="my-agent").install()   # every decorated call
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from .._context import TraceContext

__all__ = ["InfiniumOTelExporter"]

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
