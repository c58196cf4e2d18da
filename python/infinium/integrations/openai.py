"""OpenAI / xAI (Grok) adapter: ``chat.completions.create``, sync and async.

Streams (``stream=True``) are wrapped transparently; token usage comes from the
final chunk sent with ``stream_options={"include_usage": True}``.
The ``openai`` package is imported only by :meth:`OpenAIInstrumentor.instrument`.
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

__all__ = ["OpenAIInstrumentor", "patch_async_openai_client", "patch_openai_client"]

logger = logging.getLogger(__name__)


def detect_provider(client: Any) -> str:
    """``xai`` when the client's base URL mentions x.ai / grok / xai, else ``openai``."""
    try:
        base = str(getattr(client, "base_url", ""))
    except Exception:
        return "openai"
    if "x.ai" in base or "grok" in base or "xai" in base:
        return "xai"
    return "openai"


def _input_preview(messages: Any) -> Optional[str]:
    if not messages:
        return None
    parts = []
    try:
        for msg in messages:
            if isinstance(msg, dict) and msg.get("role", "") in ("system", "user"):
                parts.append(f"[{msg.get('role', '')}] {msg.get('content', '')}")
    except TypeError:
        return None
    return truncate_preview("\n".join(parts[-2:]), INPUT_CONTENT_LIMIT) if parts else None


class OpenAIAdapter(Adapter):
    def __init__(self, capture_content: bool, provider: Optional[str]) -> None:
        super().__init__(capture_content)
        # None: detect per call from the resource's client (class-level patching).
        self.fixed_provider = provider

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        provider = self.fixed_provider
        if provider is None:
            provider = detect_provider(getattr(owner, "_client", None))
        call = CapturedLlmCall(
            provider=provider,
            model=model_name(kwargs.get("model", "unknown")),
            temperature=as_number(kwargs.get("temperature")),
            input_preview=(
                _input_preview(kwargs.get("messages")) if self.capture_content else None
            ),
        )
        return call, kwargs.get("stream") is True

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        model = getattr(response, "model", None)
        if model:
            call.model = model_name(model)
        usage = getattr(response, "usage", None)
        if usage:
            call.prompt_tokens = getattr(usage, "prompt_tokens", None)
            call.completion_tokens = getattr(usage, "completion_tokens", None)
        if self.capture_content:
            try:
                call.output_preview = truncate_preview(
                    response.choices[0].message.content, OUTPUT_CONTENT_LIMIT
                )
            except (AttributeError, IndexError, TypeError):
                pass

    def on_item(self, call: CapturedLlmCall, item: Any) -> None:
        model = getattr(item, "model", None)
        if model:
            call.model = model_name(model)
        parts = call._parts
        if parts is not None:
            choices = getattr(item, "choices", None)
            if choices:
                content = getattr(getattr(choices[0], "delta", None), "content", None)
                if content:
                    parts.append(content)
        usage = getattr(item, "usage", None)
        if usage is not None:
            call.prompt_tokens = getattr(usage, "prompt_tokens", None)
            call.completion_tokens = getattr(usage, "completion_tokens", None)


def _patch_instance(client: Any, capture_content: bool, is_async: bool) -> Any:
    completions = getattr(getattr(client, "chat", None), "completions", None)
    if completions is None:
        return client
    original = completions.create
    if is_patched(original):
        return client
    adapter = OpenAIAdapter(capture_content, detect_provider(client))
    completions.create = make_wrapper(original, adapter, is_async=is_async)
    return client


def patch_openai_client(client: Any, capture_content: bool = False) -> Any:
    """Patch one ``OpenAI`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, is_async=False)


def patch_async_openai_client(client: Any, capture_content: bool = False) -> Any:
    """Patch one ``AsyncOpenAI`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, is_async=True)


class OpenAIInstrumentor:
    """Patch ``Completions.create`` / ``AsyncCompletions.create`` for every client.

    ``OpenAIInstrumentor(capture_content=True).instrument()``; ``uninstrument()``
    restores the original methods.
    """

    _original_sync_create: Optional[Callable[..., Any]] = None
    _original_async_create: Optional[Callable[..., Any]] = None

    def __init__(self, capture_content: bool = False) -> None:
        self.capture_content = capture_content

    def instrument(self) -> None:
        try:
            from openai.resources.chat.completions import AsyncCompletions, Completions
        except ImportError:
            logger.warning("openai package not installed; OpenAIInstrumentor is a no-op")
            return
        cls = OpenAIInstrumentor
        adapter = OpenAIAdapter(self.capture_content, None)
        if cls._original_sync_create is None:
            cls._original_sync_create = Completions.create
        if cls._original_async_create is None:
            cls._original_async_create = AsyncCompletions.create
        sync_wrapper = make_wrapper(cls._original_sync_create, adapter, is_async=False, method=True)
        async_wrapper = make_wrapper(
            cls._original_async_create, adapter, is_async=True, method=True
        )
        setattr(Completions, "create", sync_wrapper)  # noqa: B010
        setattr(AsyncCompletions, "create", async_wrapper)  # noqa: B010

    def uninstrument(self) -> None:
        try:
            from openai.resources.chat.completions import AsyncCompletions, Completions
        except ImportError:
            return
        cls = OpenAIInstrumentor
        if cls._original_sync_create is not None:
            setattr(Completions, "create", cls._original_sync_create)  # noqa: B010
            cls._original_sync_create = None
        if cls._original_async_create is not None:
            setattr(AsyncCompletions, "create", cls._original_async_create)  # noqa: B010
            cls._original_async_create = None
