"""The fake LLM provider shipped as ``infinium.testing.FakeProvider``: a loopback
HTTP server speaking enough of the OpenAI, Anthropic and Gemini APIs to try and test
``watch()`` without an API key. Its class docstring describes what it answers."""

from .server import FakeProvider
from .wire import ProviderRequest

__all__ = ["FakeProvider", "ProviderRequest"]
