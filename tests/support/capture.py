"""``CaptureServer``: a threaded HTTP/1.1 server on 127.0.0.1 that records
every request and answers from a script, for exact checks of what the SDK
puts on the wire."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Union


@dataclass
class Captured:
    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What the capture server answers. ``drop=True`` closes the connection
    without answering; ``delay`` sleeps first."""

    status: int = 200
    body: Union[bytes, Dict[str, Any], None] = None
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


Responder = Callable[[Captured], Reply]


def api_reply(req: Captured, prompt_content: str = "Hi {{name}}") -> Reply:
    """The Infinium API's answer as the differential tests script it: a
    prompt (``prompt_content``) for Prompt Studio, a received trace otherwise."""
    if req.path.startswith("/api/v1/prompts/"):
        return Reply(
            200,
            {
                "promptId": "p",
                "name": "greet",
                "version": 2,
                "content": prompt_content,
                "createdAt": "2026-01-01T00:00:00Z",
            },
        )
    return Reply(200, {"message": "Trace received", "traceId": "t-1"})


def _default_reply(req: Captured) -> Reply:
    if req.method == "POST" and req.path.endswith("/trace"):
        return Reply(200, {"message": "Trace received", "traceId": str(uuid.uuid4())})
    return Reply(200, {"message": "ok"})


class CaptureServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 recording every request.

    With ``tls`` it speaks HTTPS with that context, and its URLs name
    ``host`` (which the certificate must cover; ``localhost`` resolves here)."""

    def __init__(self, tls: Optional[ssl.SSLContext] = None, host: str = "127.0.0.1") -> None:
        self.requests: List[Captured] = []
        self.responder: Responder = _default_reply
        self._script: List[Reply] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Without it, header and body go out as two small writes and
            # Nagle + delayed ACK add ~40 ms to every request.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Captured(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                with server._lock:
                    server.requests.append(req)
                    reply = server._script.pop(0) if server._script else None
                if reply is None:
                    reply = server.responder(req)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                payload = reply.body
                data = json.dumps(payload).encode() if isinstance(payload, dict) else payload or b""
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if data and "Content-Type" not in reply.headers:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if tls is not None:
            # The handshake runs in the handler's thread on first read, so a
            # client that never completes one cannot stall the accept loop.
            self._httpd.socket = tls.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = self._httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.base_url = self.url + "/api/v1"
        # A short poll: shutdown() waits up to one interval.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order."""
        with self._lock:
            self._script.extend(replies)

    def count(self, method: Optional[str] = None) -> int:
        return sum(1 for r in self.requests if method is None or r.method == method)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
