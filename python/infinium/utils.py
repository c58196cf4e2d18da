"""Validation helpers and constants (the anchor SDK's public utilities).

The hot path (validating and serialising a whole trace) is in Rust; these
functions are the same checks for callers that use them directly, with the
same messages.
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any, Dict, Optional, Union

from . import _core
from .exceptions import ValidationError

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PAYLOAD_SIZE",
    "MAX_STRING_LENGTH",
    "coerce_section",
    "get_current_iso_datetime",
    "setup_logging",
    "truncate_string",
    "validate_agent_credentials",
    "validate_duration",
    "validate_iso_datetime",
    "validate_path_id",
    "validate_payload_size",
    "validate_required_field",
    "validate_string_length",
]

MAX_NAME_LENGTH = 500
MAX_DESCRIPTION_LENGTH = 10_000
MAX_STRING_LENGTH = 2_000
MAX_PAYLOAD_SIZE = 1_048_576

_UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE
)
_MAX_DURATION = 86_400


def validate_path_id(value: str, field_name: str) -> str:
    """Check an id that goes into a URL path (a UUID); return it stripped."""
    if not value or not isinstance(value, str):
        raise ValidationError(f"{field_name} is required", field=field_name)
    value = value.strip()
    if ".." in value or "/" in value or "\\" in value:
        raise ValidationError(f"{field_name} contains invalid characters", field=field_name)
    if _UUID_RE.match(value) is None:
        raise ValidationError(f"{field_name} must be a valid UUID format", field=field_name)
    return value


def validate_string_length(value: str, field_name: str, max_length: int) -> str:
    """Raise when ``value`` is a str longer than ``max_length`` characters."""
    if isinstance(value, str) and len(value) > max_length:
        raise ValidationError(
            f"{field_name} exceeds maximum length of {max_length} characters", field=field_name
        )
    return value


def validate_payload_size(payload: Any) -> None:
    """Raise when ``payload`` (bytes, a trace or a JSON value) serialises over 1 MiB."""
    from . import _core

    if isinstance(payload, (bytes, bytearray, memoryview)):
        size = len(payload)
    else:
        size = len(_core.dumps_value(payload))
    if size > MAX_PAYLOAD_SIZE:
        raise ValidationError(f"Payload exceeds maximum size of {MAX_PAYLOAD_SIZE} bytes")


def validate_agent_credentials(agent_id: Optional[str], agent_secret: Optional[str]) -> None:
    """The constructor's credential checks."""
    for field, value in (("agent_id", agent_id), ("agent_secret", agent_secret)):
        if not value or not isinstance(value, str) or not value.strip():
            raise ValidationError(
                f"{field} is required and must be a non-empty string", field=field
            )
    assert agent_id is not None and agent_secret is not None
    if len(agent_id.strip()) < 3:
        raise ValidationError("agent_id must be at least 3 characters long", field="agent_id")
    if len(agent_secret.strip()) < 8:
        raise ValidationError(
            "agent_secret must be at least 8 characters long", field="agent_secret"
        )


def validate_iso_datetime(datetime_str: str) -> bool:
    """True when ``datetime_str`` is ISO 8601 (a ``Z`` suffix allowed), year 1900-2100."""
    if not isinstance(datetime_str, str) or not datetime_str.strip():
        return False
    try:
        parsed = datetime.fromisoformat(datetime_str.strip().replace("Z", "+00:00"))
    except (ValueError, TypeError, OverflowError):
        return False
    return 1900 <= parsed.year <= 2100


def validate_duration(duration: Union[int, float]) -> float:
    """Return ``duration`` as a float in [0, 86400] or raise ``ValidationError``."""
    try:
        value = float(duration)
    except (TypeError, ValueError):
        raise ValidationError("duration must be a number", field="duration") from None
    if value != value:
        raise ValidationError("duration cannot be NaN", field="duration")
    if value == float("inf"):
        raise ValidationError("duration cannot be infinite", field="duration")
    if value < 0:
        raise ValidationError("duration must be non-negative", field="duration")
    if value > _MAX_DURATION:
        raise ValidationError(
            f"duration cannot exceed {_MAX_DURATION} seconds (24 hours)", field="duration"
        )
    return value


def validate_required_field(value: Any, field_name: str) -> None:
    """Raise when ``value`` is None or a blank string."""
    if value is None:
        raise ValidationError(f"{field_name} is required", field=field_name)
    if isinstance(value, str) and not value.strip():
        raise ValidationError(f"{field_name} cannot be empty", field=field_name)


def get_current_iso_datetime() -> str:
    """Now, UTC, ISO 8601 with microseconds and a ``Z``: ``2026-11-22T04:06:00.123456Z``
    (always six digits, also on a whole second)."""
    return _core.iso_now()


def truncate_string(text: str, max_length: int = 1000, suffix: str = "...") -> str:
    """Cut ``text`` to ``max_length`` characters, ending in ``suffix`` when cut."""
    if len(text) <= max_length:
        return text
    return text[: max_length - len(suffix)] + suffix


def setup_logging(level: str = "INFO", format_string: Optional[str] = None) -> None:
    """Configure root logging (as the anchor's helper does)."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format=format_string or "%(asctime)s - %(name)s - %(levelname)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


_FIELD_NAMES: Dict[type, frozenset[str]] = {}


def coerce_section(value: Any, dataclass_type: type) -> Any:
    """Turn a dict into ``dataclass_type``: known keys to the constructor, the
    rest into ``metadata`` when the type has one. Anything else is returned
    unchanged (also when the constructor rejects the keys)."""
    if value is None or is_dataclass(value) or not isinstance(value, dict):
        return value
    known = _FIELD_NAMES.get(dataclass_type)
    if known is None:
        known = _FIELD_NAMES[dataclass_type] = frozenset(f.name for f in fields(dataclass_type))
    kwargs = {k: v for k, v in value.items() if k in known}
    extras = {k: v for k, v in value.items() if k not in known}
    if extras and "metadata" in known:
        kwargs["metadata"] = extras
    try:
        return dataclass_type(**kwargs)
    except TypeError:
        return value
