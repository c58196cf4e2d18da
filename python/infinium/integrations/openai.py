"""OpenAI / xAI (Grok) adapter: ``chat.completions.create``, sync and async.

Streams (``stream=True``) are wrapped transparently; token usage comes from the
final chunk sent with ``stream_options={"include_usage": True}``.
The ``openai`` package is imported only by :meth:`OpenAIInstrumentor.instrument`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from ._context import (
    INPUT_CONTENT_LIMIT,
    OUTPUT_CONTENT_LIMIT,
    Adapter,
    CapturedLlmCall,
    as_number,
    model_name,
    take_model_and_usage,
    truncate_preview,
)
from ._instrument import ClassInstrumentor, patch_attr, sync_and_async

__all__ = ["OpenAIInstrumentor", "patch_async_openai_client", "patch_openai_client"]


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
        take_model_and_usage(call, response, "prompt_tokens", "completion_tokens")
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
    if completions is not None:
        adapter = OpenAIAdapter(capture_content, detect_provider(client))
        patch_attr(completions, "create", adapter, is_async=is_async)
    return client


def patch_openai_client(client: Any, capture_content: bool = False) -> Any:
    """Patch one ``OpenAI`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, is_async=False)


def patch_async_openai_client(client: Any, capture_content: bool = False) -> Any:
    """Patch one ``AsyncOpenAI`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, is_async=True)


def _class_adapter(capture_content: bool) -> OpenAIAdapter:
    return OpenAIAdapter(capture_content, None)  # provider detected per call


class OpenAIInstrumentor(ClassInstrumentor):
    """Patch ``Completions.create`` / ``AsyncCompletions.create`` for every client.

    ``OpenAIInstrumentor(capture_content=True).instrument()``; ``uninstrument()``
    restores the original methods.
    """

    _original_sync_create: Optional[Callable[..., Any]] = None
    _original_async_create: Optional[Callable[..., Any]] = None

    missing = "openai package not installed"
    targets = sync_and_async(
        "openai.resources.chat.completions",
        "Completions",
        "AsyncCompletions",
        "create",
        _class_adapter,
        aliases=("_original_sync_create", "_original_async_create"),
    )
