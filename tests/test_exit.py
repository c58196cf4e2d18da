"""The interpreter exits cleanly while a runtime thread is inside Python.

An async call's answer reaches its event loop from a tokio worker through
``loop.call_soon_threadsafe``, which releases the GIL to write to the loop's
self-pipe. If the program ends in that window (the loop has already run the
callback), CPython finalises while the worker is inside Python, and ends the
worker with ``pthread_exit`` when it takes the GIL back, which aborts the
process when it unwinds through Rust frames: rarely, but a real abort at exit
(seen as exit status -6 in about one run in fifty of a plain async script).

The loop below widens that window to 300 ms, deterministically: its
``call_soon_threadsafe`` sleeps after scheduling the callback. The interpreter
must wait for the worker to leave Python before it finalises.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from .background_support import DedupServer, deliver_backlog
from .conftest import CaptureServer, run_script

SCRIPT = r"""
import asyncio, os, sys, time
from infinium import AsyncInfiniumClient

class SlowWake(asyncio.SelectorEventLoop):
    def call_soon_threadsafe(self, *args, **kwargs):
        handle = super().call_soon_threadsafe(*args, **kwargs)
        time.sleep(0.3)  # the GIL released, as during the self-pipe write
        os.write(1, b"worker left Python\n")
        return handle

async def main():
    client = AsyncInfiniumClient("3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15", "agent-secret-42",
                                 base_url=BASE, max_retries=0, enable_rate_limiting=False)
    answer = await client.send_task("n", "d", 1.0)
    os.write(1, b"main done %d\n" % answer.status_code)

SlowWake().run_until_complete(main())
"""


def test_exit_waits_for_a_runtime_thread_inside_python(capture_server: CaptureServer) -> None:
    out = run_script(sys.executable, SCRIPT.replace("BASE", repr(capture_server.base_url)))
    # run_script raised already if the process did not exit with status 0.
    assert out.splitlines() == ["main done 200", "worker left Python"]


# --- what exit cannot deliver lands in the spool by default -------------------------

EXIT_SCRIPT = r"""
import sys
from infinium import InfiniumClient
kw = dict(agent_id="3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15", agent_secret="sk-test-s3cr3t-value",
          base_url=sys.argv[1], background=True, shutdown_timeout=1.0)
if sys.argv[2] == "off":
    kw["spool_dir"] = False
c = InfiniumClient(**kw)
for i in range(120):
    c.send_task(name=f"e{i}", description="d", duration=1.0)
"""


def _exit_run(base_url: str, spool: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, base_url, spool],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_defaults_spool_what_exit_cannot_deliver(capture_server: CaptureServer) -> None:
    """The default limiter (10/s, burst 20) cannot deliver 120 traces within
    the shutdown timeout: the rest goes to the per-user spool, and the next
    client for the same agent and URL delivers it."""
    out = _exit_run(capture_server.base_url, "default")
    at_exit = capture_server.count("POST")
    assert 0 < at_exit < 120
    assert "saved in the spool" in out.stderr, out.stderr
    root = Path(os.environ["XDG_CACHE_HOME"]) / "infinium" / "spool"
    assert list(root.rglob("seg-*.log"))
    st = deliver_backlog(capture_server.base_url)
    # (A send cut short at exit may have reached the server: it is spooled
    # and sent again, with the same idempotency key.)
    assert 120 - at_exit <= st["claimed"] <= 120 - at_exit + 8
    names = {r.json()["name"] for r in capture_server.requests}
    assert names == {f"e{i}" for i in range(120)}
    assert not list(root.rglob("seg-*"))


def test_spool_opt_out_loses_with_a_warning(capture_server: CaptureServer) -> None:
    out = _exit_run(capture_server.base_url, "off")
    lost = 120 - capture_server.count("POST")
    m = re.search(r"closed with (\d+) trace\(s\) undelivered and the spool off", out.stderr)
    assert m is not None, out.stderr
    # A send cut short at exit may have reached the server: counted lost.
    assert 0 < lost <= int(m.group(1)) <= lost + 8
    assert not (Path(os.environ["XDG_CACHE_HOME"]) / "infinium").exists()


# --- a close cut short still spools ----------------------------------------------------

CLOSE_SCRIPT = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from infinium import InfiniumClient
c = InfiniumClient(agent_id="3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15", agent_secret="sk-test-s3cr3t-value",
                   base_url=sys.argv[1], background=True, shutdown_timeout=60, backoff_base=0.05)
for i in range(100):
    c.send_task(name=f"c{i}", description="d", duration=1.0)
print("closing", flush=True)
try:
    c.close()
    print("closed", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_during_close_stops_waiting_but_spools() -> None:

    srv = DedupServer()  # down
    proc = subprocess.Popen(
        [sys.executable, "-c", CLOSE_SCRIPT, srv.base_url], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "closing"
    time.sleep(0.5)  # inside close(), waiting for a server that is down
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "interrupted"
    assert proc.wait(timeout=30) == 0
    srv.start()
    try:
        deliver_backlog(srv.base_url)
        assert len(srv.stored) == 100
    finally:
        srv.stop()


CANCEL_SCRIPT = r"""
import asyncio, contextlib, sys
from infinium import AsyncInfiniumClient

async def main():
    c = AsyncInfiniumClient(agent_id="3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15",
                            agent_secret="sk-test-s3cr3t-value", base_url=sys.argv[1],
                            background=True, shutdown_timeout=60, backoff_base=0.05)
    for i in range(50):
        await c.send_task(name=f"a{i}", description="d", duration=1.0)
    closing = asyncio.ensure_future(c.close())
    await asyncio.sleep(0.3)
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closing
    print("cancelled", flush=True)

asyncio.run(main())
"""


def test_a_cancelled_async_close_still_spools_before_exit() -> None:

    srv = DedupServer()  # down
    out = subprocess.run(
        [sys.executable, "-c", CANCEL_SCRIPT, srv.base_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "cancelled" in out.stdout, out.stderr
    srv.start()
    try:
        deliver_backlog(srv.base_url)
        assert len(srv.stored) == 50
    finally:
        srv.stop()
