"""Google Gemini adapter.

- ``google-genai`` (``genai.Client``): ``client.models.generate_content`` and
  ``generate_content_stream``, and the same on ``client.aio.models``. Chat sessions
  (``client.chats`` / ``client.aio.chats``) call these methods of the client's
  ``models``, so each ``send_message`` / ``send_message_stream`` is one record.
- legacy ``google-generativeai``: ``GenerativeModel.generate_content`` (``stream=True``
  supported) and ``generate_content_async``.

Token usage comes from ``usage_metadata.prompt_token_count`` /
``candidates_token_count`` (cumulative on every streamed chunk), the token details
from ``cached_content_token_count`` and ``thoughts_token_count`` (outside
``candidates_token_count``), the model from the response's ``model_version``, the
requested tool calls from ``function_call`` parts (and, with automatic function
calling, from the calls the package made before its final answer). No Google
package is imported except by :meth:`GoogleInstrumentor.instrument`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, List, Optional, Tuple

from ._context import Adapter, CapturedLlmCall
from ._details import add_tool_call, set_token_details
from ._instrument import ClassInstrumentor, PatchTarget, patch_attr, sync_and_async
from ._values import (
    INPUT_CONTENT_LIMIT,
    OUTPUT_CONTENT_LIMIT,
    as_int,
    as_number,
    model_name,
    truncate_preview,
)

__all__ = ["GoogleInstrumentor", "patch_google_genai_client", "patch_google_model"]


def _input_preview(contents: Any) -> Optional[str]:
    if not contents:
        return None
    try:
        if isinstance(contents, str):
            return truncate_preview(contents, INPUT_CONTENT_LIMIT)
        if isinstance(contents, list):
            parts = []
            for item in contents[-2:]:
                if isinstance(item, str):
                    parts.append(item)
                elif isinstance(item, dict):
                    parts.append(str(item.get("text", item.get("parts", ""))))
                else:
                    parts.append(str(item))
            return truncate_preview("\n".join(parts), INPUT_CONTENT_LIMIT)
    except Exception:
        pass
    return None


def _temperature(config: Any) -> Optional[float]:
    if config is None:
        return None
    if isinstance(config, dict):
        return as_number(config.get("temperature"))
    return as_number(getattr(config, "temperature", None))


def _set_usage(call: CapturedLlmCall, meta: Any) -> None:
    if meta is None:
        return
    prompt = as_int(getattr(meta, "prompt_token_count", None))
    completion = as_int(getattr(meta, "candidates_token_count", None))
    if prompt is not None:
        call.prompt_tokens = prompt
    if completion is not None:
        call.completion_tokens = completion
    set_token_details(
        call,
        cached=getattr(meta, "cached_content_token_count", None),
        reasoning=getattr(meta, "thoughts_token_count", None),
    )


def _function_calls(call: CapturedLlmCall, content: Any) -> None:
    """The ``function_call`` parts of a ``Content``."""
    for part in getattr(content, "parts", None) or ():
        function = getattr(part, "function_call", None)
        name = getattr(function, "name", None)
        if isinstance(name, str) and name:  # (legacy proto parts have an empty one)
            add_tool_call(call, name, getattr(function, "args", None))


def _automatic_turns(history: Any) -> List[Any]:
    """The model turns automatic function calling added to ``history``: those after
    the last user turn that is not a function response (the history starts with the
    call's input, a chat session's earlier turns included)."""
    if not isinstance(history, list):
        return []
    turns: List[Any] = []
    for content in reversed(history):
        parts = getattr(content, "parts", None) or ()
        if getattr(content, "role", None) == "model":
            turns.append(content)
        elif not any(getattr(p, "function_response", None) is not None for p in parts):
            break
    return turns[::-1]


def _take_response(call: CapturedLlmCall, response: Any, version: bool) -> None:
    """Usage, requested function calls (and with ``version`` the model version) of one
    response or chunk."""
    _set_usage(call, getattr(response, "usage_metadata", None))
    model = getattr(response, "model_version", None) if version else None
    if isinstance(model, str) and model:
        call.model = model
    for content in _automatic_turns(getattr(response, "automatic_function_calling_history", None)):
        _function_calls(call, content)
    candidates = getattr(response, "candidates", None)
    if candidates:
        _function_calls(call, getattr(candidates[0], "content", None))


class _GoogleAdapter(Adapter):
    provider = "google"
    #: The model recorded is the response's ``model_version`` (google-genai only: the
    #: legacy SDK's calls keep the model they were made with, as infinium-o2's do).
    takes_version = False

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        _take_response(call, response, self.takes_version)
        if self.capture_content:
            try:
                call.output_preview = truncate_preview(response.text, OUTPUT_CONTENT_LIMIT)
            except (AttributeError, ValueError):
                pass

    def on_item(self, call: CapturedLlmCall, item: Any) -> None:
        parts = call._parts
        if parts is not None:
            try:
                text = item.text
            except (AttributeError, ValueError):
                text = None
            if text:
                parts.append(text)
        _take_response(call, item, self.takes_version)


class GenAIAdapter(_GoogleAdapter):
    """``google-genai``: ``(model=..., contents=..., config=...)``."""

    takes_version = True

    def __init__(
        self, capture_content: bool, estimate_cost: bool = False, always_stream: bool = False
    ) -> None:
        super().__init__(capture_content, estimate_cost)
        self.always_stream = always_stream

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        if "model" in kwargs:
            model = model_name(kwargs["model"])
        else:
            model = model_name(args[0]) if args else "unknown"
        contents = (
            kwargs["contents"] if "contents" in kwargs else (args[1] if len(args) > 1 else None)
        )
        call = CapturedLlmCall(
            provider="google",
            model=model,
            temperature=_temperature(kwargs.get("config")),
            input_preview=_input_preview(contents) if self.capture_content else None,
        )
        return call, self.always_stream


class LegacyGeminiAdapter(_GoogleAdapter):
    """``google-generativeai``: ``GenerativeModel.generate_content(contents, stream=...)``."""

    def __init__(
        self, capture_content: bool, model: Optional[str], estimate_cost: bool = False
    ) -> None:
        super().__init__(capture_content, estimate_cost)
        # None: read ``model_name`` from the instance (class-level patching).
        self.model = model

    def describe(
        self, owner: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Tuple[CapturedLlmCall, bool]:
        model = self.model
        if model is None:
            model = model_name(getattr(owner, "model_name", "unknown"))
        contents = args[0] if args else kwargs.get("contents")
        call = CapturedLlmCall(
            provider="google",
            model=model,
            temperature=_temperature(kwargs.get("generation_config")),
            input_preview=_input_preview(contents) if self.capture_content else None,
        )
        return call, kwargs.get("stream") is True


def patch_google_model(
    model: Any, capture_content: bool = False, *, estimate_cost: bool = False
) -> Any:
    """Patch one legacy ``GenerativeModel`` instance (idempotent)."""
    adapter = LegacyGeminiAdapter(
        capture_content, model_name(getattr(model, "model_name", "unknown")), estimate_cost
    )
    for attr, is_async in (("generate_content", False), ("generate_content_async", True)):
        patch_attr(model, attr, adapter, is_async=is_async)
    return model


def _patch_models(models: Any, capture_content: bool, is_async: bool, estimate_cost: bool) -> None:
    for attr, stream in (("generate_content", False), ("generate_content_stream", True)):
        adapter = GenAIAdapter(capture_content, estimate_cost, always_stream=stream)
        patch_attr(models, attr, adapter, is_async=is_async)


def patch_google_genai_client(
    client: Any, capture_content: bool = False, *, estimate_cost: bool = False
) -> Any:
    """Patch a ``google.genai.Client``: ``models`` (sync) and ``aio.models`` (async)."""
    models = getattr(client, "models", None)
    if models is not None:
        _patch_models(models, capture_content, False, estimate_cost)
    aio = getattr(client, "aio", None)
    aio_models = getattr(aio, "models", None) if aio is not None else None
    if aio_models is not None:
        _patch_models(aio_models, capture_content, True, estimate_cost)
    return client


def _legacy_class_adapter(capture_content: bool, estimate_cost: bool) -> LegacyGeminiAdapter:
    return LegacyGeminiAdapter(capture_content, None, estimate_cost)  # model read per call


class GoogleInstrumentor(ClassInstrumentor):
    """Class-level patching of Gemini clients.

    Patches ``google.genai`` ``Models`` / ``AsyncModels`` (``generate_content`` and
    ``generate_content_stream``) and the legacy ``GenerativeModel``
    (``generate_content`` / ``generate_content_async``), whichever is installed.
    """

    _original_sync: Any = None
    _original_async: Any = None

    missing = "neither google-genai nor google-generativeai installed"
    targets = (
        *sync_and_async(
            "google.genai.models",
            "Models",
            "AsyncModels",
            "generate_content",
            partial(GenAIAdapter, always_stream=False),
        ),
        *sync_and_async(
            "google.genai.models",
            "Models",
            "AsyncModels",
            "generate_content_stream",
            partial(GenAIAdapter, always_stream=True),
        ),
        PatchTarget(
            "google.generativeai",
            "GenerativeModel",
            "generate_content",
            False,
            _legacy_class_adapter,
            alias="_original_sync",
        ),
        PatchTarget(
            "google.generativeai",
            "GenerativeModel",
            "generate_content_async",
            True,
            _legacy_class_adapter,
            alias="_original_async",
            optional=True,
        ),
    )
