"""Anthropic adapter, sync and async: ``messages.create`` (plain and ``stream=True``),
``messages.parse``, the ``messages.stream(...)`` helper, and the same three on
``beta.messages`` where the installed package has them.

Tokens: ``usage.input_tokens`` / ``output_tokens`` (streams: ``message_start`` and
``message_delta``); the cache reads and writes (``cache_read_input_tokens``,
``cache_creation_input_tokens``, which Anthropic counts outside ``input_tokens``) and
thinking tokens go to the token details; ``tool_use`` blocks (streamed as
``input_json_delta`` pieces) are the requested tool calls.
The ``anthropic`` package is imported only by :meth:`AnthropicInstrumentor.instrument`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, Optional, Tuple

from ._context import Adapter, CapturedLlmCall, take_model_and_usage
from ._details import (
    add_tool_call,
    end_streamed_tools,
    set_token_details,
    start_streamed_tool,
    streamed_tool_arguments,
)
from ._instrument import ClassInstrumentor, patch_attr, sync_and_async
from ._values import (
    INPUT_CONTENT_LIMIT,
    OUTPUT_CONTENT_LIMIT,
    as_int,
    model_name,
    truncate_preview,
)

__all__ = ["AnthropicInstrumentor", "patch_anthropic_client", "patch_async_anthropic_client"]


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


def _token_details(call: CapturedLlmCall, usage: Any) -> None:
    thinking = getattr(getattr(usage, "output_tokens_details", None), "thinking_tokens", None)
    set_token_details(
        call,
        cached=getattr(usage, "cache_read_input_tokens", None),
        cache_write=getattr(usage, "cache_creation_input_tokens", None),
        reasoning=thinking,
    )


class AnthropicAdapter(Adapter):
    provider = "anthropic"

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        call = self.new_call(
            "anthropic",
            kwargs,
            lambda: _input_preview(kwargs.get("messages"), kwargs.get("system")),
        )
        return call, kwargs.get("stream") is True

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        take_model_and_usage(call, response, "input_tokens", "output_tokens")
        usage = getattr(response, "usage", None)
        if usage is not None:
            _token_details(call, usage)
        text = None
        for block in getattr(response, "content", None) or ():
            kind = getattr(block, "type", None)
            if kind == "tool_use":
                add_tool_call(call, block.name, block.input)
            elif text is None and hasattr(block, "text"):
                text = block.text
        if self.capture_content and text is not None:
            call.output_preview = truncate_preview(text, OUTPUT_CONTENT_LIMIT)

    def on_item(self, call: CapturedLlmCall, item: Any) -> None:
        kind = getattr(item, "type", "")
        if kind == "content_block_delta":
            delta = getattr(item, "delta", None)
            if getattr(delta, "type", None) == "input_json_delta":
                streamed_tool_arguments(call, item.index, getattr(delta, "partial_json", None))
                return
            parts = call._parts
            if parts is not None:
                text = getattr(delta, "text", None)
                if text:
                    parts.append(text)
        elif kind == "content_block_start":
            block: Any = getattr(item, "content_block", None)
            if getattr(block, "type", None) == "tool_use":
                start_streamed_tool(call, item.index, block.name)
        elif kind == "content_block_stop":
            end_streamed_tools(call)
        elif kind == "message_start":
            message = getattr(item, "message", None)
            model = getattr(message, "model", None)
            if model:
                call.model = model_name(model)
            usage = getattr(message, "usage", None)
            if usage is not None:
                call.prompt_tokens = as_int(getattr(usage, "input_tokens", None))
                _token_details(call, usage)
        elif kind == "message_delta":
            usage = getattr(item, "usage", None)
            if usage is not None:
                call.completion_tokens = as_int(getattr(usage, "output_tokens", None))
                _token_details(call, usage)  # cumulative counts, when sent


def _patch_messages(
    messages: Any, capture_content: bool, is_async: bool, estimate_cost: bool
) -> None:
    plain = AnthropicAdapter(capture_content, estimate_cost)
    parse = AnthropicAdapter(capture_content, estimate_cost, never_stream=True)
    patch_attr(messages, "create", plain, is_async=is_async)
    patch_attr(messages, "parse", parse, is_async=is_async)
    patch_attr(messages, "stream", plain, is_async=is_async, manager=True)


def _patch_instance(
    client: Any, capture_content: bool, is_async: bool, estimate_cost: bool = False
) -> Any:
    _patch_messages(getattr(client, "messages", None), capture_content, is_async, estimate_cost)
    try:
        beta = getattr(getattr(client, "beta", None), "messages", None)
    except Exception:  # a package without the beta resources
        beta = None
    _patch_messages(beta, capture_content, is_async, estimate_cost)
    return client


def patch_anthropic_client(
    client: Any, capture_content: bool = False, *, estimate_cost: bool = False
) -> Any:
    """Patch one ``Anthropic`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, False, estimate_cost)


def patch_async_anthropic_client(
    client: Any, capture_content: bool = False, *, estimate_cost: bool = False
) -> Any:
    """Patch one ``AsyncAnthropic`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, True, estimate_cost)


_parse: Callable[[bool, bool], AnthropicAdapter] = partial(AnthropicAdapter, never_stream=True)


def _targets(module: str, aliases: Tuple[Optional[str], Optional[str]] = (None, None)) -> Any:
    """``create`` / ``parse`` / ``stream`` of a module's ``Messages`` / ``AsyncMessages``."""
    return (
        *sync_and_async(module, "Messages", "AsyncMessages", "create", AnthropicAdapter, aliases),
        *sync_and_async(module, "Messages", "AsyncMessages", "parse", _parse, optional=True),
        *sync_and_async(
            module,
            "Messages",
            "AsyncMessages",
            "stream",
            AnthropicAdapter,
            optional=True,
            manager=True,
        ),
    )


class AnthropicInstrumentor(ClassInstrumentor):
    """Patch ``Messages`` / ``AsyncMessages`` (``create``, ``parse``, ``stream``; the
    beta ones too) for every client."""

    _original_sync_create: Optional[Callable[..., Any]] = None
    _original_async_create: Optional[Callable[..., Any]] = None

    missing = "anthropic package not installed"
    targets = (
        *_targets(
            "anthropic.resources.messages", ("_original_sync_create", "_original_async_create")
        ),
        *_targets("anthropic.resources.beta.messages"),
    )
