"""``ForwardProxy``: an HTTP forward proxy on 127.0.0.1 that records what it
was asked (absolute-form requests, ``CONNECT`` tunnels) before passing the
bytes on to one loopback port."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Dict, List

# A name no resolver knows: only a proxy can reach it.
FAR_HOST = "infinium.test"


@dataclass
class ProxyRequest:
    line: str
    headers: Dict[str, str]


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 that sends every connection it is
    asked for to one loopback port (``FAR_HOST`` does not resolve), after
    recording the request line and headers it received."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.seen: List[ProxyRequest] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        # A short poll: close() waits up to one interval.
        self._sock.settimeout(0.01)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            raw_head, rest = head.split(b"\r\n\r\n", 1)
            lines = raw_head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.seen.append(ProxyRequest(lines[0], headers))
            method, target, version = lines[0].split(" ", 2)
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            with upstream:
                if method == "CONNECT":
                    conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    if rest:
                        upstream.sendall(rest)
                else:
                    # Forward in origin form, without the proxy's own headers,
                    # and one request per connection.
                    path = "/" + target.split("://", 1)[1].split("/", 1)[1]
                    kept = [
                        ln
                        for ln in lines[1:]
                        if not ln.lower().startswith(("proxy-", "connection:"))
                    ]
                    fwd = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close"])
                    upstream.sendall(fwd.encode("latin-1") + b"\r\n\r\n" + rest)
                pump = threading.Thread(target=_copy, args=(upstream, conn), daemon=True)
                pump.start()
                _copy(conn, upstream)
                pump.join(10)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
