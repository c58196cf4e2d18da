"""Cost estimates from the ``genai-prices`` package (the optional ``cost`` extra:
``pip install 'infinium-rs[cost]'``), for ``watch(..., estimate_cost=True)``.

The package is imported only when a cost is first asked for (``watch`` /
``instrument()`` with ``estimate_cost=True``), never on import of the SDK. A model
the price table does not know gets no cost, never a guess; without the package (or
on Python < 3.11, which it does not support) no cost is recorded and one warning
is logged.

Token semantics differ per provider, and the price table wants the total input:
OpenAI and xAI count cached tokens inside ``prompt_tokens`` and reasoning tokens
inside ``completion_tokens``; Anthropic's ``input_tokens`` exclude the cache reads
and writes; Gemini's ``prompt_token_count`` includes the cached tokens while its
``candidates_token_count`` excludes the thinking tokens.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .._context import CapturedLlmCall
    from ._details import CallDetails

__all__ = ["ensure_loaded", "estimate"]

logger = logging.getLogger("infinium.integrations")

#: Our provider names -> the price table's provider ids.
_PROVIDER_IDS = {"openai": "openai", "xai": "x-ai", "anthropic": "anthropic", "google": "google"}

_lock = threading.Lock()
_module: Any = None
_tried = False


def ensure_loaded() -> bool:
    """Import ``genai_prices`` once; False (and one warning) when it is missing."""
    global _module, _tried
    if _tried:
        return _module is not None
    with _lock:
        if not _tried:
            try:
                import genai_prices

                _module = genai_prices
            except Exception as exc:  # ImportError, or a broken install
                logger.warning(
                    "estimate_cost=True needs the genai-prices package "
                    "(pip install 'infinium-rs[cost]', Python >= 3.11): no cost recorded (%s)",
                    exc,
                )
            _tried = True
    return _module is not None


def _int(value: Optional[int]) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def estimate(call: CapturedLlmCall, details: CallDetails) -> Optional[Decimal]:
    """The estimated cost in USD of ``call``, or None (unknown model or provider,
    no price table)."""
    provider_id = _PROVIDER_IDS.get(call.provider)
    if provider_id is None or not ensure_loaded():
        return None
    prompt, completion = _int(call.prompt_tokens), _int(call.completion_tokens)
    cached, written = _int(details.cached_tokens), _int(details.cache_write_tokens)
    if call.provider == "anthropic":
        prompt += cached + written
    elif call.provider == "google":
        completion += _int(details.reasoning_tokens)
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    try:
        usage = _module.Usage(
            input_tokens=prompt,
            cache_read_tokens=cached or None,
            cache_write_tokens=written or None,
            output_tokens=completion,
        )
        price = _module.calc_price(usage, model_ref=call.model, provider_id=provider_id)
    except LookupError:
        return None
    except Exception:  # never let pricing break the trace
        logger.debug("cost estimate failed for %s/%s", call.provider, call.model, exc_info=True)
        return None
    total = price.total_price
    return total if isinstance(total, Decimal) else Decimal(str(total))
