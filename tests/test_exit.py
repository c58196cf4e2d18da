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

import sys

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
