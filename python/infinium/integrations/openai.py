"""OpenAI / xAI (Grok) adapters, sync and async: ``chat.completions.create`` and
``parse``, ``embeddings.create``, and the Responses API (``responses.create`` /
``parse``, in :mod:`._openai_responses`).

The stream helpers need no patch of their own: ``chat.completions.stream(...)`` and
``responses.stream(...)`` call ``create(stream=True)`` on the same resource, so each
gives exactly one record. Streams are wrapped transparently; a streamed chat
completion reports its tokens only when asked to (``stream_options={"include_usage":
True}``), as the API sends them only then.
The ``openai`` package is imported only by :meth:`OpenAIInstrumentor.instrument`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from ._context import CapturedLlmCall, take_model_and_usage
from ._details import (
    add_tool_call,
    set_token_details,
    start_streamed_tool,
    streamed_tool_arguments,
)
from ._instrument import ClassInstrumentor, patch_attr, sync_and_async
from ._openai_common import OpenAIBaseAdapter, detect_provider
from ._openai_responses import ResponsesAdapter
from ._values import (
    INPUT_CONTENT_LIMIT,
    OUTPUT_CONTENT_LIMIT,
    as_int,
    model_name,
    truncate_preview,
)

__all__ = ["OpenAIInstrumentor", "patch_async_openai_client", "patch_openai_client"]


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


def _usage_details(call: CapturedLlmCall, usage: Any) -> None:
    """Cached and reasoning tokens of a chat completion's ``usage``."""
    prompt = getattr(usage, "prompt_tokens_details", None)
    completion = getattr(usage, "completion_tokens_details", None)
    set_token_details(
        call,
        cached=getattr(prompt, "cached_tokens", None),
        cache_write=getattr(prompt, "cache_write_tokens", None),
        reasoning=getattr(completion, "reasoning_tokens", None),
    )


class OpenAIAdapter(OpenAIBaseAdapter):
    """Chat completions (``create``; ``parse`` with ``never_stream``)."""

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        call = self.new_call(
            self.provider_of(owner), kwargs, lambda: _input_preview(kwargs.get("messages"))
        )
        return call, kwargs.get("stream") is True

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        take_model_and_usage(call, response, "prompt_tokens", "completion_tokens")
        usage = getattr(response, "usage", None)
        if usage is not None:
            _usage_details(call, usage)
        choices = getattr(response, "choices", None)
        message = getattr(choices[0], "message", None) if choices else None
        if message is None:
            return
        for tool in getattr(message, "tool_calls", None) or ():
            function = getattr(tool, "function", None)
            if function is not None:
                add_tool_call(call, function.name, function.arguments)
            elif getattr(tool, "custom", None) is not None:  # custom tools: free-form input
                add_tool_call(call, tool.custom.name, tool.custom.input)
        legacy = getattr(message, "function_call", None)
        if legacy is not None:
            add_tool_call(call, legacy.name, legacy.arguments)
        if self.capture_content:
            call.output_preview = truncate_preview(
                getattr(message, "content", None), OUTPUT_CONTENT_LIMIT
            )

    def on_item(self, call: CapturedLlmCall, item: Any) -> None:
        model = getattr(item, "model", None)
        if model:
            call.model = model_name(model)
        choices = getattr(item, "choices", None)
        if choices:
            delta = getattr(choices[0], "delta", None)
            parts = call._parts
            if parts is not None:
                content = getattr(delta, "content", None)
                if content:
                    parts.append(content)
            for tool in getattr(delta, "tool_calls", None) or ():
                function = getattr(tool, "function", None)
                name = getattr(function, "name", None)
                if name:
                    start_streamed_tool(call, tool.index, name)
                streamed_tool_arguments(call, tool.index, getattr(function, "arguments", None))
        usage = getattr(item, "usage", None)
        if usage is not None:
            call.prompt_tokens = as_int(getattr(usage, "prompt_tokens", None))
            call.completion_tokens = as_int(getattr(usage, "completion_tokens", None))
            _usage_details(call, usage)


def _embedding_preview(value: Any) -> Optional[str]:
    if isinstance(value, str):
        return truncate_preview(value, INPUT_CONTENT_LIMIT)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return truncate_preview("\n".join(value[-2:]), INPUT_CONTENT_LIMIT)
    return None  # token arrays


