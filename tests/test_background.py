"""Background export: queue, flush/close/stats, idempotency keys,
outage, faults, crash, exit, fork, memory, spool overflow/corruption.

Every test talks to a real loopback server: the shipped local API
(``tests/support``'s ``ApiServer``, named ``DedupServer`` here), which stores
each trace once per ``Idempotency-Key``, can be stopped and started on the
same port (an outage is a refused connection) and injects faults. The spool
tests are in ``test_spool``; the helpers both use in ``background_support``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from infinium import AsyncInfiniumClient, InfiniumClient, ValidationError

from .background_support import (
    AGENT,
    SECRET,
    TRACE,
    DedupServer,
    bg_client,
    orphan_dir,
    running,
    send_many,
    spool_files,
    wait_until,
    write_segment,
)

ROOT = Path(__file__).resolve().parent.parent
server = pytest.fixture(running, name="server")

# Python 3.12+ warns on any fork() of a process with threads (ours has the
# runtime's); these tests fork on purpose, to prove the SDK survives it.
FORK_IS_THE_POINT = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


# --- basics ----------------------------------------------------------------------


def test_queued_answer_flush_stats_and_key(server: DedupServer) -> None:
    c = bg_client(server.base_url)
    try:
        r = c.send_task(name="one", description="d", duration=1.0)
        assert r.success and r.status_code is None and r.message == "queued"
        assert r.data is not None and r.data["queued"] is True
        key = r.data["idempotency_key"]
        assert c.flush(10) is True
        assert list(server.stored) == [key]
        assert server.stored[key]["name"] == "one"
        st = c.stats()
        assert {k: st[k] for k in ("queued", "in_flight", "sent", "failed", "dropped")} == {
            "queued": 0,
            "in_flight": 0,
            "sent": 1,
            "failed": 0,
            "dropped": 0,
        }
        assert set(st) >= {
            "queued",
            "in_flight",
            "sent",
            "failed",
            "retried",
            "spooled",
            "replayed",
            "dropped",
        }
        # Bad input still raises in the caller, at once.
        with pytest.raises(ValidationError):
            c.send_task(name="", description="d", duration=1.0)
        with pytest.raises(ValidationError):
            c.send_task(name="x", description="d", duration=-1)
    finally:
        c.close()
    with pytest.raises(Exception, match="closed"):
        c.send_task(name="late", description="d", duration=1.0)


def test_decorator_auto_send_is_queued(server: DedupServer) -> None:
    c = bg_client(server.base_url)

    @c.trace("decorated")
    def work(x: int) -> int:
        return x * 2

    assert [work(i) for i in range(20)] == [i * 2 for i in range(20)]
    assert c.flush(10)
    assert len(server.stored) == 20
    c.close()


def test_foreground_sends_carry_an_idempotency_key(server: DedupServer) -> None:
    c = InfiniumClient(
        agent_id=AGENT, agent_secret=SECRET, base_url=server.base_url, enable_rate_limiting=False
    )
    r = c.send_task(name="fg", description="d", duration=1.0)
    assert r.status_code == 200 and server.missing_key == 0 and len(server.stored) == 1
    assert c.flush() is True and c.stats()["sent"] == 0
    c.close()


async def test_async_client_never_awaits_the_network(server: DedupServer) -> None:
    server.stop()  # down: a foreground send would fail or block
    c = AsyncInfiniumClient(
        agent_id=AGENT,
        agent_secret=SECRET,
        base_url=server.base_url,
        background=True,
        enable_rate_limiting=False,
        backoff_base=0.02,
    )
    t0 = time.monotonic()
    for i in range(200):
        r = await c.send_task(name=f"a{i}", description="d", duration=1.0)
        assert r.message == "queued"
    assert time.monotonic() - t0 < 2.0
    assert await c.flush(0.2) is False
    server.start()
    assert await c.flush(20) is True
    assert len(server.stored) == 200
    await c.close()


# --- outage, faults ---------------------------------------------------------------


@pytest.mark.timeout(120)
def test_outage_then_everything_exactly_once() -> None:
    srv = DedupServer()  # not started: connections are refused
    c = bg_client(srv.base_url)
    keys = send_many(c, 10_000)
    time.sleep(2.0)
    assert c.stats()["sent"] == 0
    srv.start()
    try:
        assert c.flush(90) is True
        st = c.stats()
        assert set(srv.stored) == set(keys) and len(keys) == 10_000
        assert srv.duplicates == 0
        assert st["sent"] == 10_000 and st["dropped"] == 0 and st["failed"] == 0
        assert st["retried"] > 0
    finally:
        c.close()
        srv.stop()


@pytest.mark.timeout(120)
def test_faults_everything_exactly_once_and_stats_consistent(server: DedupServer) -> None:
    # Half the dropped connections lose the answer after the trace was
    # stored: the retry must be deduplicated.
    faults = {"error_5xx": 0.20, "rate_429": 0.05, "drop": 0.025, "drop_answer": 0.025}
    server.set_faults({**faults, "retry_after": 0, "seed": 1234})
    c = bg_client(server.base_url, max_retries=3, backoff_base=0.005)
    keys = send_many(c, 10_000)
    try:
        assert c.flush(90) is True
        st = c.stats()
        assert set(server.stored) == set(keys)
        assert st["sent"] == 10_000 and st["failed"] == 0 and st["dropped"] == 0
        # Every post the server saw was a delivery or a retried failure.
        assert server.posts == st["sent"] + st["retried"]
        faults = sum(server.faults.values())
        assert st["retried"] == faults > 0
        assert server.faults["429"] > 0 and server.faults["drop"] > 0
    finally:
        c.close()


def test_permanent_rejection_counts_failed(server: DedupServer) -> None:
    c = InfiniumClient(
        agent_id=AGENT,
        agent_secret="wrong-secret-x",
        base_url=server.base_url,
        background=True,
        enable_rate_limiting=False,
    )
    try:
        # The server answers 401 to the wrong secret.
        send_many(c, 3)
        assert c.flush(10) is True
        st = c.stats()
        assert st["failed"] == 3 and st["sent"] == 0
    finally:
        c.close()


def test_an_unusable_base_url_keeps_traces_rather_than_dropping_them(
    server: DedupServer, tmp_path: Path
) -> None:
    """A base URL that is not http(s) fails each foreground send at once (not
    retried); in the background it is not the trace's fault: nothing is counted
    failed, and on close what is queued goes to the spool. A client with the
    right URL does not take it (another target); `infinium replay --to` does."""
    bad = "api.example.com/v1"
    c = InfiniumClient(
        agent_id=AGENT,
        agent_secret=SECRET,
        base_url=bad,
        background=True,
        spool_dir=str(tmp_path),
        shutdown_timeout=0.5,
        backoff_base=0.01,
        enable_rate_limiting=False,
    )
    try:
        send_many(c, 3)
        assert c.flush(1.0) is False
        st = c.stats()
        assert st["failed"] == 0 and st["sent"] == 0 and st["retried"] > 0, st
    finally:
        c.close()
    fixed = bg_client(server.base_url, spool_dir=tmp_path)
    assert fixed.stats()["spool_backlog"] == 0
    fixed.close()
    from infinium._replay import replay_main

    argv = [str(tmp_path), "--base-url", bad, "--to", server.base_url, "--agent-secret", SECRET]
    assert replay_main([*argv, "--no-rate-limit", "-q"]) == 0
    assert sorted(t["name"] for t in server.stored.values()) == ["t0", "t1", "t2"]
    assert spool_files(tmp_path) == []


# --- memory -------------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.timeout(120)
def test_memory_bounded_when_server_down_without_spool(caplog: Any) -> None:
    srv = DedupServer()  # never started
    c = bg_client(srv.base_url, max_queue_size=10_000, spool_dir=False)
    send_many(c, 10_000, "warm")
    before = _rss_kib()
    with caplog.at_level(logging.WARNING, logger="infinium"):
        send_many(c, 100_000)
    after = _rss_kib()
    st = c.stats()
    held = st["queued"] + st["in_flight"]
    assert held <= 10_000 + 8
    assert st["dropped"] == 110_000 - held
    # The queue was full before: 100,000 more traces must not grow memory
    # by more than a few MiB of noise.
    growth_mib = (after - before) / 1024
    print(f"RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB")
    assert growth_mib < 20, growth_mib
    assert any("dropped" in r.getMessage() for r in caplog.records)
    # Rate-limited: not one warning per dropped trace.
    assert sum("dropped" in r.getMessage() for r in caplog.records) < 5
    t0 = time.monotonic()
    c.shutdown_timeout = 0.2
    c.close()
    assert time.monotonic() - t0 < 2.5


# --- spool ------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_overflow_goes_to_spool_and_comes_back(server: DedupServer, tmp_path: Path) -> None:
    server.stop()
    c = bg_client(server.base_url, max_queue_size=100, spool_dir=tmp_path)
    keys = send_many(c, 2_000)
    st = c.stats()
    assert st["spooled"] >= 1_800 and st["dropped"] == 0
    server.start()
    assert wait_until(lambda: len(server.stored) == 2_000, 60), c.stats()
    assert c.flush(10)
    assert wait_until(lambda: c.stats()["spool_backlog"] == 0, 10)
    st = c.stats()
    assert set(server.stored) == set(keys) and server.duplicates == 0
    assert st["replayed"] >= 1_800 and st["sent"] == 2_000
    c.close()
    # Nothing left behind.
    assert spool_files(tmp_path) == []


def test_backlog_with_torn_tail_is_replayed(
    server: DedupServer, tmp_path: Path, caplog: Any
) -> None:
    d = orphan_dir(tmp_path, server.base_url)
    seg = d / "seg-000000.log"
    write_segment(seg, [TRACE % i for i in range(3)])
    with open(seg, "ab") as fh:
        fh.write(b"\x40\x00\x00\x00\x01\x02")  # a torn header+payload
    server.stop()  # (so that the counts below cannot move yet)
    with caplog.at_level(logging.WARNING, logger="infinium"):
        c = bg_client(server.base_url, spool_dir=tmp_path)
        assert c.stats()["spool_backlog"] == 3
        server.start()
        assert c.flush(20) is True
        assert len(server.stored) == 3
        st = c.stats()
        c.close()
    assert st["replayed"] == 3 and st["unreadable"] == 1 and server.duplicates == 0
    assert any("damaged region" in r.getMessage() for r in caplog.records)
    assert not d.exists()


def test_two_clients_share_one_backlog_exactly_once(server: DedupServer, tmp_path: Path) -> None:
    server.stop()
    first = bg_client(server.base_url, spool_dir=tmp_path, shutdown_timeout=0.2)
    keys = send_many(first, 1_500)
    first.close()  # server down: all of it goes to the spool
    server.start()
    a = bg_client(server.base_url, spool_dir=tmp_path)
    b = bg_client(server.base_url, spool_dir=tmp_path)
    assert wait_until(lambda: len(server.stored) == 1_500, 60)
    time.sleep(0.5)
    assert server.duplicates == 0 and set(server.stored) == set(keys)
    assert a.stats()["replayed"] + b.stats()["replayed"] == 1_500
    a.close()
    b.close()


# --- crash, exit (subprocesses) ----------------------------------------------------


def _env() -> Dict[str, str]:
    # Read when the test runs: the cache directory is the test's own.
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _script(body: str) -> List[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


@pytest.mark.timeout(120)
def test_crash_durable_spool_loses_nothing(server: DedupServer, tmp_path: Path) -> None:
    server.stop()  # down while the process runs (its backlog is for this URL)
    proc = subprocess.Popen(
        _script(f"""
            import sys, time
            from infinium import InfiniumClient
            c = InfiniumClient(agent_id="{AGENT}", agent_secret="{SECRET}",
                               base_url="{server.base_url}", background=True,
                               spool_dir=r"{tmp_path}", durable=True, backoff_base=0.02)
            for i in range(5000):
                r = c.send_task(name=f"c{{i}}", description="d", duration=1.0)
                sys.stdout.write(r.data["idempotency_key"] + "\\n")
            sys.stdout.write("done\\n")
            sys.stdout.flush()
            time.sleep(60)
        """),
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    accepted: List[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.strip()
        if line == "done":
            break
        accepted.append(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert len(accepted) == 5000
    server.start()
    c = bg_client(server.base_url, spool_dir=tmp_path)
    try:
        assert wait_until(lambda: len(server.stored) >= 5000, 60), len(server.stored)
        assert wait_until(lambda: c.stats()["spool_backlog"] == 0, 10)
        assert set(server.stored) == set(accepted)
        assert server.duplicates == 0
        assert c.stats()["replayed"] == 5000
    finally:
        c.close()
    assert spool_files(tmp_path) == []


@pytest.mark.timeout(60)
def test_exit_without_close_delivers(server: DedupServer) -> None:
    t0 = time.monotonic()
    subprocess.run(
        _script(f"""
            from infinium import InfiniumClient
            c = InfiniumClient(agent_id="{AGENT}", agent_secret="{SECRET}",
                               base_url="{server.base_url}", background=True,
                               enable_rate_limiting=False, shutdown_timeout=5.0)
            for i in range(300):
                c.send_task(name=f"e{{i}}", description="d", duration=1.0)
        """),
        check=True,
        env=_env(),
        timeout=30,
    )
    assert time.monotonic() - t0 < 5.0 + 3.0
    assert len(server.stored) == 300


@pytest.mark.timeout(60)
def test_exit_with_server_down_is_bounded_and_spools(server: DedupServer, tmp_path: Path) -> None:
    server.stop()
    t0 = time.monotonic()
    subprocess.run(
        _script(f"""
            import time
            from infinium import InfiniumClient
            c = InfiniumClient(agent_id="{AGENT}", agent_secret="{SECRET}",
                               base_url="{server.base_url}", background=True,
                               spool_dir=r"{tmp_path}", shutdown_timeout=1.0,
                               backoff_base=0.05)
            for i in range(300):
                c.send_task(name=f"x{{i}}", description="d", duration=1.0)
            print("submitted", time.monotonic(), flush=True)
        """),
        check=True,
        env=_env(),
        timeout=30,
    )
    elapsed = time.monotonic() - t0
    # Interpreter start-up (~0.3 s) + shutdown_timeout + 1 s.
    assert elapsed < 1.0 + 1.0 + 1.0, elapsed
    server.start()
    c = bg_client(server.base_url, spool_dir=tmp_path)
    try:
        assert wait_until(lambda: len(server.stored) == 300, 30)
        assert c.stats()["replayed"] == 300 or wait_until(lambda: c.stats()["replayed"] == 300, 5)
    finally:
        c.close()


# --- fork ---------------------------------------------------------------------------

_fork_client: Optional[InfiniumClient] = None


def _child_send(n: int) -> None:
    assert _fork_client is not None
    for i in range(n):
        _fork_client.send_task(name=f"child{os.getpid()}-{i}", description="d", duration=1.0)
    # No close(), no flush(): the multiprocessing finalizer delivers.


@pytest.mark.timeout(60)
@FORK_IS_THE_POINT
def test_fork_children_get_fresh_exporters(server: DedupServer) -> None:
    global _fork_client
    c = bg_client(server.base_url)
    _fork_client = c
    try:
        send_many(c, 50, "parent-before")
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_child_send, args=(100,)) for _ in range(4)]
        for p in procs:
            p.start()
        send_many(c, 50, "parent-during")
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        assert c.flush(20)
        # What a child could not deliver within its shutdown_timeout is in
        # the spool, which this process (same agent and URL) takes over.
        assert wait_until(lambda: len(server.stored) == 500, 30), len(server.stored)
        assert c.flush(20)  # (now covering what it took over)
        st = c.stats()
        assert st["sent"] == 100 + st["claimed"], st
        # No child sent the parent's queue again; only a send a child cut
        # short at exit (and spooled) may arrive twice, deduplicated by key.
        assert server.duplicates <= st["claimed"]
    finally:
        _fork_client = None
        c.close()


@pytest.mark.timeout(60)
@FORK_IS_THE_POINT
def test_plain_os_fork_child_exits_cleanly(server: DedupServer) -> None:
    c = bg_client(server.base_url)
    send_many(c, 10, "p")
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            send_many(c, 25, "k")
            code = 0 if c.flush(20) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert c.flush(20)
    assert len(server.stored) == 35
    c.close()


def test_async_close_and_stats(server: DedupServer) -> None:
    async def main() -> Dict[str, int]:
        c = AsyncInfiniumClient(
            agent_id=AGENT,
            agent_secret=SECRET,
            base_url=server.base_url,
            background=True,
            enable_rate_limiting=False,
        )
        for i in range(30):
            await c.send_task(name=f"s{i}", description="d", duration=1.0)
        await c.close()
        return c.stats()

    st = asyncio.run(main())
    assert len(server.stored) == 30
    assert st == {k: 0 for k in st}  # closed client reports nothing queued


# --- infinium replay DIR -----------------------------------------------------------


def test_replay_cli_delivers_backlog(server: DedupServer, tmp_path: Path, capsys: Any) -> None:
    from infinium._replay import agents_in, replay_main

    server.stop()
    first = bg_client(server.base_url, spool_dir=tmp_path, shutdown_timeout=0.2)
    keys = send_many(first, 400)
    first.close()
    assert agents_in(str(tmp_path)) == [AGENT]
    # Server still down: nothing delivered, exit status 1, backlog kept.
    argv = [str(tmp_path), "--base-url", server.base_url, "--agent-secret", SECRET]
    assert replay_main([*argv, "--stall-timeout", "0.5", "--no-rate-limit"]) == 1
    assert "400 left in the spool" in capsys.readouterr().out
    server.start()
    # Through the console script's entry point: `infinium replay DIR ...`.
    from infinium.cli import main as cli_main

    assert cli_main(["replay", *argv, "--no-rate-limit"]) == 0
    captured = capsys.readouterr()
    assert "replayed 400 trace(s), 0 rejected by the server, 0 left" in captured.out
    assert "400/400" in captured.err
    assert set(server.stored) == set(keys) and server.duplicates == 0
    assert spool_files(tmp_path) == []
    assert replay_main([*argv, "-q"]) == 0
    assert "nothing to replay" in capsys.readouterr().out
