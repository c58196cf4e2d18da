"""examples/framework_trace.py runs a framework agent against the fake provider and
shows the trace the local Infinium API received."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
pytest_plugins = ["integrations_support"]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "framework_trace.py"


@pytest.mark.parametrize(
    ("framework", "module", "name"),
    [
        ("agents", "agents", "Agent workflow"),
        ("langgraph", "langgraph", "LangGraph"),
        ("pydantic-ai", "pydantic_ai", "invoke_agent calculator"),
    ],
)
def test_example_shows_one_framework_run_as_a_trace(
    fake: Any, framework: str, module: str, name: str
) -> None:
    pytest.importorskip(module)
    env = dict(os.environ, OPENAI_BASE_URL=fake.openai_base_url, OPENAI_API_KEY="x")
    env.pop("INFINIUM_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--framework", framework, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "answer: Echo from gpt-4o-mini: 18"  # add(9, 9): the fake's numbers
    assert lines[1] == f"trace {name!r}: 3 steps"
    trace = json.loads(lines[-1])
    assert [s["action"] for s in trace["steps"]] == ["llm_inference", "tool_use", "llm_inference"]
    assert trace["steps"][1]["tool_call"]["tool_name"] == "add"
    usage = trace["llm_usage"]
    calls = [s["llm_call"] for s in trace["steps"] if "llm_call" in s]
    assert usage["prompt_tokens"] == sum(c["prompt_tokens"] for c in calls) > 0
    assert usage["completion_tokens"] == sum(c["completion_tokens"] for c in calls) == 8
    assert f"tokens: {usage['prompt_tokens']} in / 8 out" in lines
