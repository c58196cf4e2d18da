"""The fake provider the tests point the real provider packages at: the shipped
``infinium.testing.FakeProvider`` (implemented in ``infinium._internal.fake_provider``,
whose docstring lists the endpoints and the errors on demand)."""

from infinium._internal.fake_provider import FakeProvider, ProviderRequest

__all__ = ["FakeProvider", "ProviderRequest"]
