"""``infinium.async_client``: where the anchor SDK defines ``AsyncInfiniumClient``.

Both clients live in :mod:`infinium.client`; this module gives code written
for the anchor its import path, with the other names the anchor's module
offers (it imported them).
"""

from __future__ import annotations

from ._context import CapturedPromptFetch, get_current_trace_context
from .client import AsyncInfiniumClient
from .exceptions import (
    AuthenticationError,
    BatchError,
    InfiniumError,
    InfiniumTimeoutError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from .tracing import async_trace_agent, trace_agent
from .types import (
    ApiResponse,
    BatchResult,
    Content,
    Customer,
    Development,
    EnvironmentContext,
    ErrorDetail,
    ExecutionStep,
    Executive,
    ExpectedOutcome,
    General,
    LlmCall,
    LlmUsage,
    Marketing,
    Project,
    PromptContent,
    Research,
    Sales,
    Support,
    TaskData,
    TimeTracking,
    ToolCall,
)
from .utils import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_STRING_LENGTH,
    RateLimiter,
    coerce_section,
    dataclass_to_dict,
    get_current_iso_datetime,
    merge_dicts,
    retry_with_backoff,
    safe_json_loads,
    validate_agent_credentials,
    validate_duration,
    validate_iso_datetime,
    validate_path_id,
    validate_payload_size,
    validate_required_field,
    validate_string_length,
)

__all__ = [
    "AsyncInfiniumClient",
    # types
    "ApiResponse",
    "BatchResult",
    "Content",
    "Customer",
    "Development",
    "EnvironmentContext",
    "ErrorDetail",
    "ExecutionStep",
    "Executive",
    "ExpectedOutcome",
    "General",
    "LlmCall",
    "LlmUsage",
    "Marketing",
    "Project",
    "PromptContent",
    "Research",
    "Sales",
    "Support",
    "TaskData",
    "TimeTracking",
    "ToolCall",
    # exceptions
    "AuthenticationError",
    "BatchError",
    "InfiniumError",
    "InfiniumTimeoutError",
    "NetworkError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
    # utilities
    "MAX_DESCRIPTION_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_STRING_LENGTH",
    "RateLimiter",
    "coerce_section",
    "dataclass_to_dict",
    "get_current_iso_datetime",
    "merge_dicts",
    "retry_with_backoff",
    "safe_json_loads",
    "validate_agent_credentials",
    "validate_duration",
    "validate_iso_datetime",
    "validate_path_id",
    "validate_payload_size",
    "validate_required_field",
    "validate_string_length",
    # tracing
    "CapturedPromptFetch",
    "async_trace_agent",
    "get_current_trace_context",
    "trace_agent",
]
