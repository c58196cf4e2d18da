"""The local API under hostile and greedy clients: timeouts, the connection
limit, credentials before bodies, unprobeable ids, paging bounds, exact
round trips, and the capacity fault (over real sockets on loopback)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from infinium.testing import LocalServer

from .support.api import Http, trace_body


def raw_head(srv: LocalServer, method: str, path: str, headers: Dict[str, str]) -> bytes:
    lines = [f"{method} /api/v1{path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# -- timeouts and the connection limit -------------------------------------------------


def test_half_sent_headers_are_closed_after_the_header_timeout() -> None:
    with LocalServer(header_timeout=0.2) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"POST /api/v1/agents/x/trace HTTP/1.1\r\nHost: x\r\n")
        # The server closes the connection (no answer): recv sees the end.
        assert read_answer(s) == b""
        s.close()
        assert Http(srv).get("/health", headers={})[0] == 200


def test_a_stalled_body_is_answered_408_and_closed_after_the_body_timeout() -> None:
    with LocalServer(body_timeout=0.2) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        auth = {"x-agent-id": srv.agent_id, "x-agent-key": srv.agent_secret}
        # 60 MB announced, a few bytes sent, then nothing.
        s.sendall(
            raw_head(
                srv,
                "POST",
                f"/agents/{srv.agent_id}/trace",
                {**auth, "Content-Length": str(60_000_000)},
            )
            + b'{"name": '
        )
        answer = read_answer(s)
        s.close()
        assert status_of(answer) == 408
        assert b"connection: close" in answer.lower()
        assert srv.traces() == []
        assert srv.stats()["client_errors"] == 1


def test_an_unauthenticated_body_is_never_read() -> None:
    with LocalServer() as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        wrong = {"x-agent-id": srv.agent_id, "x-agent-key": "not-the-key"}
        # 1 MiB announced, none of it sent: the 401 comes from the headers alone.
        s.sendall(
            raw_head(
                srv,
                "POST",
                f"/agents/{srv.agent_id}/trace",
                {**wrong, "Content-Length": str(1 << 20)},
            )
        )
        answer = read_answer(s)
        s.close()
        assert status_of(answer) == 401
        assert b"Invalid agent credentials" in answer
        assert b"connection: close" in answer.lower()


SERVER_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    soft = int(sys.argv[1])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    from infinium.testing import LocalServer
    with LocalServer() as srv:
        print(json.dumps([srv.port, srv.agent_id, srv.agent_secret]), flush=True)
        sys.stdin.read()  # until the test closes our stdin
        print(json.dumps(srv.stats()), flush=True)
    """
)


