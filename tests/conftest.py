"""Shared fixtures: a real loopback HTTP capture server, credentials, clients,
and the anchor SDK (``infinium-o2==1.2.0``) in a separate cached venv."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import pytest

ROOT = Path(__file__).resolve().parent.parent
ANCHOR_SPEC = "infinium-o2==1.2.0"
ANCHOR_EXTRAS = ["openai", "anthropic", "freezegun"]


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


T = TypeVar("T")


async def while_ticking(work: Awaitable[T], every: float) -> Tuple[T, int]:
    """Await ``work`` while another task ticks every ``every`` seconds; return
    its result and the tick count (a loop blocked throughout ticks ~once)."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(every)
            ticks += 1

    t = asyncio.create_task(ticker())
    try:
        return await work, ticks
    finally:
        t.cancel()


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
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
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


@pytest.fixture(autouse=True)
def _private_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test (and every process it starts) gets its own
    ``XDG_CACHE_HOME``: background export spools there by default, and no
    test may write into (or read a backlog from) the real ``~/.cache``."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def capture_server() -> Iterator[CaptureServer]:
    srv = CaptureServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def agent_id() -> str:
    return "3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15"


@pytest.fixture
def agent_secret() -> str:
    return "sk-test-s3cr3t-value"


def make_client(cls: Any, srv: CaptureServer, agent_id: str, agent_secret: str, **kw: Any) -> Any:
    kw.setdefault("enable_rate_limiting", False)
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5.0)
    return cls(agent_id=agent_id, agent_secret=agent_secret, base_url=srv.base_url, **kw)


@pytest.fixture
def client(capture_server: CaptureServer, agent_id: str, agent_secret: str) -> Iterator[Any]:
    from infinium import InfiniumClient

    c = make_client(InfiniumClient, capture_server, agent_id, agent_secret)
    yield c
    c.close()


@pytest.fixture
def async_client(capture_server: CaptureServer, agent_id: str, agent_secret: str) -> Any:
    from infinium import AsyncInfiniumClient

    return make_client(AsyncInfiniumClient, capture_server, agent_id, agent_secret)


# --- the anchor SDK in its own venv --------------------------------------------


def cache_root() -> Path:
    """Where the tests keep what they download or build across sessions."""
    return Path(
        os.environ.get("INFINIUM_TEST_CACHE")
        or os.path.join(os.path.expanduser("~"), ".cache", "infinium-tests")
    )


def _anchor_venv_dir() -> Path:
    # One per Python version: a differential test compares the two SDKs on
    # the same interpreter (reprs and stdlib parsing differ between versions).
    return cache_root() / f"anchor-venv-py{sys.version_info[0]}.{sys.version_info[1]}"


def ensure_anchor_python() -> Tuple[Optional[str], str]:
    """Path to a python with ``infinium-o2==1.2.0`` (and ``ANCHOR_EXTRAS``),
    creating a cached venv on first use. Returns (path or None, reason)."""
    explicit = os.environ.get("INFINIUM_ANCHOR_PYTHON")
    if explicit:
        return (explicit, "") if os.path.exists(explicit) else (None, f"{explicit} missing")
    venv = _anchor_venv_dir()
    py = venv / "bin" / "python"
    # The marker lists what was installed: a venv made before an extra was
    # added gets it installed (pip keeps what is there).
    marker = venv / ".ready"
    wanted = " ".join([ANCHOR_SPEC, *ANCHOR_EXTRAS])

    def ready() -> bool:
        return py.exists() and marker.exists() and marker.read_text() == wanted

    if ready():
        return str(py), ""
    lock = venv.parent / ".anchor-lock"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_EX)
        if ready():
            return str(py), ""
        try:
            if not py.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(py), "-m", "pip", "install", "-q", ANCHOR_SPEC, *ANCHOR_EXTRAS],
                check=True,
                timeout=600,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"could not install {ANCHOR_SPEC}: {exc}"
        marker.write_text(wanted)
    return str(py), ""


@pytest.fixture(scope="session")
def anchor_python() -> str:
    path, reason = ensure_anchor_python()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"anchor SDK unavailable in CI: {reason}")
        pytest.skip(f"anchor SDK unavailable: {reason}")
    return path


def run_script(
    python: str,
    script: str,
    env: Optional[Dict[str, Optional[str]]] = None,
    args: Sequence[str] = (),
) -> str:
    """Run ``script`` with ``python`` outside the repo (so ``import infinium``
    finds that interpreter's own package; for this interpreter, the package
    under test); return stdout. ``env`` adds variables; a ``None`` value
    removes one. ``args`` become ``sys.argv[1:]``."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    full_env.pop("PYTHONPATH", None)
    if python == sys.executable:
        # "Ours" is the package this test run imports: a worktree's own, not
        # whichever checkout the venv's .pth file happens to name.
        import infinium

        full_env["PYTHONPATH"] = str(Path(infinium.__file__).resolve().parent.parent)
    out = subprocess.run(
        [python, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env=full_env,
    )
    if out.returncode != 0:
        raise AssertionError(f"script failed ({python}):\n{out.stderr}")
    return out.stdout
