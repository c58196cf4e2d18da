"""What the OpenAI adapters (chat completions, Responses, embeddings) share: the
provider of a client (``openai``, or ``xai`` for x.ai / Grok), and the adapter base."""

from __future__ import annotations

from typing import Any, Optional

from ._context import Adapter

__all__ = ["OpenAIBaseAdapter", "detect_provider"]


def detect_provider(client: Any) -> str:
    """``xai`` when the client's base URL mentions x.ai / grok / xai, else ``openai``."""
    try:
        base = str(getattr(client, "base_url", ""))
    except Exception:
        return "openai"
    if "x.ai" in base or "grok" in base or "xai" in base:
        return "xai"
    return "openai"


class OpenAIBaseAdapter(Adapter):
    """An OpenAI resource's adapter: a fixed provider (one patched client), or with
    ``provider=None`` (class-level patching) the provider of the resource's client."""

    def __init__(
        self,
        capture_content: bool,
        provider: Optional[str],
        estimate_cost: bool = False,
        never_stream: bool = False,
    ) -> None:
        super().__init__(capture_content, estimate_cost, never_stream)
        self.fixed_provider = provider

    def provider_of(self, owner: Any) -> str:
        """The provider of a call on the resource ``owner``."""
        if self.fixed_provider is not None:
            return self.fixed_provider
        return detect_provider(getattr(owner, "_client", None))
