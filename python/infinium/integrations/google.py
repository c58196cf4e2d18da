"""Google Gemini adapter.

- ``google-genai`` (``genai.Client``): ``client.models.generate_content`` and
  ``generate_content_stream``, and the same on ``client.aio.models``.
- legacy ``google-generativeai``: ``GenerativeModel.generate_content`` (``stream=True``
  supported) and ``generate_content_async``.

Token usage comes from ``usage_metadata.prompt_token_count`` /
``candidates_token_count`` (cumulative on every streamed chunk). No Google package
is imported except by :meth:`GoogleInstrumentor.instrument`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, Optional, Tuple

from ._context import (
    INPUT_CONTENT_LIMIT,
    OUTPUT_CONTENT_LIMIT,
    Adapter,
    CapturedLlmCall,
    as_number,
    model_name,
    truncate_preview,
)
from ._instrument import ClassInstrumentor, PatchTarget, patch_attr, sync_and_async

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
    prompt = getattr(meta, "prompt_token_count", None)
    completion = getattr(meta, "candidates_token_count", None)
    if prompt is not None:
        call.prompt_tokens = prompt
    if completion is not None:
        call.completion_tokens = completion


class _GoogleAdapter(Adapter):
    provider = "google"

    def on_response(self, call: CapturedLlmCall, response: Any) -> None:
        _set_usage(call, getattr(response, "usage_metadata", None))
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
        _set_usage(call, getattr(item, "usage_metadata", None))


class GenAIAdapter(_GoogleAdapter):
    """``google-genai``: ``(model=..., contents=..., config=...)``."""

    def __init__(self, capture_content: bool, always_stream: bool) -> None:
        super().__init__(capture_content)
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

    def __init__(self, capture_content: bool, model: Optional[str]) -> None:
        super().__init__(capture_content)
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


def patch_google_model(model: Any, capture_content: bool = False) -> Any:
    """Patch one legacy ``GenerativeModel`` instance (idempotent)."""
    adapter = LegacyGeminiAdapter(
        capture_content, model_name(getattr(model, "model_name", "unknown"))
    )
    for attr, is_async in (("generate_content", False), ("generate_content_async", True)):
        patch_attr(model, attr, adapter, is_async=is_async)
    return model


def _patch_models(models: Any, capture_content: bool, is_async: bool) -> None:
    for attr, stream in (("generate_content", False), ("generate_content_stream", True)):
        adapter = GenAIAdapter(capture_content, always_stream=stream)
        patch_attr(models, attr, adapter, is_async=is_async)


def patch_google_genai_client(client: Any, capture_content: bool = False) -> Any:
    """Patch a ``google.genai.Client``: ``models`` (sync) and ``aio.models`` (async)."""
    models = getattr(client, "models", None)
    if models is not None:
        _patch_models(models, capture_content, is_async=False)
    aio = getattr(client, "aio", None)
    aio_models = getattr(aio, "models", None) if aio is not None else None
    if aio_models is not None:
        _patch_models(aio_models, capture_content, is_async=True)
    return client


def _legacy_class_adapter(capture_content: bool) -> LegacyGeminiAdapter:
    return LegacyGeminiAdapter(capture_content, None)  # model read per call


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