class EmbeddingsAdapter(OpenAIBaseAdapter):
    """``embeddings.create``: prompt tokens, no completion tokens, no output preview."""

    never_stream = True

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        call = self.new_call(
            self.provider_of(owner), kwargs, lambda: _embedding_preview(kwargs.get("input"))
        )
        return call, False

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        take_model_and_usage(call, response, "prompt_tokens", "completion_tokens")


def _patch_instance(
    client: Any, capture_content: bool, is_async: bool, estimate_cost: bool = False
) -> Any:
    provider = detect_provider(client)
    completions = getattr(getattr(client, "chat", None), "completions", None)
    chat = OpenAIAdapter(capture_content, provider, estimate_cost)
    parse = OpenAIAdapter(capture_content, provider, estimate_cost, never_stream=True)
    patch_attr(completions, "create", chat, is_async=is_async)
    patch_attr(completions, "parse", parse, is_async=is_async)
    responses = getattr(client, "responses", None)
    patch_attr(
        responses,
        "create",
        ResponsesAdapter(capture_content, provider, estimate_cost),
        is_async=is_async,
    )
    patch_attr(
        responses,
        "parse",
        ResponsesAdapter(capture_content, provider, estimate_cost, never_stream=True),
        is_async=is_async,
    )
    embeddings = EmbeddingsAdapter(capture_content, provider, estimate_cost)
    patch_attr(getattr(client, "embeddings", None), "create", embeddings, is_async=is_async)
    return client


def patch_openai_client(
    client: Any, capture_content: bool = False, *, estimate_cost: bool = False
) -> Any:
    """Patch one ``OpenAI`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, False, estimate_cost)


def patch_async_openai_client(
    client: Any, capture_content: bool = False, *, estimate_cost: bool = False
) -> Any:
    """Patch one ``AsyncOpenAI`` client instance (idempotent); returns the client."""
    return _patch_instance(client, capture_content, True, estimate_cost)


# Class-level adapters: the provider is detected per call from the resource's client.


def _chat(capture_content: bool, estimate_cost: bool) -> OpenAIAdapter:
    return OpenAIAdapter(capture_content, None, estimate_cost)


def _chat_parse(capture_content: bool, estimate_cost: bool) -> OpenAIAdapter:
    return OpenAIAdapter(capture_content, None, estimate_cost, never_stream=True)


def _responses(capture_content: bool, estimate_cost: bool) -> ResponsesAdapter:
    return ResponsesAdapter(capture_content, None, estimate_cost)


def _responses_parse(capture_content: bool, estimate_cost: bool) -> ResponsesAdapter:
    return ResponsesAdapter(capture_content, None, estimate_cost, never_stream=True)


def _embeddings(capture_content: bool, estimate_cost: bool) -> EmbeddingsAdapter:
    return EmbeddingsAdapter(capture_content, None, estimate_cost)


class OpenAIInstrumentor(ClassInstrumentor):
    """Patch every OpenAI client at class level: ``Completions.create`` / ``parse``,
    ``Responses.create`` / ``parse`` and ``Embeddings.create``, sync and async.

    ``OpenAIInstrumentor(capture_content=True).instrument()``; ``uninstrument()``
    restores the original methods.
    """

    _original_sync_create: Optional[Callable[..., Any]] = None
    _original_async_create: Optional[Callable[..., Any]] = None

    missing = "openai package not installed"
    targets = (
        *sync_and_async(
            "openai.resources.chat.completions",
            "Completions",
            "AsyncCompletions",
            "create",
            _chat,
            aliases=("_original_sync_create", "_original_async_create"),
        ),
        *sync_and_async(
            "openai.resources.chat.completions",
            "Completions",
            "AsyncCompletions",
            "parse",
            _chat_parse,
            optional=True,
        ),
        *sync_and_async(
            "openai.resources.responses", "Responses", "AsyncResponses", "create", _responses
        ),
        *sync_and_async(
            "openai.resources.responses",
            "Responses",
            "AsyncResponses",
            "parse",
            _responses_parse,
            optional=True,
        ),
        *sync_and_async(
            "openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", "create", _embeddings
        ),
    )
