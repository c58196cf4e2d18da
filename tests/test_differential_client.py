"""Client surface, differentially: small user scripts written for
infinium-o2 1.2.0 print what they observe (import paths, attributes, error
classes and messages, rendered prompts, logger names...). Each runs unchanged
under the anchor (in its own venv) and under ours against one capture server;
the outputs must be identical."""

from __future__ import annotations

import sys
from typing import Optional, Tuple

import pytest

from .conftest import Captured, CaptureServer, Reply, api_reply, run_script

PRELUDE = r"""
import asyncio, sys
BASE = sys.argv[1] if len(sys.argv) > 1 else None
AGENT = "3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15"
SECRET = "agent-secret-42"
PROMPT = "0b7a4c1e-5d2f-4e8a-9b3c-6f1d2e3a4b5c"
WHEN = "2026-11-22T04:06:00.123456Z"
"""

SCRIPTS = {
    "import_paths": r"""
from infinium.async_client import AsyncInfiniumClient
from infinium.client import InfiniumClient
import infinium, infinium.client as sync_mod, infinium.async_client as async_mod
print(AsyncInfiniumClient is infinium.AsyncInfiniumClient, InfiniumClient is infinium.InfiniumClient)
names = ["ApiResponse", "BatchResult", "TaskData", "ExecutionStep", "ErrorDetail", "ToolCall",
         "LlmCall", "LlmUsage", "ExpectedOutcome", "EnvironmentContext", "PromptContent",
         "TimeTracking", "Customer", "Support", "Sales", "Marketing", "Content", "Research",
         "Project", "Development", "Executive", "General", "InfiniumError",
         "AuthenticationError", "ValidationError", "RateLimitError", "NetworkError",
         "InfiniumTimeoutError", "ServerError", "NotFoundError", "BatchError",
         "MAX_NAME_LENGTH", "MAX_DESCRIPTION_LENGTH", "MAX_STRING_LENGTH"]
for mod in (sync_mod, async_mod):
    print([n for n in names if getattr(mod, n, None) is not getattr(infinium, n)])
""",
    "empty_base_url": r"""
from infinium import InfiniumClient, InfiniumError
c = InfiniumClient(AGENT, SECRET, base_url="", max_retries=0, enable_rate_limiting=False)
print(repr(c.base_url))
try:
    c.send_task("n", "d", 1, current_datetime=WHEN)
except InfiniumError as e:
    print("not sent:", isinstance(e, InfiniumError))
""",
    "connection_refused": r"""
import socket
from infinium import InfiniumClient, NetworkError
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
c = InfiniumClient(AGENT, SECRET, base_url=f"http://127.0.0.1:{port}", max_retries=0,
                   enable_rate_limiting=False)
try:
    c.send_task("n", "d", 1, current_datetime=WHEN)
except NetworkError as e:
    print(type(e).__name__, str(e), e.status_code, isinstance(e.original_error, Exception))
""",
    "prompt_rendering": r"""
from infinium import InfiniumClient
c = InfiniumClient(AGENT, SECRET, base_url=BASE, max_retries=0, enable_rate_limiting=False)
for variables in (None, {}, {"name": "Ada"}, {"name": None}, {"name": "", "other": "\\1 \\g<0>"},
                  {"other": "{{name}}"}):
    p = c.get_prompt(PROMPT, "prompt-key-1", version=2, variables=variables)
    print(repr(p.rendered_content), repr(p.content))
""",
    "rate_not_positive": r"""
from infinium import InfiniumClient, AsyncInfiniumClient
for cls in (InfiniumClient, AsyncInfiniumClient):
    for rate in (0, -1, 0.0):
        try:
            cls(AGENT, SECRET, base_url=BASE, requests_per_second=rate)
        except ValueError as e:
            print(cls.__name__, rate, "ValueError:", e)
    # Without rate limiting the rate is not looked at.
    print(cls(AGENT, SECRET, base_url=BASE, requests_per_second=0, enable_rate_limiting=False).base_url)
""",
    "async_reuse_after_close": r"""
from infinium import AsyncInfiniumClient
async def main():
    ac = AsyncInfiniumClient(AGENT, SECRET, base_url=BASE, max_retries=0, enable_rate_limiting=False)
    async with ac as entered:
        print(entered is ac, (await ac.send_task("first", "d", 1, current_datetime=WHEN)).message)
    print((await ac.send_task("after close", "d", 1, current_datetime=WHEN)).message)
    async with ac:
        print((await ac.send_task("second with", "d", 1, current_datetime=WHEN)).message)
    await ac.close()
    await ac.close()
asyncio.run(main())
""",
    "logger_names": r"""
import logging
from infinium import InfiniumClient, AsyncInfiniumClient
class Show(logging.Handler):
    def emit(self, record):
        print(record.name, record.levelname, record.getMessage().replace(BASE, "BASE"))
logging.getLogger("infinium").addHandler(Show())
logging.getLogger("infinium").setLevel(logging.INFO)
c = InfiniumClient(AGENT, SECRET, base_url=BASE, max_retries=0, enable_rate_limiting=False)
print(c.logger.name)
c.send_task("sync", "d", 1, current_datetime=WHEN)
async def main():
    ac = AsyncInfiniumClient(AGENT, SECRET, base_url=BASE, max_retries=0, enable_rate_limiting=False)
    print(ac.logger.name)
    await ac.send_task("async", "d", 1, current_datetime=WHEN)
    await ac.close()
asyncio.run(main())
""",
    "timeout_none": r"""
from infinium import InfiniumClient, AsyncInfiniumClient
c = InfiniumClient(AGENT, SECRET, base_url=BASE, timeout=None, max_retries=0)
print(c.timeout, c.send_task("no timeout", "d", 1, current_datetime=WHEN).message)
async def main():
    ac = AsyncInfiniumClient(AGENT, SECRET, base_url=BASE, timeout=None, max_retries=0)
    print(ac.timeout, (await ac.send_task("no timeout", "d", 1, current_datetime=WHEN)).message)
    await ac.close()
asyncio.run(main())
""",
    "attributes_changed_after_construction": r"""
from infinium import InfiniumClient, AsyncInfiniumClient
OTHER = "c56a4180-65aa-42ec-a945-5fd21dec0538"
c = InfiniumClient(AGENT, SECRET, base_url=BASE + "/old", max_retries=0, enable_rate_limiting=False)
c.agent_id, c.agent_secret, c.base_url, c.user_agent = OTHER, "new-secret-99", BASE, "ua/2"
print(c.send_task("changed", "d", 1, current_datetime=WHEN).message)
async def main():
    ac = AsyncInfiniumClient(AGENT, SECRET, base_url=BASE + "/old", max_retries=0)
    ac.base_url, ac.agent_secret = BASE, "async-secret-7"
    print((await ac.send_task("async changed", "d", 1, current_datetime=WHEN)).message)
    await ac.close()
asyncio.run(main())
""",
}


def reply(req: Captured) -> Reply:
    return api_reply(req, "Hi {{name}}, {{other}}!")


COMPARED_HEADERS = ("user-agent", "x-agent-id", "x-agent-key", "x-prompt-id", "x-prompt-key")


def request_key(r: Captured) -> Tuple[str, str, bytes, Tuple[Optional[str], ...]]:
    return (r.method, r.path, r.body, tuple(r.headers.get(h) for h in COMPARED_HEADERS))


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_client_behaves_as_the_anchor(
    case: str, capture_server: CaptureServer, anchor_python: str
) -> None:
    capture_server.responder = reply
    script = PRELUDE.replace(
        "sys.argv[1] if len(sys.argv) > 1 else None", repr(capture_server.base_url)
    )
    script += SCRIPTS[case]
    anchor_out = run_script(anchor_python, script)
    anchor_bodies = [request_key(r) for r in capture_server.requests]
    capture_server.requests.clear()
    ours_out = run_script(sys.executable, script)
    ours_bodies = [request_key(r) for r in capture_server.requests]
    assert ours_out == anchor_out
    assert anchor_out.strip(), "the script printed nothing"
    assert sorted(ours_bodies) == sorted(anchor_bodies)
