"""The runtime and connection pools survive os.fork(): the child gets fresh
ones on first use, the parent is unaffected, nothing deadlocks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import CaptureServer

SCRIPT = r"""
import asyncio, os, sys
from infinium import AsyncInfiniumClient, InfiniumClient
kw = dict(agent_id="3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15", agent_secret="secret-123",
          base_url=sys.argv[1], enable_rate_limiting=False, max_retries=0, timeout=5)
c = InfiniumClient(**kw)
c.send_task("parent-before", "d", 1)
pids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            c.send_task("child-%d" % i, "d", 1)
            asyncio.run(AsyncInfiniumClient(**kw).send_task("child-async-%d" % i, "d", 1))
            os._exit(0)
        except BaseException as e:
            print("child failed:", repr(e), flush=True)
            os._exit(1)
    pids.append(pid)
codes = [os.waitpid(p, 0)[1] for p in pids]
c.send_task("parent-after", "d", 1)
print("codes", codes)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
def test_clients_work_in_forked_children(capture_server: CaptureServer) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, capture_server.base_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "codes [0, 0, 0]" in out.stdout, out.stdout + out.stderr
    # Parent and children draw distinct idempotency keys (the child's random
    # generator is reseeded after fork).
    keys = [r.headers["idempotency-key"] for r in capture_server.requests]
    assert len(set(keys)) == len(keys) == 8
    names = sorted(r.json()["name"] for r in capture_server.requests)
    assert names == sorted(
        ["parent-before", "parent-after"]
        + [f"child-{i}" for i in range(3)]
        + [f"child-async-{i}" for i in range(3)]
    )
