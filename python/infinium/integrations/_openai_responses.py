"""OpenAI Responses API adapter: ``responses.create`` (plain and ``stream=True``) and
``responses.parse``, sync and async; ``responses.stream(...)`` goes through
``create(stream=True)``.

Tokens come from ``usage.input_tokens`` / ``output_tokens`` (of the response, or of
the ``response.completed`` / ``response.incomplete`` / ``response.failed`` event),
cached and reasoning tokens from ``input_tokens_details.cached_tokens`` and
``output_tokens_details.reasoning_tokens``, requested tool calls from the
``function_call`` / ``custom_tool_call`` output items. A stream's ``error`` event or
a failed response is recorded as the call's error (``error_type`` = the API's error
code), as the ``openai`` package yields these rather than raising.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ._context import CapturedLlmCall
from ._details import add_tool_call, set_token_details
from ._openai_common import OpenAIBaseAdapter
from ._values import (
    INPUT_CONTENT_LIMIT,
    OUTPUT_CONTENT_LIMIT,
    as_int,
    model_name,
    truncate_preview,
)

__all__ = ["ResponsesAdapter"]


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or its text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def _input_preview(instructions: Any, items: Any) -> Optional[str]:
    """The last two of the instructions (as ``[system]``) and the system / developer /
    user messages of the input."""
    parts = []
    if isinstance(instructions, str) and instructions:
        parts.append(f"[system] {instructions}")
    if isinstance(items, str):
        parts.append(f"[user] {items}")
    elif isinstance(items, (list, tuple)):
        for item in items:
            if isinstance(item, dict) and item.get("role") in ("system", "developer", "user"):
                parts.append(f"[{item['role']}] {_text_of(item.get('content'))}")
    return truncate_preview("\n".join(parts[-2:]), INPUT_CONTENT_LIMIT) if parts else None


def _take_usage(call: CapturedLlmCall, usage: Any) -> None:
    if usage is None:
        return
    call.prompt_tokens = as_int(getattr(usage, "input_tokens", None))
    call.completion_tokens = as_int(getattr(usage, "output_tokens", None))
    inputs = getattr(usage, "input_tokens_details", None)
    outputs = getattr(usage, "output_tokens_details", None)
    set_token_details(
        call,
        cached=getattr(inputs, "cached_tokens", None),
        cache_write=getattr(inputs, "cache_write_tokens", None),
        reasoning=getattr(outputs, "reasoning_tokens", None),
    )


def _take_tool_call(call: CapturedLlmCall, item: Any) -> None:
    kind = getattr(item, "type", None)
    if kind == "function_call":
        add_tool_call(call, item.name, item.arguments)
    elif kind == "custom_tool_call":
        add_tool_call(call, item.name, item.input)


def _take_error(call: CapturedLlmCall, code: Any, message: Any) -> None:
    if call.error_type is None:
        call.error_type = str(code) if code else "error"
        call.error_message = str(message) if message is not None else ""


def _take_response(call: CapturedLlmCall, response: Any, tools: bool) -> None:
    """Model, usage, error (and with ``tools`` the requested tool calls) of a Response."""
    model = getattr(response, "model", None)
    if model:
        call.model = model_name(model)
    _take_usage(call, getattr(response, "usage", None))
    if tools:
        for item in getattr(response, "output", None) or ():
            _take_tool_call(call, item)
    error = getattr(response, "error", None)
    if error is not None:
        _take_error(call, getattr(error, "code", None), getattr(error, "message", None))


class ResponsesAdapter(OpenAIBaseAdapter):
    """``responses.create`` (``parse`` with ``never_stream``)."""

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        call = self.new_call(
            self.provider_of(owner),
            kwargs,
            lambda: _input_preview(kwargs.get("instructions"), kwargs.get("input")),
        )
        return call, kwargs.get("stream") is True

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        _take_response(call, response, tools=True)
        if self.capture_content:
            try:
                call.output_preview = truncate_preview(response.output_text, OUTPUT_CONTENT_LIMIT)
            except Exception:  # output_text is a computed property
                pass

    def on_item(self, call: CapturedLlmCall, item: Any) -> None:
        kind = getattr(item, "type", None)
        if kind == "response.output_text.delta":
            parts = call._parts
            if parts is not None:
                delta = getattr(item, "delta", None)
                if isinstance(delta, str):
                    parts.append(delta)
        elif kind == "response.output_item.done":
            _take_tool_call(call, getattr(item, "item", None))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            # Tool calls came with their output_item.done events.
            _take_response(call, getattr(item, "response", None), tools=False)
        elif kind in ("response.created", "response.in_progress"):
            model = getattr(getattr(item, "response", None), "model", None)
            if model:
                call.model = model_name(model)
        elif kind == "error":
            _take_error(call, getattr(item, "code", None), getattr(item, "message", None))
