"""The ``infinium_server`` fixture, used the way users do: a pytest subprocess over a
small user test file (the plugin is found through its ``pytest11`` entry point)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

USER_TESTS = textwrap.dedent(
    """
    import json
    import urllib.request

    import pytest


    def post(server, name):
        body = {"name": name, "description": "d",
                "current_datetime": "2026-01-01T00:00:00Z", "duration": 1.0}
        req = urllib.request.Request(
            f"{server.base_url}/agents/{server.agent_id}/trace",
            data=json.dumps(body).encode(),
            headers={"x-agent-id": server.agent_id, "x-agent-key": server.agent_secret,
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code


    def test_my_agent(infinium_server):
        assert post(infinium_server, "my agent") == 200
        assert infinium_server.traces()[0]["name"] == "my agent"


    def test_each_test_gets_a_fresh_server(infinium_server):
        assert infinium_server.traces() == []


    @pytest.mark.infinium_server(faults={"error_5xx": 1.0, "seed": 1})
    def test_marker_configures_faults(infinium_server):
        assert post(infinium_server, "x") == 503
        assert infinium_server.stats()["injected_5xx"] == 1


    def test_this_one_fails(infinium_server):
        post(infinium_server, "actual")
        assert infinium_server.traces()[0]["name"] == "expected"
    """
)


def test_plugin_entry_point_is_registered() -> None:
    eps = entry_points()
    if hasattr(eps, "select"):
        group = eps.select(group="pytest11")
    else:  # Python 3.9
        group = eps.get("pytest11", [])
    values = {ep.name: ep.value for ep in group}
    if "infinium" not in values:
        pytest.skip("the package is not installed (run `maturin develop`)")
    assert values["infinium"] == "infinium.pytest_plugin"


def test_fixture_in_a_user_test_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert "fixture 'infinium_server' not found" not in out
    assert "1 failed, 3 passed" in out, out
    assert "test_this_one_fails" in out
    assert "'actual' == 'expected'" in out
    assert proc.returncode == 1
