"""Shared by the background export tests: the loopback server (the shipped
local API, ``tests/support``'s ``ApiServer``, named ``DedupServer`` here: it
stores each trace once per ``Idempotency-Key``, can be stopped and started on
the same port and injects faults), clients, and helpers that write spool
segments directly."""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List

from infinium import InfiniumClient, _core

from .support.api import AGENT_ID as AGENT
from .support.api import AGENT_SECRET as SECRET
from .support.api import ApiServer as DedupServer

__all__ = ["AGENT", "SECRET", "DedupServer"]

#: A trace the local API accepts, with a ``%d`` for its number.
TRACE = b'{"name":"r%d","description":"d","current_datetime":"2026-01-02T03:04:05Z","duration":1}'


def running() -> Iterator[DedupServer]:
    """The ``server`` fixture of the modules that use it."""
    srv = DedupServer().start()
    yield srv
    srv.stop()


def bg_client(base_url: str, **kw: Any) -> InfiniumClient:
    kw.setdefault("enable_rate_limiting", False)
    kw.setdefault("max_retries", 2)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("backoff_base", 0.02)
    return InfiniumClient(
        agent_id=AGENT, agent_secret=SECRET, base_url=base_url, background=True, **kw
    )


def send_many(client: Any, n: int, prefix: str = "t") -> List[str]:
    keys = []
    for i in range(n):
        r = client.send_task(name=f"{prefix}{i}", description="d", duration=0.5)
        keys.append(r.data["idempotency_key"])
    return keys


def wait_until(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def spool_files(root: Path) -> List[Path]:
    """Segment and acknowledgement files left under a spool root."""
    return sorted(root.rglob("seg-*"))


def encode_record(key: str, body: bytes) -> bytes:
    """One spool record: [len][crc32(payload)][crc32 of those 8 bytes][payload],
    payload = [key length][key][body]."""
    payload = bytes([len(key)]) + key.encode() + body
    head = len(payload).to_bytes(4, "little") + zlib.crc32(payload).to_bytes(4, "little")
    return head + zlib.crc32(head).to_bytes(4, "little") + payload


def orphan_dir(root: Path, base_url: str, name: str = "99999.deadbeef") -> Path:
    """The spool directory of a dead exporter of AGENT at ``base_url``."""
    d = Path(_core.Exporter.spool_target_dir(root, AGENT, base_url)) / name
    d.mkdir(parents=True)
    (d / "lock").touch()
    return d


def write_segment(path: Path, records: List[bytes], first: int = 0) -> List[str]:
    keys = [f"00000000-0000-4000-8000-{first + i:012d}" for i in range(len(records))]
    path.write_bytes(b"".join(encode_record(k, b) for k, b in zip(keys, records)))
    return keys


def deliver_backlog(base_url: str, **kw: Any) -> Dict[str, int]:
    """A new client for AGENT at ``base_url`` takes over the backlog in the
    spool and delivers it: its stats once ``flush()`` returned True, with
    ``claimed`` as counted right after construction."""
    c = bg_client(base_url, **kw)
    try:
        claimed = c.stats()["claimed"]
        assert c.flush(60) is True
        return {**c.stats(), "claimed": claimed}
    finally:
        c.close()
