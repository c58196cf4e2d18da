"""The runtime and connection pools survive os.fork(): the child gets fresh
ones on first use, the parent is unaffected, nothing deadlocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .background_support import DedupServer, deliver_backlog
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


# --- multiprocessing.Pool.terminate(); a forked child and the spool lock ----------

POOL_SCRIPT = r"""
import multiprocessing as mp, sys
from infinium import InfiniumClient
c = InfiniumClient(agent_id="3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15", agent_secret="secret-123",
                   base_url=sys.argv[1], background=True, shutdown_timeout=0.5)

def work(i):
    c.send_task(name="w%d" % i, description="d", duration=1.0)
    return i

if __name__ == "__main__":
    # The context manager's exit is terminate(): SIGTERM to every worker.
    with mp.get_context(sys.argv[2]).Pool(4) as pool:
        assert pool.map(work, range(400)) == list(range(400))
    print("pool done", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.timeout(120)
def test_pool_terminate_loses_nothing(
    capture_server: CaptureServer, method: str, tmp_path: Path
) -> None:
    """Workers killed by ``Pool.terminate()`` first deliver what they can
    within their shutdown timeout (the default limiter allows ~25 each) and
    spool the rest, which the next client delivers."""
    script = tmp_path / "pool_script.py"  # spawn imports the main module again
    script.write_text(POOL_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), capture_server.base_url, method],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert out.returncode == 0 and "pool done" in out.stdout, out.stderr
    at_exit = capture_server.count("POST")
    assert at_exit < 400
    st = deliver_backlog(capture_server.base_url)
    names = {r.json()["name"] for r in capture_server.requests}
    assert names == {f"w{i}" for i in range(400)}
    assert st["claimed"] >= 400 - at_exit


LOCK_SCRIPT = r"""
import os, sys, time
from infinium import InfiniumClient
c = InfiniumClient(agent_id="3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15", agent_secret="sk-test-s3cr3t-value",
                   base_url=sys.argv[1], background=True, durable=True, spool_dir=sys.argv[2])
for i in range(50):
    c.send_task(name="p%d" % i, description="d", duration=1.0)
pid = os.fork()
if pid == 0:  # a child that never uses the client, and outlives its parent
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.timeout(120)
def test_a_forked_child_does_not_keep_a_dead_parents_backlog_locked(tmp_path: Path) -> None:
    srv = DedupServer()  # down while the parent runs
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_SCRIPT, srv.base_url, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    try:
        proc.kill()  # the parent dies; its child lives on
        proc.wait(10)
        srv.start()
        st = deliver_backlog(srv.base_url, spool_dir=tmp_path)
        assert len(srv.stored) == 50
        assert st["claimed"] == 50
    finally:
        os.kill(child, signal.SIGKILL)
        srv.stop()
