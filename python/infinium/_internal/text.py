"""The caps on captured text and the one rule that cuts text to a cap.

The caps are infinium-o2's: what the platform's judge renders per field.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "DECORATOR_INPUT_SUMMARY_MAX",
    "DECORATOR_OUTPUT_SUMMARY_MAX",
    "STACK_TRACE_MAX",
    "STEP_INPUT_PREVIEW_MAX",
    "STEP_OUTPUT_PREVIEW_MAX",
    "TOOL_INPUT_SUMMARY_MAX",
    "TOOL_OUTPUT_SUMMARY_MAX",
    "truncate",
]

STEP_INPUT_PREVIEW_MAX = 500
STEP_OUTPUT_PREVIEW_MAX = 1500
TOOL_INPUT_SUMMARY_MAX = 300
TOOL_OUTPUT_SUMMARY_MAX = 1500
DECORATOR_INPUT_SUMMARY_MAX = 3000
DECORATOR_OUTPUT_SUMMARY_MAX = 8000
STACK_TRACE_MAX = 1000


def truncate(text: str, limit: int, suffix: str = "...", keep: Optional[int] = None) -> str:
    """``text`` when it has at most ``limit`` characters; otherwise its first
    ``keep`` characters followed by ``suffix``.

    ``keep`` defaults to ``limit - len(suffix)``, so the result fits ``limit``
    (the cut of the tracing caps and ``utils.truncate_string``). The provider
    adapters' previews keep ``keep=limit`` characters and add the suffix beyond
    the limit, as infinium-o2's do.
    """
    if len(text) <= limit:
        return text
    return text[: limit - len(suffix) if keep is None else keep] + suffix
