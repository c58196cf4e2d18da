"""Validation helpers, constants and small utilities (the anchor SDK's
``infinium.utils``).

The hot path (validating and serialising a whole trace) is in Rust; these
functions are the same checks for callers that use them directly, with the
same messages.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import re
import threading
import time
from dataclasses import fields, is_dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple, Type, Union, cast

from . import _core
from .exceptions import ValidationError

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PAYLOAD_SIZE",
    "MAX_STRING_LENGTH",
    "RateLimiter",
    "ValidationError",
    "coerce_section",
    "dataclass_to_dict",
    "exponential_backoff",
    "get_current_iso_datetime",
    "logger",
    "merge_dicts",
    "retry_with_backoff",
    "safe_json_loads",
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

logger = logging.getLogger(__name__)
"""The ``infinium.utils`` logger (``setup_logging`` configures it)."""

# The limits are the Rust core's (one definition, shared with the serialiser).
MAX_NAME_LENGTH: int = _core.MAX_NAME_LENGTH
"""Longest trace ``name``, in characters."""
MAX_DESCRIPTION_LENGTH: int = _core.MAX_DESCRIPTION_LENGTH
"""Longest trace ``description``, in characters."""
MAX_STRING_LENGTH: int = _core.MAX_STRING_LENGTH
"""Longest other checked string (a Prompt Studio ``prompt_key``), in characters."""
MAX_PAYLOAD_SIZE: int = _core.MAX_PAYLOAD_SIZE
"""Largest request body, in bytes of the compact UTF-8 JSON actually sent."""

_UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE
)


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
    return cast(str, _core.validate_string_length(value, field_name, max_length))


def validate_payload_size(payload: Any) -> None:
    """Raise when ``payload`` (bytes, a trace or a JSON value) serialises over 1 MiB."""
    _core.validate_payload_size(payload)


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
    """True when ``datetime_str`` is ISO 8601 (a ``Z`` suffix allowed), year 1900-2100:
    what this Python's ``datetime.fromisoformat`` reads (decided in Rust)."""
    return _core.validate_iso_datetime(datetime_str)


def validate_duration(duration: Union[int, float]) -> float:
    """Return ``float(duration)`` if in [0, 86400], else raise ``ValidationError``."""
    return _core.validate_duration(duration)


def validate_required_field(value: Any, field_name: str) -> None:
    """Raise when ``value`` is None or a blank string."""
    _core.validate_required_field(value, field_name)


# The real class, kept where freezegun does not look: while a clock is frozen
# it rebinds every module attribute that *is* the real ``datetime`` (this
# module's ``datetime`` included), but not the items of a tuple.
_REAL_DATETIME = (datetime,)
_rust_iso_now = _core.iso_now


def get_current_iso_datetime() -> str:
    """Now, UTC, ISO 8601 with microseconds and a ``Z``: ``2026-11-22T04:06:00.123456Z``
    (always six digits, also on a whole second), stamped in Rust.

    Every timestamp the SDK makes comes from here (every decorated call makes
    one). Under a patched clock (freezegun, ``mock.patch("infinium.utils.datetime")``)
    it is asked as the anchor asks it, ``datetime.now(timezone.utc).isoformat()``
    with a ``Z``: tests that freeze the clock see the anchor's exact text (no
    fraction on a whole second).
    """
    if datetime is _REAL_DATETIME[0]:
        return _rust_iso_now()
    return str(datetime.now(timezone.utc).isoformat()).replace("+00:00", "Z")


def truncate_string(text: str, max_length: int = 1000, suffix: str = "...") -> str:
    """Cut ``text`` to ``max_length`` characters, ending in ``suffix`` when cut."""
    if len(text) <= max_length:
        return text
    return text[: max_length - len(suffix)] + suffix


