"""Zero-boilerplate LLM integrations.

``watch(client, capture_content=False, estimate_cost=False)`` patches one client
instance so that, inside a traced function, every LLM call becomes an ``llm_call`` step
with model, tokens and latency (and, in the step's ``metadata``, the cached and
reasoning tokens and the tool calls the model requested)::

    from infinium.integrations import watch
    openai_client = watch(OpenAI(), capture_content=True)

or patch every client at class level::

    from infinium.integrations import OpenAIInstrumentor
    OpenAIInstrumentor(capture_content=True).instrument()

Outside a traced call the patched methods pass straight through. No provider package
is imported by importing this module.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from . import _pricing
from ._context import (
    CapturedLlmCall,
    CapturedPromptFetch,
    TraceContext,
    get_current_trace_context,
    set_trace_context,
)
from ._openai_common import detect_provider
from .anthropic import AnthropicInstrumentor, patch_anthropic_client, patch_async_anthropic_client
from .google import GoogleInstrumentor, patch_google_genai_client, patch_google_model
from .openai import OpenAIInstrumentor, patch_async_openai_client, patch_openai_client

__all__ = [
    "watch",
    "TraceContext",
    "CapturedLlmCall",
    "CapturedPromptFetch",
    "get_current_trace_context",
    "set_trace_context",
    "OpenAIInstrumentor",
    "AnthropicInstrumentor",
    "GoogleInstrumentor",
    "patch_openai_client",
    "patch_async_openai_client",
    "patch_anthropic_client",
    "patch_async_anthropic_client",
    "patch_google_genai_client",
    "patch_google_model",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _has_base(client: Any, class_name: str, package: str) -> bool:
    """``client`` is an instance of ``package``'s ``class_name`` or a subclass of it."""
    for klass in type(client).__mro__:
        if klass.__name__ == class_name and (klass.__module__ or "").startswith(package):
            return True
    return False


def _is_xai(client: Any) -> bool:
    """An OpenAI-compatible client (has ``chat``) pointed at x.ai / Grok."""
    return hasattr(client, "chat") and detect_provider(client) == "xai"


def watch(client: T, capture_content: bool = False, *, estimate_cost: bool = False) -> T:
    """Patch one LLM client instance in place and return it.

    Supported: ``openai.OpenAI`` / ``AsyncOpenAI`` (and subclasses such as Azure;
    provider ``xai`` when the base URL points at x.ai / Grok), ``anthropic.Anthropic``
    / ``AsyncAnthropic``, ``google.genai.Client`` (``models`` and ``aio.models``) and
    the legacy ``google.generativeai.GenerativeModel``. Patching twice is a no-op;
    an unknown client is left untouched with a warning. README's "What ``watch()``
    records" lists the methods recorded and what each step carries.

    With ``capture_content=True`` the last system/user messages (<= 500 chars), the
    output (<= 1500 chars) and the arguments of the tool calls the model requested
    (<= 500 chars each) are recorded. With ``estimate_cost=True`` each call's cost
    (step metadata ``estimated_cost_usd``) and the trace's
    ``LlmUsage.estimated_cost_usd`` come from the ``genai-prices`` table (the
    ``cost`` extra); a model it does not know gets no cost.
    """
    if estimate_cost:
        _pricing.ensure_loaded()
    name = type(client).__name__
    if _has_base(client, "AsyncOpenAI", "openai") or (_is_xai(client) and "Async" in name):
        patch_async_openai_client(client, capture_content, estimate_cost=estimate_cost)
    elif _has_base(client, "OpenAI", "openai") or _is_xai(client):
        patch_openai_client(client, capture_content, estimate_cost=estimate_cost)
    elif _has_base(client, "AsyncAnthropic", "anthropic"):
        patch_async_anthropic_client(client, capture_content, estimate_cost=estimate_cost)
    elif _has_base(client, "Anthropic", "anthropic"):
        patch_anthropic_client(client, capture_content, estimate_cost=estimate_cost)
    elif _has_base(client, "Client", "google.genai"):
        patch_google_genai_client(client, capture_content, estimate_cost=estimate_cost)
    elif _has_base(client, "GenerativeModel", "google"):
        patch_google_model(client, capture_content, estimate_cost=estimate_cost)
    else:
        logger.warning(
            "watch(): unrecognised client type %s.%s — no instrumentation applied",
            type(client).__module__,
            name,
        )
    return client
