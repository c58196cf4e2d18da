"""The disk spool of background export never loses a trace it could keep:
the default directory, durable mode without ``spool_dir``, the backlog of a
killed process (claimed at construction, waited for by ``flush``), damaged
segments and acknowledgement files, a full disk, a deleted directory,
``max_spool_bytes``, and ``flush()`` answering False after drops.

Every test talks to the loopback ``DedupServer`` of ``test_background`` and
writes its spool under a temporary directory (conftest gives every test its
own ``XDG_CACHE_HOME``)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, List

import pytest

from infinium import ConfigurationError, InfiniumClient

from .background_support import (
    AGENT,
    SECRET,
    TRACE,
    DedupServer,
    bg_client,
    deliver_backlog,
    encode_record,
    orphan_dir,
    running,
    send_many,
    spool_files,
    wait_until,
    write_segment,
)

server = pytest.fixture(running, name="server")


def default_root() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "infinium" / "spool"


def _run(body: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **kw,
    )


def _keys_until_done(proc: subprocess.Popen[str]) -> List[str]:
    keys: List[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.strip()
        if line == "done":
            return keys
        keys.append(line)
    raise AssertionError(f"the script ended early: {proc.stderr.read() if proc.stderr else ''}")


KILLED_DURABLE = """
    import sys, time
    from infinium import InfiniumClient
    c = InfiniumClient(agent_id="{agent}", agent_secret="{secret}", base_url="{url}",
                       background=True, durable=True, backoff_base=0.02{extra})
    for i in range({n}):
        print(c.send_task(name=f"k{{i}}", description="d", duration=1.0).data["idempotency_key"])
    print("done", flush=True)
    time.sleep(60)
