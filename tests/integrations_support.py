"""What the framework-adapter tests share: the real local API, the fake provider,
and readers of the traces the API received."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Tuple

import pytest

from fake_provider import FakeProvider
from infinium.testing import LocalServer


@pytest.fixture
def api() -> Iterator[LocalServer]:
    """The project's local Infinium API (a real HTTP server on 127.0.0.1)."""
    with LocalServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    """The fake LLM provider the frameworks' OpenAI clients are pointed at."""
    with FakeProvider() as provider:
        yield provider


def actions(trace: Dict[str, Any]) -> List[Tuple[int, str, str]]:
    """``(step_number, action, description)`` of every step, in order."""
    return [(s["step_number"], s["action"], s["description"]) for s in trace.get("steps") or []]


def token_sums(trace: Dict[str, Any]) -> Tuple[int, int]:
    """Prompt and completion tokens summed over the trace's ``llm_inference`` steps."""
    prompt = completion = 0
    for step in trace.get("steps") or []:
        call = step.get("llm_call")
        if call:
            prompt += call.get("prompt_tokens") or 0
            completion += call.get("completion_tokens") or 0
    return prompt, completion


def usage_totals(trace: Dict[str, Any]) -> Tuple[int, int, int]:
    """The trace's aggregate ``llm_usage``: prompt, completion, calls."""
    usage = trace["llm_usage"]
    return usage["prompt_tokens"], usage["completion_tokens"], usage["api_calls_count"]


def tool_steps(trace: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [s for s in trace.get("steps") or [] if s["action"] == "tool_use"]
