"""Infinium agent-tracing SDK, with a Rust core.

A drop-in for ``infinium-o2`` 1.2.0: the same names, arguments, errors and
wire bytes, with validation, serialisation, HTTP, rate limiting and batch
sending in Rust.
"""

from __future__ import annotations

import atexit as _atexit

from . import _core
from . import async_client as async_client  # an attribute after `import infinium`, as the anchor's
from ._internal.coexist import warn_if_anchor_beside as _warn_if_anchor_beside
from .client import AsyncInfiniumClient, InfiniumClient
from .exceptions import (
    AuthenticationError,
    BatchError,
    ConfigurationError,
    InfiniumError,
    InfiniumTimeoutError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from .integrations import (
    AnthropicInstrumentor,
    GoogleInstrumentor,
    OpenAIInstrumentor,
    watch,
)
from .tracing import StepContext, TraceBuilder, async_trace_agent, trace_agent
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
    MAX_PAYLOAD_SIZE,
    MAX_STRING_LENGTH,
    coerce_section,
    get_current_iso_datetime,
    setup_logging,
    validate_duration,
    validate_iso_datetime,
    validate_path_id,
    validate_payload_size,
    validate_string_length,
)

__version__ = "1.2.0"
"""The infinium-o2 release whose API this package reproduces; also the wire's
``environment.sdk_version``, so it stays the anchor's value."""
__distribution_version__: str = _core.__version__
"""The installed ``infinium-rs`` version (``infinium --version``)."""
__author__ = "Infinium"
__email__ = "support@infinium.com"
__description__ = "Infinium agent-tracing SDK with a Rust core"

dumps = _core.dumps
"""``dumps(task_data) -> bytes``: the exact body a client would send for it
(validated; raises ``ValidationError`` naming the offending path)."""

# One directory listing: warn when infinium-o2 is installed beside this package.
_warn_if_anchor_beside(__file__)

# Background work must not call into Python once the interpreter shuts down.
_atexit.register(_core._shutdown)

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PAYLOAD_SIZE",
    "MAX_STRING_LENGTH",
    "AnthropicInstrumentor",
    "ApiResponse",
    "AsyncInfiniumClient",
    "AuthenticationError",
    "BatchError",
    "BatchResult",
    "ConfigurationError",
    "Content",
    "Customer",
    "Development",
    "EnvironmentContext",
    "ErrorDetail",
    "ExecutionStep",
    "Executive",
    "ExpectedOutcome",
    "General",
    "GoogleInstrumentor",
    "InfiniumClient",
    "InfiniumError",
    "InfiniumTimeoutError",
    "LlmCall",
    "LlmUsage",
    "Marketing",
    "NetworkError",
    "NotFoundError",
    "OpenAIInstrumentor",
    "Project",
    "PromptContent",
    "RateLimitError",
    "Research",
    "Sales",
    "ServerError",
    "StepContext",
    "Support",
    "TaskData",
    "TimeTracking",
    "TimeoutError",
    "ToolCall",
    "TraceBuilder",
    "ValidationError",
    "async_trace_agent",
    "coerce_section",
    "dumps",
    "get_current_iso_datetime",
    "setup_logging",
    "trace_agent",
    "validate_duration",
    "validate_iso_datetime",
    "validate_path_id",
    "validate_payload_size",
    "validate_string_length",
    "watch",
]