@pytest.fixture
def limited_server() -> Iterator[Any]:
    """A LocalServer in a process limited to 200 descriptors."""
    import infinium

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(infinium.__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, "200"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd="/",
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_half_sent_requests_cannot_starve_a_normal_client(limited_server: Any) -> None:
    proc = limited_server
    port, agent_id, secret = json.loads(proc.stdout.readline())
    # More half-sent requests than the server process has descriptors (the
    # default header timeout, 30 s, never expires during this test).
    held: List[socket.socket] = []
    try:
        for _ in range(300):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                break
            held.append(s)
            s.sendall(b"POST /api/v1/agents/x/trace HTTP/1.1\r\nHost: x\r\nContent-")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(
            "POST",
            f"/api/v1/agents/{agent_id}/trace",
            body=json.dumps(trace_body("normal")),
            headers={"x-agent-id": agent_id, "x-agent-key": secret},
        )
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        conn.close()
    finally:
        for s in held:
            s.close()
    out, _ = proc.communicate(timeout=10)
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["traces_stored"] == 1
    assert stats["connections_evicted"] > 0


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_stalled_unauthenticated_bodies_do_not_grow_the_server(limited_server: Any) -> None:
    proc = limited_server
    port, agent_id, _ = json.loads(proc.stdout.readline())
    before = rss_bytes(proc.pid)
    head = (
        f"POST /api/v1/agents/{agent_id}/trace HTTP/1.1\r\nHost: x\r\n"
        f"x-agent-id: {agent_id}\r\nx-agent-key: wrong-key\r\n"
        f"Content-Length: {1 << 20}\r\n\r\n"
    ).encode()
    body = b"x" * ((1 << 20) - 1)  # all but the last byte: the body stalls
    held: List[socket.socket] = []
    try:
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(s)
            try:
                s.sendall(head + body)
            except OSError:
                pass  # refused: the server closed the connection after its 401
        grown = rss_bytes(proc.pid) - before
    finally:
        for s in held:
            s.close()
    # Buffering them would take 100 MiB.
    assert grown < 40 << 20, f"the server grew by {grown >> 20} MiB"


# -- credentials -------------------------------------------------------------------------


def test_prompt_ids_cannot_be_probed_without_the_key() -> None:
    with LocalServer() as srv:
        p = srv.add_prompt("secret prompt", name="n")
        h = Http(srv)

        def ask(pid: str) -> Any:
            status, _, data = h.get(
                f"/prompts/{pid}/v/latest", headers={"x-prompt-id": pid, "x-prompt-key": "guess"}
            )
            return status, data

        assert (
            ask(str(uuid.uuid4()))
            == ask(p.prompt_id)
            == (401, {"error": "Invalid prompt credentials"})
        )
        # The agent routes too: an unknown agent id answers as a wrong key.
        unknown = str(uuid.uuid4())
        status, _, data = h.post_trace(
            agent_id=unknown, headers={"x-agent-id": unknown, "x-agent-key": "guess"}
        )
        status2, _, data2 = h.post_trace(headers={"x-agent-key": "guess"})
        assert (status, data) == (status2, data2) == (401, {"error": "Invalid agent credentials"})
        h.close()


# -- paging ------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_huge_offsets_give_an_empty_last_page(storage: str, tmp_path: Path) -> None:
    db = tmp_path / "t.db" if storage == "sqlite" else None
    with LocalServer(db=db) as srv:
        h = Http(srv)
        for i in range(3):
            assert h.post_trace(trace_body(f"t{i}"))[0] == 200
        for offset in (3, 2**63 - 1, 2**63, 2**64 - 1):
            status, _, page = h.get(f"/agents/{srv.agent_id}/traces?limit=2&offset={offset}")
            assert status == 200
            assert page["traces"] == [] and page["nextOffset"] is None, offset
            assert page["offset"] == offset and page["total"] == 3
        status, _, page = h.get(f"/agents/{srv.agent_id}/traces?limit=2&offset=1")
        assert [r["trace"]["name"] for r in page["traces"]] == ["t1", "t0"]
        assert page["nextOffset"] is None
        for bad in (str(2**64), "-1", "1e3"):
            status, _, data = h.get(f"/agents/{srv.agent_id}/traces?offset={bad}")
            assert status == 400 and "offset must be an integer" in data["error"]
        h.close()


# -- exact round trips -----------------------------------------------------------------------


def test_traces_and_records_give_back_exactly_what_was_posted() -> None:
    body = trace_body(
        "exact",
        big=2**70 + 1,
        negative=-(2**70) - 1,
        u64=2**64 - 1,
        floats=[1.0, 0.1, 1e300, -0.0, 5e-324],
        nested={"deep": [2**100 + 7, {"x": 12345678901234567890123}]},
    )
    with LocalServer() as srv:
        h = Http(srv)
        assert h.post_trace(raw=json.dumps(body).encode())[0] == 200
        h.close()
        got = srv.traces()[0]
        assert srv.records()[0]["trace"] == got
    assert got == body
    assert type(got["big"]) is int and got["big"] == 2**70 + 1
    assert got["nested"]["deep"][0] == 2**100 + 7
    assert all(type(x) is float for x in got["floats"])
    assert json.dumps(got) == json.dumps(body)


# -- the capacity fault ------------------------------------------------------------------------


def post_in_thread(srv: LocalServer, results: List[Any]) -> threading.Thread:
    def run() -> None:
        h = Http(srv, timeout=30)
        try:
            status, headers, _ = h.post_trace()
            results.append((status, headers.get("retry-after")))
        finally:
            h.close()

    t = threading.Thread(target=run)
    t.start()
    return t


def wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.mark.parametrize("mode", ["429", "queue"])
def test_capacity_serves_at_most_n_at_once(mode: str) -> None:
    faults: Dict[str, Any] = {
        "capacity": 2,
        "over_capacity": mode,
        "latency_ms": 600,
        "retry_after": 3,
    }
    with LocalServer(faults=faults) as srv:
        results: List[Any] = []
        # Two requests take both slots (each holds one for the latency)...
        first = [post_in_thread(srv, results) for _ in range(2)]
        wait_for(lambda: srv.stats()["in_flight"] == 2)
        # ...so the next four arrive over capacity.
        rest = [post_in_thread(srv, results) for _ in range(4)]
        for t in first + rest:
            t.join(30)
        stats = srv.stats()
        stored = len(srv.traces())
    statuses = sorted(s for s, _ in results)
    assert stats["max_in_flight"] == 2
    assert stats["in_flight"] == 0
    if mode == "429":
        assert statuses == [200, 200, 429, 429, 429, 429]
        assert all(ra == "3" for s, ra in results if s == 429)
        assert stats["capacity_429"] == 4 and stats["capacity_queued"] == 0
        assert stored == 2
    else:
        assert statuses == [200] * 6
        assert stats["capacity_queued"] == 4 and stats["capacity_429"] == 0
        assert stored == 6


def test_sdk_clients_see_the_capacity_429() -> None:
    from infinium import InfiniumClient
    from infinium.exceptions import RateLimitError

    faults = {"capacity": 1, "latency_ms": 600, "retry_after": 2}
    with LocalServer(faults=faults) as srv:
        holder: List[Any] = []
        t = post_in_thread(srv, holder)
        wait_for(lambda: srv.stats()["in_flight"] == 1)
        client = InfiniumClient(**srv.client_kwargs(), max_retries=0, enable_rate_limiting=False)
        with pytest.raises(RateLimitError) as e:
            client.send_task("n", "d", 1)
        assert e.value.retry_after == 2
        t.join(30)
        client.close()


# -- the drop-answer fault, faults changed while running, restarts --------------------------------


def test_drop_answer_stores_the_trace_then_loses_the_answer() -> None:
    with LocalServer(faults={"drop_answer": 1.0}) as srv:
        h = Http(srv)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            h.post_trace(headers={"Idempotency-Key": "k-1"})
        h.close()
        assert len(srv.traces()) == 1
        assert srv.stats()["injected_drop_answer"] == 1
        srv.set_faults(None)
        h = Http(srv)
        status, headers, data = h.post_trace(headers={"Idempotency-Key": "k-1"})
        h.close()
        assert status == 200 and headers["idempotent-replayed"] == "true"
        assert data["traceId"] == srv.records()[0]["traceId"]
        assert len(srv.traces()) == 1


def test_set_faults_takes_effect_while_running_and_is_checked() -> None:
    from infinium.exceptions import ConfigurationError

    with LocalServer() as srv:
        h = Http(srv)
        assert h.post_trace()[0] == 200
        srv.set_faults({"error_5xx": 1.0, "status_5xx": 502})
        assert h.post_trace()[0] == 502
        with pytest.raises(
            ConfigurationError, match="faults.error_5xx must be a number from 0 to 1"
        ):
            srv.set_faults({"error_5xx": 3})
        assert h.post_trace()[0] == 502  # unchanged by the refused update
        srv.set_faults(None)
        assert h.post_trace()[0] == 200
        h.close()


def test_a_restart_serves_on_the_same_port() -> None:
    srv = LocalServer().start()
    port = srv.port
    srv.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    srv.start()
    try:
        assert srv.port == port
        assert Http(srv).get("/health", headers={})[0] == 200
    finally:
        srv.stop()


def test_options_are_checked_by_the_one_parser() -> None:
    from infinium.exceptions import ConfigurationError

    cases: List[Any] = [
        ({"header_timeout": 0}, "header_timeout must be a number of seconds above 0"),
        ({"max_connections": 0}, "max_connections must be an integer from 1"),
        ({"port": 70000}, "port must be an integer from 0 to 65535"),
        ({"faults": {"latency_ms": float("nan")}}, "faults.latency_ms must be a finite number"),
        ({"faults": {"capacity": -1}}, "faults.capacity must be a non-negative integer"),
        ({"faults": {"over_capacity": "drop"}}, "faults.over_capacity must be"),
        ({"agents": {"a": 3}}, "agents.a must be a string"),
        (
            {"prompts": [{"id": "p", "key": "k", "content": "c", "version": 0}]},
            "prompts[0].version",
        ),
        ({"faults": {"seed": object()}}, "faults.seed has a value of type object"),
        ({"agent_id": ""}, "agent_id must be a non-empty agent id"),
    ]
    loop: List[Any] = []
    loop.append(loop)
    cases += [
        ({"faults": {"seed": loop}}, "faults.seed[0][0]"),
        ({"faults": {1: 2}}, "faults must have string keys"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigurationError) as e:
            LocalServer(**kwargs)
        assert message in str(e.value), (kwargs, str(e.value))
    # Any mapping will do, read through its items().
    srv = LocalServer(faults=types.MappingProxyType({"seed": 3, "latency_ms": 1}))
    assert srv.core.settings()["faults"]["seed"] == 3


def test_settings_report_the_effective_configuration() -> None:
    srv = LocalServer(faults={"capacity": 4, "over_capacity": "queue"}, body_timeout=2.5)
    settings: Optional[Dict[str, Any]] = srv.core.settings()
    assert settings is not None
    assert settings["faults"]["capacity"] == 4 and settings["faults"]["over_capacity"] == "queue"
    assert settings["body_timeout"] == 2.5 and settings["header_timeout"] == 30.0
    assert LocalServer().core.settings()["faults"] is None
