"""Shared by the background export tests: ``DedupServer`` (a loopback
server that stores traces by ``Idempotency-Key``, as the local API does, can
be stopped and started on the same port, and injects faults), clients, and
helpers that write spool segments directly."""

from __future__ import annotations

import random
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from infinium import InfiniumClient, _core

AGENT = "3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15"
SECRET = "sk-test-s3cr3t-value"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Listener(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: with a few dozen clients
    # connecting at once (forked children, 8 sends each) the kernel drops
    # SYNs, and a client retries a dropped SYN after 1 s, then 3 s, then 7 s.
    request_queue_size = 128


class DedupServer:
    """Stores each trace once per Idempotency-Key; optional faults."""

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        self.stored: Dict[str, bytes] = {}
        self.posts = 0
        self.duplicates = 0
        self.faults: Dict[str, int] = {"503": 0, "429": 0, "drop": 0}
        self.p503 = self.p429 = self.pdrop = 0.0
        self.missing_key = 0
        self._rng = random.Random(1234)
        self._lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None

    def start(self) -> DedupServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                key = self.headers.get("Idempotency-Key")
                with server._lock:
                    server.posts += 1
                    roll = server._rng.random()
                    if key is None:
                        server.missing_key += 1
                    if roll < server.p503:
                        fault = "503"
                    elif roll < server.p503 + server.p429:
                        fault = "429"
                    elif roll < server.p503 + server.p429 + server.pdrop:
                        fault = "drop"
                    else:
                        fault = ""
                    if fault:
                        server.faults[fault] += 1
                    # Half the dropped connections lose the answer after the
                    # trace was stored: the retry must be deduplicated.
                    store = fault == "" or (fault == "drop" and roll * 1000 % 2 < 1)
                    if store and key is not None:
                        if key in server.stored:
                            server.duplicates += 1
                        else:
                            server.stored[key] = body
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "503":
                    self._answer(503, b'{"error":"busy"}')
                elif fault == "429":
                    self._answer(429, b'{"error":"slow down"}', {"Retry-After": "0"})
                else:
                    self._answer(200, b'{"message":"Trace received","traceId":"t"}')

            def _answer(
                self, status: int, data: bytes, extra: Optional[Dict[str, str]] = None
            ) -> None:
                head = [
                    f"HTTP/1.1 {status} X",
                    "Content-Type: application/json",
                    f"Content-Length: {len(data)}",
                ]
                head += [f"{k}: {v}" for k, v in (extra or {}).items()]
                self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)

        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = _Listener(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


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


def spool_files(root: Path) -> List[Path]:
    """Segment and acknowledgement files left under a spool root."""
    return sorted(root.rglob("seg-*"))


def wait_until(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


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
