"""A sync call blocked on the network still answers Ctrl-C promptly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .conftest import CaptureServer, Reply

SCRIPT = """
import signal, sys, time
# What an interactive Python has; a parent started in the background (a CI
# runner, `cmd &`) may hand the child SIGINT ignored, and Python then keeps it so.
signal.signal(signal.SIGINT, signal.default_int_handler)
from infinium import InfiniumClient
c = InfiniumClient(agent_id="3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15", agent_secret="secret-123",
                   base_url=sys.argv[1], timeout=60, max_retries=0)
print("sending", flush=True)
try:
    c.send_task("n", "d", 1)
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted %.3f" % time.monotonic(), flush=True)
"""


def test_sigint_interrupts_a_blocked_send(capture_server: CaptureServer) -> None:
    capture_server.responder = lambda req: Reply(200, delay=20)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, capture_server.base_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "sending"
    deadline = time.monotonic() + 10
    while capture_server.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert capture_server.count() == 1  # blocked inside the request now
    time.sleep(0.2)
    sent_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    line = proc.stdout.readline().strip()
    proc.wait(timeout=10)
    assert line.startswith("interrupted"), line
    assert float(line.split()[1]) - sent_at < 0.5
    assert proc.returncode == 0
