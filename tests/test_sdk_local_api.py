"""The SDK against the local Infinium API, end to end: every endpoint and
every error mapping (the server's status -> the SDK's exception)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from infinium import (
    AsyncInfiniumClient,
    AuthenticationError,
    InfiniumClient,
    InfiniumError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TraceBuilder,
    ValidationError,
)
from infinium.testing import LocalServer


def make(srv: LocalServer, **kw: object) -> InfiniumClient:
    kw.setdefault("enable_rate_limiting", False)
    kw.setdefault("max_retries", 0)
    return InfiniumClient(
        agent_id=srv.agent_id, agent_secret=srv.agent_secret, base_url=srv.base_url, **kw
    )


def test_send_store_list_and_fetch(infinium_server: LocalServer) -> None:
    client = make(infinium_server)
    resp = client.send_task("hello", "world", 1.5, customer={"customer_name": "Ada"})
    assert resp.success and resp.status_code == 200
    trace_id = resp.data["traceId"]  # type: ignore[index]
    tb = TraceBuilder("built", "with steps")
    with tb.step("tool_use", "search") as step:
        step.set_output("3 hits")
    client.send_task_data(tb.build())
    assert asyncio.run(
        AsyncInfiniumClient(
            agent_id=infinium_server.agent_id,
            agent_secret=infinium_server.agent_secret,
            base_url=infinium_server.base_url,
        ).send_task("async", "d", 0.5)
    ).success
    stored = infinium_server.traces()
    assert [t["name"] for t in stored] == ["hello", "built", "async"]
    assert stored[0]["sections"] == {"customer": {"customer_name": "Ada"}}
    assert stored[1]["steps"][0]["output_preview"] == "3 hits"
    # The interpretation endpoint answers 404 (the local API does not grade).
    with pytest.raises(NotFoundError, match="^Resource not found$") as info:
        client.get_interpreted_task_result(trace_id)
    assert info.value.status_code == 404
    assert "error" in info.value.details["response_data"]


def test_wrong_secret_is_authentication_error(infinium_server: LocalServer) -> None:
    client = InfiniumClient(
        agent_id=infinium_server.agent_id,
        agent_secret="not-the-right-secret",
        base_url=infinium_server.base_url,
        enable_rate_limiting=False,
    )
    with pytest.raises(AuthenticationError, match="Check your agent_id and agent_secret"):
        client.send_task("n", "d", 1)
    assert infinium_server.traces() == []


def test_prompts_and_prompt_auth(infinium_server: LocalServer) -> None:
    p1 = infinium_server.add_prompt("Hi {{name}}", name="greet", version=1)
    infinium_server.add_prompt(
        "Hello {{name}}!", name="greet", prompt_id=p1.prompt_id, prompt_key=p1.prompt_key, version=2
    )
    client = make(infinium_server)
    latest = client.get_prompt(p1.prompt_id, p1.prompt_key, variables={"name": "Ada"})
    assert (latest.version, latest.rendered_content, latest.name) == (2, "Hello Ada!", "greet")
    assert client.get_prompt(p1.prompt_id, p1.prompt_key, version=1).content == "Hi {{name}}"
    with pytest.raises(NotFoundError):
        client.get_prompt(p1.prompt_id, p1.prompt_key, version=9)
    with pytest.raises(AuthenticationError, match="Check your prompt_id and prompt_key"):
        client.get_prompt(p1.prompt_id, "pk-wrong-key")


def test_400_and_413_from_the_server(infinium_server: LocalServer) -> None:
    client = make(infinium_server)
    path = f"/agents/{infinium_server.agent_id}/trace"
    engine = client._engine
    assert engine is not None
    # The SDK validates before sending, so reach the server's own checks raw.
    with pytest.raises(InfiniumError) as bad:
        engine.request("POST", path, b'{"name": "only a name"}')
    assert bad.value.status_code == 400 and "description" in str(bad.value)
    with pytest.raises(InfiniumError) as big:
        engine.request("POST", path, b'{"name":"' + b"x" * 1_100_000 + b'"}')
    assert big.value.status_code == 413
    # Through the public API, the size limit is enforced before anything is sent.
    with pytest.raises(ValidationError, match="Payload exceeds maximum size"):
        client.send_task("n", "d", 1, output_summary="x" * 1_100_000)
    assert infinium_server.traces() == []


def test_idempotency_key_dedupes(infinium_server: LocalServer) -> None:
    engine = make(infinium_server)._engine
    assert engine is not None
    body = b'{"name":"n","description":"d","current_datetime":"2026-01-01T00:00:00Z","duration":1}'
    path = f"/agents/{infinium_server.agent_id}/trace"
    _, first = engine.request("POST", path, body, idempotency_key="key-1")
    _, again = engine.request("POST", path, body, idempotency_key="key-1")
    assert first["traceId"] == again["traceId"]
    assert len(infinium_server.traces()) == 1


def test_injected_429_and_503_map_and_retry() -> None:
    with LocalServer(faults={"rate_429": 1.0, "retry_after": 7, "seed": 1}) as srv:
        with pytest.raises(RateLimitError) as rl:
            make(srv).send_task("n", "d", 1)
        assert rl.value.retry_after == 7
    with LocalServer(faults={"error_5xx": 1.0, "seed": 1}) as srv:
        with pytest.raises(ServerError, match="^Server error: 503$"):
            make(srv, max_retries=2, backoff_base=0.001).send_task("n", "d", 1)
        assert srv.stats()["injected_5xx"] == 3  # 1 + 2 retries


def test_agent_must_match_path(infinium_server: LocalServer) -> None:
    other = str(uuid.uuid4())
    client = InfiniumClient(
        agent_id=other,
        agent_secret=infinium_server.agent_secret,
        base_url=infinium_server.base_url,
        enable_rate_limiting=False,
    )
    with pytest.raises(AuthenticationError):
        client.send_task("n", "d", 1)
