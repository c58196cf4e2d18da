"""Anthropic adapter: ``messages.create``, sync and async.

Streams record input tokens from ``message_start``, output tokens from
``message_delta`` and the text of ``content_block_delta`` events.
The ``anthropic`` package is imported only by :meth:`AnthropicInstrumentor.instrument`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Tuple

from ._context import (
    INPUT_CONTENT_LIMIT,
    OUTPUT_CONTENT_LIMIT,
    Adapter,
    CapturedLlmCall,
    as_number,
    is_patched,
    make_wrapper,
    model_name,
    truncate_preview,
)

__all__ = ["AnthropicInstrumentor", "patch_anthropic_client", "patch_async_anthropic_client"]

logger = logging.getLogger(__name__)


def _input_preview(messages: Any, system: Any) -> Optional[str]:
    parts = []
    if system:
        parts.append(f"[system] {system}")
    if messages:
        try:
            for msg in list(messages)[-2:]:
                if isinstance(msg, dict):
                    parts.append(f"[{msg.get('role', '')}] {msg.get('content', '')}")
        except TypeError:
            pass
    return truncate_preview("\n".join(parts), INPUT_CONTENT_LIMIT) if parts else None


class AnthropicAdapter(Adapter):
    provider = "anthropic"

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        call = CapturedLlmCall(
            provider="anthropic",
            model=model_name(kwargs.get("model", "unknown")),
            temperature=as_number(kwargs.get("temperature")),
            input_preview=(
                _input_preview(kwargs.get("messages"), kwargs.get("system"))
                if self.capture_content
                else None
            ),
        )
        return call, kwargs.get("stream") is True

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        model = getattr(response, "model", None)
        if model:
            call.model = model_name(model)
        usage = getattr(response, "usage", None)
        if usage:
            call.prompt_tokens = getattr(usage, "input_tokens", None)
            call.completion_tokens = getattr(usage, "output_tokens", None)
        if self.capture_content:
            try:
                for block in response.content:
                    if hasattr(block, "text"):
                        call.output_preview = truncate_preview(block.text, OUTPUT_CONTENT_LIMIT)
                        break
            except (AttributeError, TypeError):
                pass

    def on_item(self, call: CapturedLlmCall, item: Any) -> None:
        kind = getattr(item, "type", "")
        if kind == "content_block_delta":
            parts = call._parts
            if parts is not None:
                text = getattr(getattr(item, "delta", None), "text", None)
                if text:
                    parts.append(text)
        elif kind == "message_start":
            message = getattr(item, "message", None)
            model = getattr(message, "model", None)
            if model:
                call.model = model_name(model)
            usage = getattr(message, "usage", None)
            if usage is not None:
                call.prompt_tokens = getattr(usage, "input_tokens", None)
        elif kind == "message_delta":
            usage = getattr(item, "usage", None)
            if usage is not None:
                call.completion_tokens = getattr(usage, "output_tokens", None)


def _patch_instance(client: Any, capture_content: bool, is_async: bool) -> Any:
    messages = getattr(client, "messages", None)
    if messages is None:
        return client
    original = messages.create
    if not is_patched(original):
        messages.create = make_wrapper(
            original, AnthropicAdapter(capture_content), is_async=is_async
        )
    return client


def patch_anthropic_client(client: Any, capture_content: bool = False) -> Any:
    """Patch one ``Anthropic`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, is_async=False)


def patch_async_anthropic_client(client: Any, capture_content: bool = False) -> Any:
    """Patch one ``AsyncAnthropic`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, is_async=True)


class AnthropicInstrumentor:
    """Patch ``Messages.create`` / ``AsyncMessages.create`` for every client."""

    _original_sync_create: Optional[Callable[..., Any]] = None
    _original_async_create: Optional[Callable[..., Any]] = None

    def __init__(self, capture_content: bool = False) -> None:
        self.capture_content = capture_content

    def instrument(self) -> None:
        try:
            from anthropic.resources.messages import AsyncMessages, Messages
        except ImportError:
            logger.warning("anthropic package not installed; AnthropicInstrumentor is a no-op")
            return
        cls = AnthropicInstrumentor
        adapter = AnthropicAdapter(self.capture_content)
        if cls._original_sync_create is None:
            cls._original_sync_create = Messages.create
        if cls._original_async_create is None:
            cls._original_async_create = AsyncMessages.create
        sync_wrapper = make_wrapper(cls._original_sync_create, adapter, is_async=False, method=True)
        async_wrapper = make_wrapper(
            cls._original_async_create, adapter, is_async=True, method=True
        )
        setattr(Messages, "create", sync_wrapper)  # noqa: B010
        setattr(AsyncMessages, "create", async_wrapper)  # noqa: B010

    def uninstrument(self) -> None:
        try:
            from anthropic.resources.messages import AsyncMessages, Messages
        except ImportError:
            return
        cls = AnthropicInstrumentor
        if cls._original_sync_create is not None:
            setattr(Messages, "create", cls._original_sync_create)  # noqa: B010
            cls._original_sync_create = None
        if cls._original_async_create is not None:
            setattr(AsyncMessages, "create", cls._original_async_create)  # noqa: B010
            cls._original_async_create = None
