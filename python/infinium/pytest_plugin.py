"""pytest plugin (entry point ``pytest11: infinium``): the ``infinium_server`` fixture.

::

    def test_my_agent(infinium_server):
        client = InfiniumClient(**infinium_server.client_kwargs())
        client.send_task(name="t", description="d", duration=1.0)
        assert infinium_server.traces()[0]["name"] == "t"

Options for one test go through the ``infinium_server`` marker, whose keyword
arguments are those of :class:`infinium.testing.LocalServer`::

    @pytest.mark.infinium_server(faults={"error_5xx": 0.5, "seed": 1})
    def test_retries(infinium_server): ...
"""

from __future__ import annotations

from typing import Iterator

import pytest

from infinium.testing import LocalServer

__all__ = ["infinium_server"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "infinium_server(**kwargs): options for the infinium_server fixture "
        "(keyword arguments of infinium.testing.LocalServer)",
    )


@pytest.fixture
def infinium_server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A started local Infinium API on a free loopback port, stopped after the test."""
    marker = request.node.get_closest_marker("infinium_server")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    with LocalServer(**kwargs) as server:
        yield server
