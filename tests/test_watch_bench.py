"""The watch() overhead benchmark (benches/watch_overhead.py) runs: a smoke run with
a handful of calls, checked for its rows only (speed is measured there, never
asserted here)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("openai")
pytest.importorskip("anthropic")

SCRIPT = pathlib.Path(__file__).parent.parent / "benches" / "watch_overhead.py"


def test_watch_overhead_bench_smoke_run() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--calls", "3", "--rounds", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    assert {(r["transport"], r["scope"]) for r in rows} == {
        (t, s) for t in ("loopback", "replay", "stub") for s in ("untraced", "traced")
    }
    assert len({r["entry point"] for r in rows}) == 5
    assert all(r["unwatched_us"] > 0 and r["watched_us"] > 0 for r in rows)
