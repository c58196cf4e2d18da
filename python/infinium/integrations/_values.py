"""Small value helpers of the provider adapters: preview truncation and the checks
applied to every value a provider package hands back before it is recorded."""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "INPUT_CONTENT_LIMIT",
    "OUTPUT_CONTENT_LIMIT",
    "as_int",
    "as_number",
    "model_name",
    "truncate_preview",
]

# Input previews stay short (the judge renders ~100 chars of a step input);
# output previews match the 1500-char cap of a step output preview.
INPUT_CONTENT_LIMIT = 500
OUTPUT_CONTENT_LIMIT = 1500


def truncate_preview(text: Optional[str], limit: int) -> Optional[str]:
    """Preview truncation of infinium-o2's adapters: ``limit`` chars plus ``...``."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    return text[:limit] + "..." if len(text) > limit else text


def as_number(value: Any) -> Optional[float]:
    """A temperature as given, or None for sentinels (``NOT_GIVEN``) and non-numbers."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def as_int(value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def model_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "unknown"
    return str(value)