def setup_logging(level: str = "INFO", format_string: Optional[str] = None) -> None:
    """Configure root logging (as the anchor's helper does)."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format=(
            "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
            if format_string is None
            else format_string
        ),
        datefmt="%Y-%m-%d %H:%M:%S",
    )


_FIELD_NAMES: Dict[type, frozenset[str]] = {}


def coerce_section(value: Any, dataclass_type: type) -> Any:
    """Turn a dict into ``dataclass_type``: known keys to the constructor, the
    rest into ``metadata`` when the type has one. Anything else is returned
    unchanged (also when the constructor rejects the keys)."""
    if value is None or is_dataclass(value) or not isinstance(value, dict):
        return value
    known = _FIELD_NAMES.get(dataclass_type) if isinstance(dataclass_type, type) else None
    if known is None:
        known = frozenset(f.name for f in fields(dataclass_type))
        if isinstance(dataclass_type, type):
            _FIELD_NAMES[dataclass_type] = known
    kwargs = {k: v for k, v in value.items() if k in known}
    extras = {k: v for k, v in value.items() if k not in known}
    if extras and "metadata" in known:
        kwargs["metadata"] = extras
    try:
        return dataclass_type(**kwargs)
    except TypeError:
        return value


# --- helpers the anchor's ``infinium.utils`` also offers ----------------------
# The clients do not use them (retries, backoff, the limiter and serialisation
# are in Rust); they are here so code that imports them keeps working.


def dataclass_to_dict(obj: Any) -> Dict[str, Any]:
    """A dataclass as a dict without its ``None`` fields, recursively.

    Nested dataclasses that come out empty are left out; so are ``None`` items
    and empty dataclass items of a list or tuple field (which becomes a list,
    left out when nothing remains). Other values, dicts included, are kept as
    they are. A dict is returned unchanged, anything else as ``{}``.
    """
    if obj is None:
        return {}
    if not is_dataclass(obj):
        return obj if isinstance(obj, dict) else {}
    out: Dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if is_dataclass(value):
            nested = dataclass_to_dict(value)
            if nested:
                out[f.name] = nested
        elif isinstance(value, (list, tuple)):
            items = []
            for item in value:
                if is_dataclass(item):
                    item = dataclass_to_dict(item)
                    if not item:
                        continue
                elif item is None:
                    continue
                items.append(item)
            if items:
                out[f.name] = items
        else:
            out[f.name] = value
    return out


def exponential_backoff(
    attempt: int, base_delay: float = 1.0, max_delay: float = 60.0, jitter: bool = True
) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``base_delay * 2**attempt``
    capped at ``max_delay``, with +-25 % random jitter unless ``jitter`` is false;
    never negative."""
    # The anchor's arithmetic, so ints stay ints and a huge ``2**attempt`` is
    # capped rather than overflowing a float.
    delay: float = min(base_delay * (2**attempt), max_delay)
    if jitter:
        spread = delay * 0.25
        delay += random.uniform(-spread, spread)
    return max(0, delay)


async def retry_with_backoff(
    func: Callable[[], Any],
    max_retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    exceptions: Tuple[Type[BaseException], ...] = (Exception,),
) -> Any:
    """Call ``func`` (awaited when it is a coroutine function) until it succeeds,
    at most ``max_retries`` extra times, sleeping ``exponential_backoff`` between
    attempts; only ``exceptions`` are retried. Raises the last one."""
    is_async = inspect.iscoroutinefunction(func)
    last: Optional[BaseException] = None
    for attempt in range(max_retries + 1):
        try:
            if is_async:
                return await cast(Callable[[], Awaitable[Any]], func)()
            return func()
        except exceptions as exc:
            last = exc
            if attempt == max_retries:
                break
            delay = exponential_backoff(attempt, base_delay, max_delay)
            logger.debug(
                "Retry attempt %d/%d failed: %s. Retrying in %.2fs",
                attempt + 1,
                max_retries,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
    if last is None:
        raise ValueError("max_retries must be at least 0")
    raise last


def safe_json_loads(json_str: Union[str, Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A JSON object as a dict: a dict is returned as is; a string is parsed
    (``None`` when blank, over 1 MiB, invalid, or not an object); anything else
    is ``None``."""
    if isinstance(json_str, dict):
        return json_str
    if not isinstance(json_str, str):
        return None
    text = json_str.strip()
    if not text:
        return None
    if len(text) > MAX_PAYLOAD_SIZE:
        logger.warning("JSON string exceeds 1MB limit, skipping parse")
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def merge_dicts(*dicts: Dict[str, Any]) -> Dict[str, Any]:
    """One dict from several, later keys winning; ``None`` values and arguments
    that are not dicts are skipped."""
    merged: Dict[str, Any] = {}
    for d in dicts:
        if isinstance(d, dict):
            merged.update((k, v) for k, v in d.items() if v is not None)
    return merged


class RateLimiter:
    """A token bucket: ``burst_size`` requests at once, then
    ``requests_per_second``.

    Each caller reserves its own slot under the lock and then sleeps until
    it, so callers that wait together are released one interval apart (the
    anchor's limiter lets every waiting caller through at the same moment).
    The SDK's clients use the limiter in the Rust core; this class is for
    code that uses the anchor's ``infinium.utils.RateLimiter`` directly.
    """

    def __init__(self, requests_per_second: float = 10.0, burst_size: int = 20) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if burst_size <= 0:
            raise ValueError("burst_size must be positive")
        self.requests_per_second = requests_per_second
        self.burst_size = burst_size
        #: Tokens available; below zero when callers are queued for future slots.
        self.tokens: float = burst_size
        self.last_update = time.monotonic()
        self._sync_lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token (perhaps one not refilled yet); return the wait in seconds."""
        with self._sync_lock:
            now = time.monotonic()
            self.tokens = min(
                float(self.burst_size),
                self.tokens + (now - self.last_update) * self.requests_per_second,
            )
            self.last_update = now
            self.tokens -= 1
            return 0.0 if self.tokens >= 0 else -self.tokens / self.requests_per_second

    def acquire_sync(self) -> None:
        """Take a token, sleeping until one is due."""
        wait = self._reserve()
        if wait > 0:
            time.sleep(wait)

    async def acquire(self) -> None:
        """Take a token, awaiting (without blocking the event loop) until one is due."""
        wait = self._reserve()
        if wait > 0:
            await asyncio.sleep(wait)