"""


def _killed_durable_process(server: DedupServer, n: int, extra: str = "") -> List[str]:
    """A ``durable=True`` process that queued ``n`` traces while the server
    was down, then was SIGKILLed: the keys it was given."""
    server.stop()
    proc = _run(
        KILLED_DURABLE.format(agent=AGENT, secret=SECRET, url=server.base_url, n=n, extra=extra)
    )
    try:
        keys = _keys_until_done(proc)
    finally:
        proc.kill()
        proc.wait(10)
    server.start()
    return keys


# --- durable without spool_dir; the backlog of a killed process ---------------------


@pytest.mark.timeout(120)
def test_durable_without_spool_dir_survives_sigkill_in_the_default_directory(
    server: DedupServer,
) -> None:
    keys = _killed_durable_process(server, 300)
    assert len(spool_files(default_root())) >= 1
    assert deliver_backlog(server.base_url)["claimed"] == 300
    assert set(server.stored) == set(keys) and server.duplicates == 0
    assert spool_files(default_root()) == []


@pytest.mark.timeout(120)
def test_a_new_client_claims_a_killed_process_backlog_at_construction(
    server: DedupServer, tmp_path: Path
) -> None:
    keys = _killed_durable_process(server, 3000, extra=f", spool_dir=r'{tmp_path}'")
    server.stop()  # (so that the counts below cannot move yet)
    c = bg_client(server.base_url, spool_dir=tmp_path)
    try:
        # Counted at once, not when a background claim gets round to it...
        st = c.stats()
        assert st["spool_backlog"] == 3000 and st["claimed"] == 3000, st
        # ... and flush() waits for it like for any queued trace.
        assert c.flush(0.5) is False
        server.start()
        assert c.flush(60) is True
        assert set(server.stored) == set(keys) and server.duplicates == 0
        st = c.stats()
        assert st["replayed"] == 3000 and st["spool_backlog"] == 0, st
    finally:
        c.close()
    assert spool_files(tmp_path) == []


def test_spool_arguments_are_checked() -> None:
    kw: Any = dict(agent_id=AGENT, agent_secret=SECRET, background=True)
    with pytest.raises(ConfigurationError, match="durable=True") as e:
        InfiniumClient(**kw, durable=True, spool_dir=False)
    assert e.value.config_key == "spool_dir"
    for bad in (3, b"/tmp/x", "", 1.5):
        with pytest.raises(ConfigurationError, match="spool_dir") as e:
            InfiniumClient(**kw, spool_dir=bad)
        assert e.value.config_key == "spool_dir"
    for bad_size in (0, -1, True, 1.5, "1"):
        with pytest.raises(ConfigurationError, match="max_spool_bytes"):
            InfiniumClient(**kw, max_spool_bytes=bad_size)
    # An explicit spool_dir that cannot be a directory.
    with pytest.raises(ConfigurationError, match="cannot use spool_dir"):
        InfiniumClient(**kw, spool_dir=os.devnull)


def test_default_directory_follows_xdg_then_home(
    server: DedupServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.stop()
    for env in ({"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {"HOME": str(tmp_path / "home")}):
        monkeypatch.delenv("XDG_CACHE_HOME")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        c = bg_client(server.base_url, shutdown_timeout=0.1)
        send_many(c, 3)
        c.close()
        base = Path(env.get("XDG_CACHE_HOME") or Path(env["HOME"]) / ".cache")
        assert len(spool_files(base / "infinium" / "spool")) == 1, list(tmp_path.rglob("*"))
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")


def test_nothing_touches_the_disk_when_everything_is_delivered(server: DedupServer) -> None:
    c = bg_client(server.base_url)
    send_many(c, 200)
    assert c.flush(20) is True
    c.close()
    assert len(server.stored) == 200
    assert not default_root().exists()


# --- damaged segments and acknowledgement files --------------------------------------


def test_damaged_segments_cost_only_the_damaged_records(
    server: DedupServer, tmp_path: Path, caplog: Any
) -> None:
    """Torn writes, a flipped bit, a truncated file, bad lengths and a garbage
    .ack file, written into segments directly: every intact record is
    delivered, the damage is counted and reported, nothing is skipped."""
    bodies = [TRACE % i for i in range(40)]
    d = orphan_dir(tmp_path, server.base_url)
    expected: List[str] = []

    # seg 0: a flipped bit in record 2, a bad length in record 5.
    keys = write_segment(d / "seg-000000.log", bodies[:10], first=0)
    data = bytearray((d / "seg-000000.log").read_bytes())
    rec = len(encode_record(keys[0], bodies[0]))  # every record is this long
    data[2 * rec + 20] ^= 0x08
    data[5 * rec : 5 * rec + 4] = (2**31).to_bytes(4, "little")
    (d / "seg-000000.log").write_bytes(bytes(data))
    expected += [k for i, k in enumerate(keys) if i not in (2, 5)]

    # seg 1: a torn write in the middle (a crashed append, then more).
    keys = write_segment(d / "seg-000001.log", bodies[10:20], first=10)
    data = bytearray((d / "seg-000001.log").read_bytes())
    del data[3 * rec + 7 : 4 * rec]
    (d / "seg-000001.log").write_bytes(bytes(data))
    expected += [k for i, k in enumerate(keys) if i != 3]

    # seg 2: truncated in its last record.
    keys = write_segment(d / "seg-000002.log", bodies[20:30], first=20)
    with open(d / "seg-000002.log", "r+b") as fh:
        fh.truncate(10 * rec - 5)
    expected += keys[:9]

    # seg 3: intact, with an .ack file of garbage (it must not skip records).
    keys = write_segment(d / "seg-000003.log", bodies[30:40], first=30)
    (d / "seg-000003.ack").write_bytes(bytes(range(7, 250, 3)))
    expected += keys

    server.stop()  # (so that the counts below cannot move yet)
    with caplog.at_level(logging.WARNING, logger="infinium"):
        c = bg_client(server.base_url, spool_dir=tmp_path)
        try:
            st = c.stats()
            assert st["spool_backlog"] == len(expected) == 36, st
            assert st["unreadable"] == 4, st
            server.start()
            assert c.flush(30) is True
            st = c.stats()
        finally:
            c.close()
    assert sorted(server.stored) == sorted(expected) and server.duplicates == 0
    assert st["replayed"] == 36 and st["spool_backlog"] == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "damaged region" in messages and "name no record" in messages
    assert spool_files(tmp_path) == []


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.timeout(120)
def test_a_full_disk_never_leaves_a_partial_record(server: DedupServer, tmp_path: Path) -> None:
    """A file size limit (a disk that fills up mid-write): appends that do
    not fit are cut back, the segment holds only whole records."""
    server.stop()
    proc = _run(f"""
        import resource, time
        from infinium import InfiniumClient
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        c = InfiniumClient(agent_id="{AGENT}", agent_secret="{SECRET}",
                           base_url="{server.base_url}", background=True, durable=True,
                           spool_dir=r"{tmp_path}", backoff_base=0.02)
        for i in range(200):
            c.send_task(name=f"f{{i}}", description="d" * 50, duration=1.0)
        print("done", flush=True)
        time.sleep(60)
    """)
    try:
        _keys_until_done(proc)
    finally:
        proc.kill()
        proc.wait(10)
    segs = [p for p in spool_files(tmp_path) if p.suffix == ".log"]
    assert len(segs) == 1 and 0 < segs[0].stat().st_size <= 20_000
    c = bg_client(server.base_url, spool_dir=tmp_path)
    try:
        st = c.stats()
        assert st["unreadable"] == 0 and 10 < st["spool_backlog"] < 200, st
        n = st["spool_backlog"]
        server.start()
        assert c.flush(30) is True
        assert len(server.stored) == n
    finally:
        c.close()


# --- a deleted spool directory --------------------------------------------------------


def _warned(c: InfiniumClient, caplog: Any, text: str) -> bool:
    c.stats()  # hands the background warnings to the log
    return any(text in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(60)
def test_a_deleted_spool_directory_is_recreated_and_respooled(
    server: DedupServer, tmp_path: Path, caplog: Any
) -> None:
    server.stop()
    c = bg_client(server.base_url, spool_dir=tmp_path / "spool", durable=True)
    try:
        keys = send_many(c, 50)
        assert len(spool_files(tmp_path)) == 1
        with caplog.at_level(logging.WARNING, logger="infinium"):
            shutil.rmtree(tmp_path / "spool")
            assert wait_until(lambda: _warned(c, caplog, "was deleted"), 10)
        # What was in memory is on disk again, in a new directory.
        assert wait_until(lambda: len(spool_files(tmp_path)) == 1, 5)
        assert c.stats()["spool_backlog"] == 50
    finally:
        c.close()
    server.start()
    deliver_backlog(server.base_url, spool_dir=tmp_path / "spool")
    assert set(server.stored) == set(keys)


@pytest.mark.timeout(60)
def test_traces_lost_with_a_deleted_directory_are_counted_and_fail_flush(
    server: DedupServer, tmp_path: Path, caplog: Any
) -> None:
    server.stop()
    # Memory holds 10 queued and 8 in flight; the rest overflows to disk.
    c = bg_client(server.base_url, spool_dir=tmp_path, max_queue_size=10)
    try:
        send_many(c, 50)
        with caplog.at_level(logging.WARNING, logger="infinium"):
            shutil.rmtree(tmp_path)
            assert wait_until(lambda: _warned(c, caplog, "only on disk are lost"), 10)
            text = next(r.getMessage() for r in caplog.records if "only on disk" in r.getMessage())
            m = re.search(r"(\d+) trace\(s\) that were only on disk", text)
            assert m is not None and int(m.group(1)) >= 30, text
            lost = int(m.group(1))
            assert c.stats()["dropped"] == lost
            server.start()
            assert c.flush(30) is False
            assert any("dropped since the previous flush" in r.getMessage() for r in caplog.records)
        assert len(server.stored) == 50 - lost
        assert c.flush(5) is True
    finally:
        c.close()


# --- max_spool_bytes; flush after drops ---------------------------------------------------


@pytest.mark.timeout(60)
def test_max_spool_bytes_drops_the_oldest_counted_and_warned(
    server: DedupServer, tmp_path: Path, caplog: Any
) -> None:
    server.stop()
    limit = 40_000
    c = bg_client(server.base_url, spool_dir=tmp_path, max_queue_size=10, max_spool_bytes=limit)
    try:
        with caplog.at_level(logging.WARNING, logger="infinium"):
            keys = send_many(c, 1_000)
            on_disk = sum(p.stat().st_size for p in spool_files(tmp_path))
            assert 0 < on_disk <= limit
            st = c.stats()
            assert st["dropped"] > 0 and st["queued"] + st["in_flight"] <= 10 + 8
            assert _warned(c, caplog, "max_spool_bytes=40000")
        server.start()
        assert c.flush(30) is False  # some were dropped
        dropped = c.stats()["dropped"]
        assert len(server.stored) == 1_000 - dropped
        # The oldest went first: the newest all arrived.
        lost = [i for i, k in enumerate(keys) if k not in server.stored]
        assert len(lost) == dropped and max(lost) < 1_000 - 50
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_flush_is_false_when_the_queue_dropped_traces(server: DedupServer, caplog: Any) -> None:
    server.stop()
    c = bg_client(server.base_url, spool_dir=False, max_queue_size=5)
    try:
        send_many(c, 20)
        server.start()
        with caplog.at_level(logging.WARNING, logger="infinium"):
            assert c.flush(30) is False
        assert any("dropped" in r.getMessage() for r in caplog.records)
        dropped = c.stats()["dropped"]
        assert dropped >= 20 - 5 - 8 and len(server.stored) == 20 - dropped
        # Only drops since the previous flush count.
        send_many(c, 3, "later")
        assert c.flush(30) is True
    finally:
        c.close()
    names = sorted(t["name"] for t in server.stored.values())
    assert names[:3] == ["later0", "later1", "later2"] and "t19" in names
