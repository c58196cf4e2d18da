"""Exception hierarchy of the Infinium SDK.

The classes, their constructor signatures and attributes are those of the
published ``infinium-o2`` SDK, so ``except``/``isinstance`` code written for it
keeps working. Every error raised by the Rust core is mapped onto one of these
classes in a single place (``src/error.rs``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

__all__ = [
    "AuthenticationError",
    "BatchError",
    "ConfigurationError",
    "InfiniumError",
    "InfiniumTimeoutError",
    "NetworkError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "TimeoutError",
    "ValidationError",
]


class InfiniumError(Exception):
    """Base class of every error the SDK raises."""

    def __init__(
        self,
        message: str,
        status_code: Optional[int] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.details: Dict[str, Any] = details or {}


class AuthenticationError(InfiniumError):
    """The server answered 401: wrong or missing credentials."""

    def __init__(
        self,
        message: str = "Authentication failed",
        status_code: Optional[int] = 401,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, status_code, details)


class ValidationError(InfiniumError):
    """Input rejected before anything was sent; ``field`` names the culprit."""

    def __init__(
        self,
        message: str,
        field: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, None, details)
        self.field = field


class RateLimitError(InfiniumError):
    """The server answered 429; ``retry_after`` is its ``Retry-After`` in seconds."""

    def __init__(
        self,
        message: str = "Rate limit exceeded",
        retry_after: Optional[int] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, 429, details)
        self.retry_after = retry_after


class NetworkError(InfiniumError):
    """The request could not be completed (connection refused, reset, DNS...)."""

    def __init__(
        self,
        message: str,
        original_error: Optional[BaseException] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, None, details)
        self.original_error = original_error


class InfiniumTimeoutError(NetworkError):
    """The request (or a wait such as ``wait_for_interpretation``) timed out."""

    def __init__(
        self,
        message: str = "Request timed out",
        timeout_duration: Optional[float] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, None, details)
        self.timeout_duration = timeout_duration


#: Backwards-compatible alias (shadows the builtin only when imported by name).
TimeoutError = InfiniumTimeoutError


class ServerError(InfiniumError):
    """The server answered 5xx (after the configured retries)."""

    def __init__(
        self,
        message: str = "Server error",
        status_code: Optional[int] = 500,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, status_code, details)


class NotFoundError(InfiniumError):
    """The server answered 404."""

    def __init__(
        self,
        message: str = "Resource not found",
        resource_type: Optional[str] = None,
        resource_id: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, 404, details)
        self.resource_type = resource_type
        self.resource_id = resource_id


class BatchError(InfiniumError):
    """A batch was stopped (``fail_fast``); the counts are those at that moment."""

    def __init__(
        self,
        message: str,
        successful_count: int = 0,
        failed_count: int = 0,
        errors: Optional[List[str]] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, None, details)
        self.successful_count = successful_count
        self.failed_count = failed_count
        self.errors: List[str] = errors or []


class ConfigurationError(InfiniumError):
    """The SDK was configured with an invalid option."""

    def __init__(
        self,
        message: str,
        config_key: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, None, details)
        self.config_key = config_key
