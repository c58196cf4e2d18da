"""The trace hook registry: objects told about every decorated call's trace
(``infinium.integrations.otel.InfiniumOTelExporter.install()`` registers one)."""

from __future__ import annotations

import logging
from typing import Any, List

from .._context import TraceContext
from ..types import TaskData

__all__ = ["add_trace_exporter", "exporters", "remove_trace_exporter", "run_exporters"]

logger = logging.getLogger("infinium.tracing")

#: The registered hooks, in registration order (mutated in place, never rebound:
#: the decorators test it for emptiness on every call).
exporters: List[Any] = []


def add_trace_exporter(exporter: Any) -> None:
    """Call ``exporter.export_trace(name, duration_s, ctx)`` after every decorated call."""
    if exporter not in exporters:
        exporters.append(exporter)


def remove_trace_exporter(exporter: Any) -> None:
    """Stop calling ``exporter`` (added with :func:`add_trace_exporter`); no-op if absent."""
    if exporter in exporters:
        exporters.remove(exporter)


def run_exporters(name: str, task_data: TaskData, ctx: TraceContext) -> None:
    """Tell every hook about ``task_data``; a hook that raises is logged and skipped."""
    for exporter in list(exporters):
        try:
            exporter.export_trace(name, task_data.duration, ctx)
        except Exception:
            logger.warning("Trace exporter %r failed for %s", exporter, name, exc_info=True)
