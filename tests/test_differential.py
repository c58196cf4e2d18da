"""The same user script, written for infinium-o2 1.2.0, run unchanged with the
anchor (in its own venv) and with ours against one capture server: the
requests must be the same (method, path, headers, body bytes incl. key order)
once generated timestamps are masked.

(A 400 is left out on purpose: the anchor wraps it as "Unexpected error: ..."
without a status and retries it; we raise it as SPEC §4 says. test_client.py
covers it.)"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Tuple

from .conftest import Captured, CaptureServer, Reply, api_reply, run_script

SCRIPT = r"""
import asyncio, sys
from infinium import *

base = sys.argv[1] if len(sys.argv) > 1 else None
AGENT = "3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15"
PROMPT = "0b7a4c1e-5d2f-4e8a-9b3c-6f1d2e3a4b5c"
WHEN = "2026-11-22T04:06:00.123456Z"
client = InfiniumClient(agent_id=AGENT, agent_secret="agent-secret-42", base_url=BASE, max_retries=0,
                        user_agent="my-agent/2.0")
client.send_task(
    name="Classify support ticket", description="Categorized an inbound ticket.", duration=1.25,
    current_datetime=WHEN, input_summary="Customer ticket: refund ✓", output_summary="refund",
    llm_usage={"model": "gpt-4o", "provider": "openai", "prompt_tokens": 100, "completion_tokens": 20,
               "total_tokens": 120, "api_calls_count": 1},
    customer={"customer_name": "Ada", "customer_email": "ada@example.com"},
)
td = InfiniumClient.create_task_data(
    name="Research", description="Multi-step research", duration=12, current_datetime=WHEN,
    steps=[ExecutionStep(1, "tool_use", "Search", duration_ms=340, output_preview="Found 3"),
           ExecutionStep(2, "llm_inference", "Analyze", duration_ms=1200,
                         llm_call=LlmCall("gpt-4o", "openai", 10, 5, 1200), metadata={"k": [1, 2.5, None]})],
    expected_outcome={"task_objective": "Sourced analysis", "required_deliverables": ["Sources"]},
    environment={"framework": "custom", "python_version": "3.12"},
    research={"research_topic": "earnings", "sources_consulted": 3, "extra_key": "dropped"},
    errors=[ErrorDetail("Timeout", "slow tool", recoverable=True, retry_count=1)],
)
client.send_task_data(td)
# steps and errors from iterators (the anchor iterates whatever it is given).
client.send_task_data(TaskData("gen", "steps from a generator", WHEN, 2.0,
    steps=(ExecutionStep(i, "a", "s%d" % i) for i in (1, 2)),
    errors=map(lambda m: ErrorDetail("E", m), ["x"])))
client.send_tasks_batch([TaskData("batch-%d" % i, "d", WHEN, float(i)) for i in range(3)], max_concurrent=2)
client.get_interpreted_task_result("c56a4180-65aa-42ec-a945-5fd21dec0538")
p = client.get_prompt(PROMPT, "prompt-key-1", version=2, variables={"name": "Ada"})
print(p.rendered_content)
async def main():
    ac = AsyncInfiniumClient(agent_id=AGENT, agent_secret="agent-secret-42", base_url=BASE, max_retries=0)
    await ac.send_task("async", "from asyncio", 0.5, current_datetime=WHEN, sales={"deal_value": 99.5})
    await ac.close()
asyncio.run(main())
for status in (401, 404):
    try:
        client.send_task("err", "d", 1, current_datetime=WHEN)
    except InfiniumError as e:
        print(type(e).__name__, e, e.status_code)
"""

IGNORED_HEADERS = {"host", "accept-encoding", "connection", "content-length", "idempotency-key"}


def reply(req: Captured) -> Reply:
    if req.method == "POST" and req.json()["name"] == "err":
        status = 401 if not ERRS else 404
        ERRS.append(req)
        return Reply(status, {"error": "bad request body"})
    return api_reply(req)


ERRS: List[Any] = []


def normalise(reqs: List[Captured]) -> List[Tuple[str, str, Dict[str, str], Any]]:
    out = []
    for r in reqs:
        headers = {k: v for k, v in r.headers.items() if k not in IGNORED_HEADERS}
        out.append((r.method, r.path, headers, r.body))
    # The batch is concurrent in ours: compare its requests as a set.
    return sorted(out, key=lambda x: (x[0], x[1], x[3]))


def test_anchor_script_runs_unchanged_with_identical_requests(
    capture_server: CaptureServer, anchor_python: str
) -> None:
    capture_server.responder = reply
    script = SCRIPT.replace("BASE", repr(capture_server.base_url))
    ERRS.clear()
    anchor_out = run_script(anchor_python, script)
    anchor_reqs = list(capture_server.requests)
    capture_server.requests.clear()
    ERRS.clear()
    ours_out = run_script(sys.executable, script)
    ours_reqs = list(capture_server.requests)
    assert ours_out == anchor_out
    assert "Hi Ada" in ours_out and "AuthenticationError" in ours_out
    assert len(ours_reqs) == len(anchor_reqs) == 11
    a, b = normalise(anchor_reqs), normalise(ours_reqs)
    for x, y in zip(a, b):
        assert x == y, f"\nanchor: {x}\nours:   {y}"
    # Every trace post of ours carries an Idempotency-Key (the anchor's don't).
    assert all("idempotency-key" in r.headers for r in ours_reqs if r.method == "POST")
    assert json.loads(ours_reqs[0].body)["name"] == "Classify support ticket"
