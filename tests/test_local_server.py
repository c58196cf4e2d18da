"""The local Infinium API over real HTTP on loopback (plain http.client, no SDK)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from infinium.exceptions import ConfigurationError, InfiniumError
from infinium.testing import LocalServer

from .support.api import Http, trace_body

MIB = 1_048_576


@pytest.fixture
def srv() -> Iterator[LocalServer]:
    with LocalServer() as s:
        yield s


@pytest.fixture
def client(srv: LocalServer) -> Iterator[Http]:
    h = Http(srv)
    yield h
    h.close()


def is_uuid(s: str) -> bool:
    try:
        return str(uuid.UUID(s)) == s
    except ValueError:
        return False


# -- start / stop ------------------------------------------------------------------


def test_starts_fast_on_a_free_port() -> None:
    t0 = time.perf_counter()
    with LocalServer() as s:
        elapsed = time.perf_counter() - t0
        assert elapsed < 0.5
        assert s.port > 0
        assert s.base_url == f"http://127.0.0.1:{s.port}/api/v1"
        assert s.url == f"http://127.0.0.1:{s.port}"
        assert uuid.UUID(s.agent_id)
        assert len(s.agent_secret) >= 8
        assert s.running
    assert not s.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=1).close()


def test_port_in_use_raises_an_sdk_error(srv: LocalServer) -> None:
    other = LocalServer(port=srv.port)
    with pytest.raises(InfiniumError, match="cannot listen"):
        other.start()


def test_bad_options_raise_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown fault option"):
        LocalServer(faults={"error5xx": 0.1})
    with pytest.raises(ConfigurationError):
        LocalServer(faults={"error_5xx": 2})
    with pytest.raises(ConfigurationError):
        LocalServer(prompts=[{"id": "x", "content": "no key"}])
    with pytest.raises(ConfigurationError):
        LocalServer(agents={"a": ""})


def test_restart_keeps_memory_traces(srv: LocalServer, client: Http) -> None:
    assert client.post_trace(trace_body("before"))[0] == 200
    client.close()
    srv.stop()
    srv.start()
    assert [t["name"] for t in srv.traces()] == ["before"]
    h = Http(srv)
    assert h.post_trace(trace_body("after"))[0] == 200
    assert [t["name"] for t in srv.traces()] == ["before", "after"]
    h.close()


# -- POST /agents/{id}/trace -----------------------------------------------------


def test_post_trace_answers_like_the_platform_and_stores_the_exact_body(
    srv: LocalServer, client: Http
) -> None:
    body = trace_body(
        "exact",
        steps=[{"step_number": 1, "action": "a", "description": "d", "duration_ms": 3}],
        llm_usage={"model": "m", "total_tokens": 12},
        zeta=1,
        alpha={"nested": [1, 2.5, None, "x"]},
    )
    status, headers, data = client.post_trace(body)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert set(data) == {"message", "traceId"}
    assert is_uuid(data["traceId"])
    stored = srv.traces()
    assert stored == [body]
    assert list(stored[0]) == list(body)  # key order kept
    rec = srv.records()[0]
    assert rec["traceId"] == data["traceId"]
    assert rec["agentId"] == srv.agent_id
    assert rec["idempotencyKey"] is None
    assert rec["receivedAt"].endswith("Z")
    assert srv.stats()["traces_stored"] == 1


def test_routes_work_without_the_api_v1_prefix(srv: LocalServer, client: Http) -> None:
    status, _, _ = client.request(
        "POST",
        f"/agents/{srv.agent_id}/trace",
        json.dumps(trace_body()).encode(),
        client.auth(),
        prefix="",
    )
    assert status == 200
    assert len(srv.traces()) == 1


def test_keep_alive_many_requests_one_connection(srv: LocalServer, client: Http) -> None:
    ids = {client.post_trace(trace_body(f"t{i}"))[2]["traceId"] for i in range(50)}
    assert len(ids) == 50
    assert [t["name"] for t in srv.traces()] == [f"t{i}" for i in range(50)]


def test_concurrent_posts(srv: LocalServer) -> None:
    ids: List[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        h = Http(srv)
        for i in range(25):
            status, _, data = h.post_trace(trace_body(f"w{n}-{i}"))
            assert status == 200
            with lock:
                ids.append(data["traceId"])
        h.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 200
    assert len(srv.traces()) == 200


@pytest.mark.parametrize(
    "headers, fragment",
    [
        ({}, "Missing authentication headers"),
        ({"x-agent-id": "AGENT"}, "Missing authentication headers"),
        ({"x-agent-id": "AGENT", "x-agent-key": "wrong-key-123"}, "Invalid agent credentials"),
        (
            {"x-agent-id": str(uuid.uuid4()), "x-agent-key": "SECRET"},
            "Invalid agent credentials",
        ),
    ],
)
def test_trace_auth_failures_are_401(
    srv: LocalServer, client: Http, headers: Dict[str, str], fragment: str
) -> None:
    h = {
        k: v.replace("AGENT", srv.agent_id).replace("SECRET", srv.agent_secret)
        for k, v in headers.items()
    }
    status, _, data = client.request(
        "POST", f"/agents/{srv.agent_id}/trace", json.dumps(trace_body()).encode(), h
    )
    assert status == 401
    assert fragment in data["error"]
    assert srv.traces() == []


def test_header_agent_must_match_path_agent(srv: LocalServer, client: Http) -> None:
    other_id, _ = srv.add_agent()
    status, _, data = client.post_trace(agent_id=other_id)  # headers: the default agent
    assert status == 401
    assert "does not match" in data["error"]


def test_agent_ids_compare_case_insensitively(srv: LocalServer, client: Http) -> None:
    upper = srv.agent_id.upper()
    status, _, _ = client.post_trace(
        agent_id=upper, headers={"x-agent-id": upper, "x-agent-key": srv.agent_secret}
    )
    assert status == 200
    assert len(srv.traces(upper)) == 1


def test_add_agent_takes_effect_while_running(srv: LocalServer, client: Http) -> None:
    aid, key = srv.add_agent()
    status, _, _ = client.post_trace(agent_id=aid, headers={"x-agent-id": aid, "x-agent-key": key})
    assert status == 200
    assert len(srv.traces(aid)) == 1
    assert srv.traces(srv.agent_id) == []


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b'{"name": "n"}', "Missing required field(s): description, current_datetime, duration"),
        (
            b'{"name":"n","description":"d","current_datetime":"t","duration":"1"}',
            "'duration' must be a number",
        ),
        (
            b'{"name":1,"description":"d","current_datetime":"t","duration":1}',
            "'name' must be a string",
        ),
    ],
)
def test_bad_bodies_are_400(srv: LocalServer, client: Http, raw: bytes, fragment: str) -> None:
    status, _, data = client.post_trace(raw=raw)
    assert status == 400
    assert fragment in data["error"]
    assert srv.traces() == []


def padded_body(total: int) -> bytes:
    base = json.dumps(trace_body(pad="")).encode()
    raw = base[:-2] + b"x" * (total - len(base)) + b'"}'
    assert len(raw) == total
    json.loads(raw)
    return raw


def test_body_of_exactly_1_mib_is_accepted(srv: LocalServer, client: Http) -> None:
    status, _, _ = client.post_trace(raw=padded_body(MIB))
    assert status == 200
    assert len(srv.traces()[0]["pad"]) > MIB - 200


def test_body_over_1_mib_is_413(srv: LocalServer, client: Http) -> None:
    status, _, data = client.post_trace(raw=padded_body(MIB + 1))
    assert status == 413
    assert "1048576" in data["error"]
    assert srv.traces() == []


def test_chunked_body_over_1_mib_is_413(srv: LocalServer) -> None:
    raw = padded_body(MIB + 10)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    chunks = (raw[i : i + 65536] for i in range(0, len(raw), 65536))
    conn.request(
        "POST",
        f"/api/v1/agents/{srv.agent_id}/trace",
        body=chunks,
        headers={"x-agent-id": srv.agent_id, "x-agent-key": srv.agent_secret},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    assert resp.status == 413
    assert "error" in json.loads(resp.read())
    conn.close()
    assert srv.traces() == []


def test_idempotency_key_returns_the_first_trace_id(srv: LocalServer, client: Http) -> None:
    _, h1, first = client.post_trace(trace_body("one"), headers={"Idempotency-Key": "k-1"})
    _, h2, again = client.post_trace(trace_body("two"), headers={"Idempotency-Key": "k-1"})
    _, _, other = client.post_trace(trace_body("three"), headers={"Idempotency-Key": "k-2"})
    assert again["traceId"] == first["traceId"]
    assert other["traceId"] != first["traceId"]
    assert "idempotent-replayed" not in h1
    assert h2["idempotent-replayed"] == "true"
    assert [t["name"] for t in srv.traces()] == ["one", "three"]
    assert srv.records()[0]["idempotencyKey"] == "k-1"
    stats = srv.stats()
    assert stats["traces_stored"] == 2
    assert stats["idempotent_replays"] == 1


def test_idempotency_key_too_long_is_400(client: Http) -> None:
    status, _, data = client.post_trace(headers={"Idempotency-Key": "k" * 256})
    assert status == 400
    assert "Idempotency-Key" in data["error"]


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("POST", "/agents/x/trace/extra/more"),
        ("GET", "/agents/x"),
        ("GET", "/prompts/x"),
    ],
)
def test_unknown_routes_are_404(client: Http, method: str, path: str) -> None:
    status, _, data = client.request(method, path, b"{}" if method == "POST" else None)
    assert status == 404
    assert "Not found" in data["error"]


def test_wrong_method_is_405(srv: LocalServer, client: Http) -> None:
    status, headers, data = client.get(f"/agents/{srv.agent_id}/trace")
    assert status == 405
    assert headers["allow"] == "POST"
    assert "not allowed" in data["error"]


def test_health(client: Http) -> None:
    assert client.get("/health", headers={})[2] == {"status": "ok"}


def test_garbage_does_not_kill_the_server(srv: LocalServer, client: Http) -> None:
    for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST"):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        try:
            s.recv(1024)
        except OSError:
            pass
        s.close()
    assert client.post_trace()[0] == 200


# -- listing and reading traces --------------------------------------------------------


def test_list_traces_newest_first_with_pagination(srv: LocalServer, client: Http) -> None:
    ids = [client.post_trace(trace_body(f"t{i}"))[2]["traceId"] for i in range(5)]
    status, _, page = client.get(f"/agents/{srv.agent_id}/traces?limit=2")
    assert status == 200
    assert [r["traceId"] for r in page["traces"]] == [ids[4], ids[3]]
    assert page["total"] == 5
    assert page["limit"] == 2
    assert page["offset"] == 0
    assert page["nextOffset"] == 2
    assert page["traces"][0]["trace"] == trace_body("t4")
    _, _, last = client.get(f"/agents/{srv.agent_id}/traces?limit=2&offset=4")
    assert [r["traceId"] for r in last["traces"]] == [ids[0]]
    assert last["nextOffset"] is None
    _, _, default = client.get(f"/agents/{srv.agent_id}/traces")
    assert len(default["traces"]) == 5
    assert default["limit"] == 50


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "offset=-1"])
def test_list_traces_bad_paging_is_400(srv: LocalServer, client: Http, query: str) -> None:
    status, _, data = client.get(f"/agents/{srv.agent_id}/traces?{query}")
    assert status == 400
    assert "error" in data


def test_list_and_get_require_auth_and_are_per_agent(srv: LocalServer, client: Http) -> None:
    tid = client.post_trace()[2]["traceId"]
    assert client.get(f"/agents/{srv.agent_id}/traces", headers={})[0] == 401
    assert client.get(f"/agents/{srv.agent_id}/traces/{tid}", headers={})[0] == 401
    other, key = srv.add_agent()
    other_auth = {"x-agent-id": other, "x-agent-key": key}
    _, _, page = client.get(f"/agents/{other}/traces", headers=other_auth)
    assert page["traces"] == [] and page["total"] == 0
    assert client.get(f"/agents/{other}/traces/{tid}", headers=other_auth)[0] == 404


def test_get_one_trace(srv: LocalServer, client: Http) -> None:
    body = trace_body("single", errors=[{"error_type": "E", "message": "m"}])
    tid = client.post_trace(body, headers={"Idempotency-Key": "abc"})[2]["traceId"]
    status, _, rec = client.get(f"/agents/{srv.agent_id}/traces/{tid}")
    assert status == 200
    assert list(rec) == ["traceId", "agentId", "receivedAt", "idempotencyKey", "trace"]
    assert rec["traceId"] == tid
    assert rec["idempotencyKey"] == "abc"
    assert rec["trace"] == body
    assert client.get(f"/agents/{srv.agent_id}/traces/{tid.upper()}")[0] == 200
    status, _, data = client.get(f"/agents/{srv.agent_id}/traces/{uuid.uuid4()}")
    assert status == 404
    assert "not found" in data["error"]


# -- interpreted result ------------------------------------------------------------------


def test_interpreted_result_is_never_invented(srv: LocalServer, client: Http) -> None:
    unknown = str(uuid.uuid4())
    status, _, data = client.get(f"/agents/{srv.agent_id}/interpreted-result/{unknown}")
    assert status == 404
    assert data == {"error": f"Trace {unknown} not found"}
    tid = client.post_trace()[2]["traceId"]
    status, _, data = client.get(f"/agents/{srv.agent_id}/interpreted-result/{tid}")
    assert status == 404
    assert "does not grade" in data["error"]
    assert data["traceId"] == tid
    assert "interpretedTraceResult" not in data
    assert client.get(f"/agents/{srv.agent_id}/interpreted-result/{tid}", headers={})[0] == 401


# -- prompts -------------------------------------------------------------------------------


def prompt_get(
    client: Http, pid: str, version: str, key: Optional[str], hid: Optional[str] = None
) -> Tuple[int, Dict[str, str], Any]:
    headers: Dict[str, str] = {}
    if key is not None:
        headers = {"x-prompt-id": hid if hid is not None else pid, "x-prompt-key": key}
    return client.get(f"/prompts/{pid}/v/{version}", headers=headers)


def test_prompts_from_options_with_versions() -> None:
    pid = str(uuid.uuid4())
    prompts = [
        {
            "id": pid,
            "key": "prompt-key-1",
            "name": "greeter",
            "versions": [
                {"version": 1, "content": "Hello {{name}}", "createdAt": "2025-01-01T00:00:00Z"},
                {"version": 2, "content": "Hi {{name}}!", "createdAt": "2025-02-01T00:00:00Z"},
            ],
        }
    ]
    with LocalServer(prompts=prompts) as s:
        h = Http(s)
        status, _, latest = prompt_get(h, pid, "latest", "prompt-key-1")
        assert status == 200
        assert latest == {
            "promptId": pid,
            "name": "greeter",
            "version": 2,
            "content": "Hi {{name}}!",
            "createdAt": "2025-02-01T00:00:00Z",
        }
        assert list(latest) == ["promptId", "name", "version", "content", "createdAt"]
        assert prompt_get(h, pid, "1", "prompt-key-1")[2]["content"] == "Hello {{name}}"
        assert prompt_get(h, pid, "LATEST", "prompt-key-1")[2]["version"] == 2
        h.close()


def test_prompt_errors(srv: LocalServer, client: Http) -> None:
    p = srv.add_prompt("v1 text", name="n")
    srv.add_prompt("v3 text", prompt_id=p.prompt_id, prompt_key=p.prompt_key, version=3)
    assert prompt_get(client, p.prompt_id, "latest", p.prompt_key)[2]["content"] == "v3 text"
    status, _, data = prompt_get(client, p.prompt_id, "latest", None)
    assert status == 401 and "x-prompt-id" in data["error"]
    status, _, data = prompt_get(client, p.prompt_id, "latest", "wrong-key")
    assert status == 401 and data["error"] == "Invalid prompt credentials"
    status, _, data = prompt_get(client, p.prompt_id, "1", p.prompt_key, hid=str(uuid.uuid4()))
    assert status == 401 and "does not match" in data["error"]
    # An unknown prompt id is answered as a wrong key (ids cannot be probed).
    unknown = str(uuid.uuid4())
    status, _, data = prompt_get(client, unknown, "latest", "k")
    assert status == 401 and data["error"] == "Invalid prompt credentials"
    status, _, data = prompt_get(client, p.prompt_id, "2", p.prompt_key)
    assert status == 404 and "no version 2" in data["error"]
    for bad in ("0", "-1", "v2", "1.5"):
        status, _, data = prompt_get(client, p.prompt_id, bad, p.prompt_key)
        assert status == 400 and "positive integer" in data["error"]
    # Agent headers are not prompt credentials.
    assert client.get(f"/prompts/{p.prompt_id}/v/latest")[0] == 401


# -- SQLite ----------------------------------------------------------------------------------


def test_db_survives_restart_with_idempotency(tmp_path: Any) -> None:
    db = tmp_path / "traces.db"
    aid, key = str(uuid.uuid4()), "persisted-secret"
    with LocalServer(db=db, agent_id=aid, agent_secret=key) as s1:
        h = Http(s1)
        first = h.post_trace(trace_body("kept"), headers={"Idempotency-Key": "same"})[2]
        h.post_trace(trace_body("second"))
        h.close()
    with LocalServer(db=str(db), agent_id=aid, agent_secret=key) as s2:
        assert [t["name"] for t in s2.traces()] == ["kept", "second"]
        h = Http(s2)
        again = h.post_trace(trace_body("dup"), headers={"Idempotency-Key": "same"})[2]
        assert again["traceId"] == first["traceId"]
        _, _, page = h.get(f"/agents/{aid}/traces")
        assert [r["trace"]["name"] for r in page["traces"]] == ["second", "kept"]
        status, _, rec = h.get(f"/agents/{aid}/traces/{first['traceId']}")
        assert status == 200 and rec["trace"] == trace_body("kept")
        h.close()
        assert len(s2.traces()) == 2
        s2.clear()
        assert s2.traces() == []


def test_unopenable_db_is_a_configuration_error(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="trace database"):
        LocalServer(db=tmp_path / "missing-dir" / "x.db")


# -- sink ------------------------------------------------------------------------------------


def test_sink_counts_and_stores_nothing() -> None:
    with LocalServer(sink=True) as s:
        h = Http(s)
        raw = json.dumps(trace_body()).encode()
        for _ in range(20):
            status, _, data = h.post_trace(raw=raw)
            assert status == 200 and is_uuid(data["traceId"])
        # The sink neither authenticates nor parses.
        status, _, _ = h.request("POST", "/agents/anything/trace", b"not json", {})
        assert status == 200
        assert h.post_trace(raw=padded_body(MIB + 1))[0] == 413
        assert h.get(f"/agents/{s.agent_id}/traces")[0] == 404
        h.close()
        stats = s.stats()
        assert stats["sink_accepted"] == 21
        assert stats["bytes_received"] == 20 * len(raw) + len(b"not json")
        assert stats["traces_stored"] == 0
        assert s.traces() == []
        assert s.core.sink


# -- fault injection -------------------------------------------------------------------------

FAULTS = {"error_5xx": 0.10, "rate_429": 0.05, "drop": 0.05, "retry_after": 7, "seed": 42}


def run_faulty(s: LocalServer, n: int) -> List[str]:
    """Send n posts sequentially; return the outcome of each ('200', '503', '429', 'drop')."""
    outcomes: List[str] = []
    h = Http(s)
    raw = json.dumps(trace_body()).encode()
    for _ in range(n):
        try:
            status, headers, data = h.post_trace(raw=raw)
        except (http.client.RemoteDisconnected, ConnectionError):
            outcomes.append("drop")
            h.close()
            h = Http(s)
            continue
        if status == 429:
            assert headers["retry-after"] == "7"
            assert "rate limited" in data["error"]
        if status == 503:
            assert "error" in data
        outcomes.append(str(status))
    h.close()
    return outcomes


def test_fault_rates_are_within_tolerance_and_counted() -> None:
    n = 2000
    with LocalServer(faults=FAULTS) as s:
        out = run_faulty(s, n)
        stats = s.stats()
        stored = len(s.traces())
    share = {k: out.count(k) / n for k in ("200", "503", "429", "drop")}
    assert abs(share["503"] - 0.10) < 0.025, share
    assert abs(share["429"] - 0.05) < 0.02, share
    assert abs(share["drop"] - 0.05) < 0.02, share
    assert stats["injected_5xx"] == out.count("503")
    assert stats["injected_429"] == out.count("429")
    assert stats["injected_drop"] == out.count("drop")
    assert stats["traces_stored"] == stored == out.count("200")


def test_faults_are_reproducible_with_a_seed() -> None:
    with LocalServer(faults=FAULTS) as a:
        first = run_faulty(a, 300)
    with LocalServer(faults=FAULTS) as b:
        second = run_faulty(b, 300)
    with LocalServer(faults={**FAULTS, "seed": 43}) as c:
        third = run_faulty(c, 300)
    assert first == second
    assert first != third
    assert set(first) == {"200", "503", "429", "drop"}


def test_custom_5xx_status_and_everything_failing() -> None:
    with LocalServer(faults={"error_5xx": 1.0, "status_5xx": 500, "seed": 1}) as s:
        h = Http(s)
        assert h.post_trace()[0] == 500
        # Inspection routes are never faulted.
        assert h.get(f"/agents/{s.agent_id}/traces")[0] == 200
        h.close()


def test_added_latency() -> None:
    with LocalServer(faults={"latency_ms": 150}) as s:
        h = Http(s)
        t0 = time.perf_counter()
        assert h.post_trace()[0] == 200
        assert time.perf_counter() - t0 >= 0.14
        t0 = time.perf_counter()
        assert h.get("/health", headers={})[0] == 200
        assert time.perf_counter() - t0 < 0.14
        h.close()


def test_stats_count_errors(srv: LocalServer, client: Http) -> None:
    client.post_trace()
    client.post_trace(raw=b"[]")
    client.get("/nope")
    client.get(f"/agents/{srv.agent_id}/traces", headers={})
    stats = srv.stats()
    assert stats["requests"] == 4
    assert stats["traces_stored"] == 1
    assert stats["client_errors"] == 2
    assert stats["not_found"] == 1
    assert stats["server_errors"] == 0
