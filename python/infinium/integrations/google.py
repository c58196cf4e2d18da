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

import logging
from typing import Any, ClassVar, Dict, List, Optional, Tuple

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

__all__ = ["GoogleInstrumentor", "patch_google_genai_client", "patch_google_model"]

logger = logging.getLogger(__name__)


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
        original = getattr(model, attr, None)
        if original is not None and not is_patched(original):
            setattr(model, attr, make_wrapper(original, adapter, is_async=is_async))
    return model


def _patch_models(models: Any, capture_content: bool, is_async: bool) -> None:
    for attr, stream in (("generate_content", False), ("generate_content_stream", True)):
        original = getattr(models, attr, None)
        if original is not None and not is_patched(original):
            adapter = GenAIAdapter(capture_content, always_stream=stream)
            setattr(models, attr, make_wrapper(original, adapter, is_async=is_async))


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


class GoogleInstrumentor:
    """Class-level patching of Gemini clients.

    Patches ``google.genai`` ``Models`` / ``AsyncModels`` (``generate_content`` and
    ``generate_content_stream``) and the legacy ``GenerativeModel``
    (``generate_content`` / ``generate_content_async``), whichever is installed.
    """

    _original_sync: Any = None
    _original_async: Any = None
    _originals: ClassVar[Dict[Tuple[Any, str], Any]] = {}

    def __init__(self, capture_content: bool = False) -> None:
        self.capture_content = capture_content

    @staticmethod
    def _targets() -> List[Tuple[Any, str, bool, bool, bool]]:
        """(class, attribute, is_async, is_stream, legacy) for the installed packages."""
        targets: List[Tuple[Any, str, bool, bool, bool]] = []
        try:
            from google.genai.models import AsyncModels, Models

            targets += [
                (Models, "generate_content", False, False, False),
                (Models, "generate_content_stream", False, True, False),
                (AsyncModels, "generate_content", True, False, False),
                (AsyncModels, "generate_content_stream", True, True, False),
            ]
        except ImportError:
            pass
        try:
            from google.generativeai import GenerativeModel

            targets.append((GenerativeModel, "generate_content", False, False, True))
            if hasattr(GenerativeModel, "generate_content_async"):
                targets.append((GenerativeModel, "generate_content_async", True, False, True))
        except ImportError:
            pass
        return targets

    def instrument(self) -> None:
        targets = self._targets()
        if not targets:
            logger.warning(
                "neither google-genai nor google-generativeai installed; "
                "GoogleInstrumentor is a no-op"
            )
            return
        originals = GoogleInstrumentor._originals
        for cls, attr, is_async, is_stream, legacy in targets:
            key = (cls, attr)
            if key not in originals:
                originals[key] = cls.__dict__.get(attr, getattr(cls, attr))
            adapter: Adapter
            if legacy:
                adapter = LegacyGeminiAdapter(self.capture_content, None)
            else:
                adapter = GenAIAdapter(self.capture_content, always_stream=is_stream)
            setattr(
                cls, attr, make_wrapper(originals[key], adapter, is_async=is_async, method=True)
            )
            if legacy and attr == "generate_content":
                GoogleInstrumentor._original_sync = originals[key]
            elif legacy:
                GoogleInstrumentor._original_async = originals[key]

    def uninstrument(self) -> None:
        originals = GoogleInstrumentor._originals
        for (cls, attr), original in list(originals.items()):
            setattr(cls, attr, original)
        originals.clear()
        GoogleInstrumentor._original_sync = None
        GoogleInstrumentor._original_async = None
