"""Sinks for the benchmark: HTTP servers that accept trace POSTs and answer 200.

Every sink is a ``Sink`` with ``start()``, ``stop()``, ``base_url`` and
``arrivals(prefix)``: the wall-clock start times of the requests whose agent
id begins with ``prefix`` (only agent ids starting with one of
``LOGGED_PREFIXES`` are recorded, so the throughput runs pay no logging).

Adding a sink is a subclass with ``start``/``stop`` (and ``arrivals`` if it
can record them). Three exist:

* ``LocalServerSink``: our local API in sink mode (``infinium.testing.LocalServer``),
  run in its own process with the Python that has our SDK.
* ``NginxSink``: nginx from a temp dir (``return 200`` with a JSON body).
* ``PythonSink``: a small asyncio HTTP/1.1 keep-alive server (fallback when
  neither is available; it is slower than the clients it measures).

``python benches/sinks.py python-sink PORT LOGFILE`` runs the fallback sink.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

#: Agent ids whose requests the sinks record (limiter and delivery checks).
LOGGED_PREFIXES = ("11111111-", "22222222-")
OK_BODY = '{"message":"ok","traceId":"%s"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, proc: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"sink process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def _parse_log(path: str, prefix: str) -> List[float]:
    """Lines ``<start epoch seconds> <uri>``; returns the start times for ``prefix``."""
    out: List[float] = []
    needle = "/agents/" + prefix
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[1].startswith(needle):
                    out.append(float(parts[0]))
    except FileNotFoundError:
        pass
    out.sort()
    return out


class Sink:
    name = "sink"
    label = "sink"
    base_url = ""
    port = 0

    def available(self) -> bool:
        return True

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def can_record(self) -> bool:
        return False

    def arrivals(self, prefix: str) -> List[float]:
        raise NotImplementedError(f"{self.name} does not record arrivals")

    def __enter__(self) -> Sink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _ProcessSink(Sink):
    """A sink run as a child process in a temp dir; records request starts."""

    proc: Optional[subprocess.Popen] = None
    dir = ""
    #: How the child is asked to stop before it is killed.
    stop_signal = signal.SIGTERM

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def can_record(self) -> bool:
        return True


class NginxSink(_ProcessSink):
    name = "nginx"
    stop_signal = signal.SIGQUIT  # graceful shutdown

    CONF = """
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    default_type application/json;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format starts '$msec $request_time $request_uri';
    map $request_uri $logged {{
        ~^/agents/(11111111|22222222)- 1;
        default 0;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        access_log {dir}/starts.log starts if=$logged;
        location / {{
            return 200 '{{"message":"ok","traceId":"$request_id"}}';
        }}
    }}
}}
"""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.label = f"nginx ({workers} worker{'s' if workers > 1 else ''})"
        self.proc: Optional[subprocess.Popen] = None
        self.dir = ""

    @staticmethod
    def binary() -> Optional[str]:
        return shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
        )

    def available(self) -> bool:
        return self.binary() is not None

    def start(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="infinium-bench-nginx-")
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.CONF.format(dir=self.dir, port=self.port, workers=self.workers))
        self.proc = subprocess.Popen(
            [self.binary() or "nginx", "-p", self.dir, "-c", conf, "-e", f"{self.dir}/error.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_port(self.port, proc=self.proc)
        except RuntimeError as e:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"nginx did not start: {e}: {err.strip()}") from None
        self.base_url = f"http://127.0.0.1:{self.port}"

    def arrivals(self, prefix: str) -> List[float]:
        # $msec is when the response was logged; start = $msec - $request_time.
        out: List[float] = []
        needle = "/agents/" + prefix
        try:
            with open(os.path.join(self.dir, "starts.log")) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[2].startswith(needle):
                        out.append(float(parts[0]) - float(parts[1]))
        except FileNotFoundError:
            pass
        out.sort()
        return out


class PythonSink(_ProcessSink):
    """Fallback: the asyncio server in this file, in its own process."""

    name = "python"
    label = "python asyncio sink"

    def __init__(self, python: Optional[str] = None) -> None:
        self.python = python or sys.executable
        self.proc: Optional[subprocess.Popen] = None
        self.dir = ""

    def start(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="infinium-bench-pysink-")
        self.port = free_port()
        self.log = os.path.join(self.dir, "starts.log")
        self.proc = subprocess.Popen(
            [self.python, os.path.abspath(__file__), "python-sink", str(self.port), self.log],
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port, proc=self.proc)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def arrivals(self, prefix: str) -> List[float]:
        return _parse_log(self.log, prefix)


_LOCAL_SERVER_SCRIPT = r"""
import json, sys
from infinium.testing import LocalServer
server = LocalServer(host="127.0.0.1", port=0, sink=True)
server.start()
url = server.base_url
url = url() if callable(url) else url
port = server.port
port = port() if callable(port) else port
print(json.dumps({"base_url": url, "port": port}), flush=True)
sys.stdin.read()          # until the harness closes our stdin
server.stop()
"""


class LocalServerSink(Sink):
    """Our local API in sink mode (``infinium.testing.LocalServer(sink=True)``)."""

    name = "local"
    label = "infinium LocalServer (sink)"

    def __init__(self, python: str) -> None:
        self.python = python
        self.proc: Optional[subprocess.Popen] = None

    def available(self) -> bool:
        try:
            r = subprocess.run(
                [self.python, "-c", "from infinium.testing import LocalServer"],
                capture_output=True,
                timeout=60,
                cwd=tempfile.gettempdir(),
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.python, "-c", _LOCAL_SERVER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=tempfile.gettempdir(),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("LocalServer sink did not start")
        info = json.loads(line)
        self.base_url = str(info["base_url"]).rstrip("/")
        self.port = int(info["port"])
        # The SDK appends /agents/... to base_url: strip a trailing API prefix
        # only if the server reports one (keep whatever it gives us).

    def stop(self) -> None:
        if self.proc is not None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --- the fallback sink itself ---------------------------------------------------


def _serve_python(port: int, log_path: str) -> None:
    import asyncio
    import uuid

    logf = open(log_path, "a", buffering=1)
    prefixes = tuple("/agents/" + p for p in LOGGED_PREFIXES)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                t = time.time()
                lines = head.split(b"\r\n")
                parts = lines[0].split()
                uri = parts[1].decode() if len(parts) > 1 else "/"
                length = 0
                close = False
                for h in lines[1:]:
                    k, _, v = h.partition(b":")
                    k = k.strip().lower()
                    if k == b"content-length":
                        length = int(v)
                    elif k == b"connection" and v.strip().lower() == b"close":
                        close = True
                if length:
                    await reader.readexactly(length)
                if uri.startswith(prefixes):
                    logf.write(f"{t:.6f} {uri}\n")
                body = (OK_BODY % uuid.uuid4()).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # no teardown noise
    asyncio.run(main())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "python-sink":
        _serve_python(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
