"""Both clients against a real loopback HTTP server: every call, every status
mapping, retries counted at the server, validation rows of SPEC §3."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
import time
import uuid
from typing import Any, Callable

import pytest

import infinium
from infinium import (
    ApiResponse,
    AsyncInfiniumClient,
    AuthenticationError,
    ConfigurationError,
    InfiniumClient,
    InfiniumError,
    InfiniumTimeoutError,
    NetworkError,
    NotFoundError,
    PromptContent,
    RateLimitError,
    ServerError,
    TaskData,
    ValidationError,
)

from .conftest import CaptureServer, Reply, make_client, while_ticking

WHEN = "2026-11-22T04:06:00.123456Z"
PROMPT_ID = "0b7a4c1e-5d2f-4e8a-9b3c-6f1d2e3a4b5c"


def run_both(client: InfiniumClient, async_client: AsyncInfiniumClient) -> Callable[..., Any]:
    """Call a method by name on the sync client, then the same on the async one,
    and check both give equal results."""

    def call(method: str, *args: Any, **kwargs: Any) -> Any:
        sync_result = getattr(client, method)(*args, **kwargs)
        async_result = asyncio.run(getattr(async_client, method)(*args, **kwargs))
        assert type(sync_result) is type(async_result)
        return sync_result

    return call


# --- success paths --------------------------------------------------------------


def test_send_task_request_shape(
    client: InfiniumClient, capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    resp = client.send_task(
        "Classify", "Classified a ticket", 2, current_datetime=WHEN, customer={"customer_name": "A"}
    )
    assert isinstance(resp, ApiResponse)
    assert resp.success and resp.status_code == 200 and resp.message == "Trace received"
    assert uuid.UUID(resp.data["traceId"])  # type: ignore[index]
    req = capture_server.requests[-1]
    assert req.method == "POST"
    assert req.path == f"/api/v1/agents/{agent_id}/trace"
    assert req.headers["x-agent-id"] == agent_id
    assert req.headers["x-agent-key"] == agent_secret
    assert req.headers["user-agent"] == "infinium-python/1.0.0"
    assert req.headers["content-type"] == "application/json"
    assert req.body == (
        b'{"name":"Classify","description":"Classified a ticket","current_datetime":"'
        + WHEN.encode()
        + b'","duration":2.0,"sections":{"customer":{"customer_name":"A"}}}'
    )


def test_send_task_generates_a_utc_timestamp(
    client: InfiniumClient, capture_server: CaptureServer
) -> None:
    client.send_task("n", "d", 1)
    when = capture_server.requests[-1].json()["current_datetime"]
    assert when.endswith("Z") and len(when) == len("2026-11-22T04:06:00.123456Z")


def test_201_with_empty_body(client: InfiniumClient, capture_server: CaptureServer) -> None:
    capture_server.script(Reply(201, b""))
    resp = client.send_task_data(TaskData("n", "d", WHEN, 1.0))
    assert resp == ApiResponse(success=True, status_code=201, message="Success", data=None)


def test_async_client_sends_the_same_bytes(
    client: InfiniumClient, async_client: AsyncInfiniumClient, capture_server: CaptureServer
) -> None:
    task = TaskData("n", "d", WHEN, 1.0, output_summary="o")
    client.send_task_data(task)
    asyncio.run(async_client.send_task_data(task))
    a, b = capture_server.requests[-2:]
    assert a.body == b.body and a.path == b.path
    assert {k: v for k, v in a.headers.items() if k not in ("idempotency-key",)} == {
        k: v for k, v in b.headers.items() if k not in ("idempotency-key",)
    }


def test_interpreted_result_and_wait(
    client: InfiniumClient,
    async_client: AsyncInfiniumClient,
    capture_server: CaptureServer,
    agent_id: str,
) -> None:
    trace_id = str(uuid.uuid4())
    capture_server.responder = lambda req: Reply(200, {"interpretedTraceResult": {"score": 9}})
    call = run_both(client, async_client)
    resp = call("get_interpreted_task_result", trace_id)
    assert resp.data == {"interpretedTraceResult": {"score": 9}}
    req = capture_server.requests[-1]
    assert req.method == "GET"
    assert req.path == f"/api/v1/agents/{agent_id}/interpreted-result/{trace_id}"
    assert req.headers["content-type"] == "application/json"  # as the anchor sends
    # wait_for_interpretation polls until the result is there.
    capture_server.requests.clear()
    capture_server.script(
        Reply(200, {"status": "pending"}), Reply(200, {"interpretedTraceResult": None})
    )
    resp = client.wait_for_interpretation(trace_id, timeout=10, poll_interval=0.05)
    assert resp.data["interpretedTraceResult"] == {"score": 9}  # type: ignore[index]
    assert capture_server.count("GET") == 3


def test_wait_for_interpretation_times_out(
    client: InfiniumClient, async_client: AsyncInfiniumClient, capture_server: CaptureServer
) -> None:
    capture_server.responder = lambda req: Reply(200, {"status": "pending"})
    trace_id = str(uuid.uuid4())
    for fn in (
        lambda: client.wait_for_interpretation(trace_id, timeout=0.2, poll_interval=0.05),
        lambda: asyncio.run(
            async_client.wait_for_interpretation(trace_id, timeout=0.2, poll_interval=0.05)
        ),
    ):
        with pytest.raises(InfiniumTimeoutError) as info:
            fn()
        assert str(info.value) == f"Interpretation not ready after 0.2s for trace {trace_id}"
        assert info.value.timeout_duration == 0.2


def test_get_prompt_renders_and_uses_prompt_headers(
    client: InfiniumClient, async_client: AsyncInfiniumClient, capture_server: CaptureServer
) -> None:
    capture_server.responder = lambda req: Reply(
        200,
        {
            "promptId": PROMPT_ID,
            "name": "greeting",
            "version": 3,
            "content": "Hello {{name}}, {{unknown}} {{ name }}",
            "createdAt": "2026-01-01T00:00:00Z",
        },
    )
    call = run_both(client, async_client)
    prompt = call("get_prompt", PROMPT_ID, "pk-123", version=3, variables={"name": "Ada"})
    assert prompt == PromptContent(
        PROMPT_ID,
        "greeting",
        3,
        "Hello {{name}}, {{unknown}} {{ name }}",
        "2026-01-01T00:00:00Z",
        "Hello Ada, {{unknown}} {{ name }}",
    )
    req = capture_server.requests[-1]
    assert req.path == f"/api/v1/prompts/{PROMPT_ID}/v/3"
    assert req.headers["x-prompt-id"] == PROMPT_ID
    assert req.headers["x-prompt-key"] == "pk-123"
    assert "x-agent-id" not in req.headers and "x-agent-key" not in req.headers
    assert call("get_prompt", PROMPT_ID, "pk", "latest").rendered_content is None
    assert capture_server.requests[-1].path.endswith("/v/latest")
    assert call("get_prompt", PROMPT_ID, "pk", "7") is not None
    assert capture_server.requests[-1].path.endswith("/v/7")


@pytest.mark.parametrize("version", [0, -1, "0", "abc", "1.5", 1.5, None])
def test_get_prompt_rejects_bad_versions(client: InfiniumClient, version: Any) -> None:
    with pytest.raises(ValidationError, match="^version must be a positive integer or 'latest'$"):
        client.get_prompt(PROMPT_ID, "pk", version)


def test_get_prompt_validation(client: InfiniumClient, capture_server: CaptureServer) -> None:
    with pytest.raises(ValidationError, match="prompt_id must be a valid UUID format"):
        client.get_prompt("not-a-uuid", "pk")
    with pytest.raises(ValidationError, match="prompt_id contains invalid characters"):
        client.get_prompt("../etc", "pk")
    with pytest.raises(ValidationError, match="^prompt_key is required$"):
        client.get_prompt(PROMPT_ID, "  ")
    capture_server.script(Reply(200, b""))
    with pytest.raises(InfiniumError, match="Empty or invalid response from prompt API"):
        client.get_prompt(PROMPT_ID, "pk")
    assert capture_server.count() == 1


# --- error statuses ----------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True])
def test_status_mapping(
    client: InfiniumClient,
    async_client: AsyncInfiniumClient,
    capture_server: CaptureServer,
    is_async: bool,
) -> None:
    task = TaskData("n", "d", WHEN, 1.0)

    def send() -> Any:
        if is_async:
            return asyncio.run(async_client.send_task_data(task))
        return client.send_task_data(task)

    capture_server.script(Reply(400, {"error": "name is missing"}))
    with pytest.raises(InfiniumError) as info:
        send()
    assert type(info.value) is InfiniumError
    assert str(info.value) == "name is missing" and info.value.status_code == 400
    assert info.value.details == {"response_data": {"error": "name is missing"}}

    capture_server.script(Reply(418, b"not json"))
    with pytest.raises(InfiniumError, match="^Request failed with status 418$"):
        send()

    capture_server.script(Reply(401, {"error": "bad key"}))
    with pytest.raises(AuthenticationError) as auth:
        send()
    assert str(auth.value) == "Authentication failed. Check your agent_id and agent_secret."
    assert auth.value.status_code == 401

    capture_server.script(Reply(404, {"error": "nope"}))
    with pytest.raises(NotFoundError, match="^Resource not found$") as nf:
        send()
    assert nf.value.status_code == 404

    capture_server.script(Reply(429, headers={"Retry-After": "17"}))
    with pytest.raises(RateLimitError) as rl:
        send()
    assert rl.value.retry_after == 17 and rl.value.status_code == 429
    assert str(rl.value) == "Rate limit exceeded. Retry after 17 seconds."

    capture_server.script(Reply(429))
    with pytest.raises(RateLimitError) as rl2:
        send()
    assert rl2.value.retry_after == 60

    capture_server.script(Reply(503))
    with pytest.raises(ServerError, match="^Server error: 503$") as se:
        send()
    assert se.value.status_code == 503

    capture_server.script(Reply(302, headers={"Location": "http://127.0.0.1:1/steal"}))
    with pytest.raises(InfiniumError, match="^Request failed with status 302$"):
        send()
    # The redirect was not followed: the server saw exactly one request per send.
    assert capture_server.count() == 8


def test_prompt_401_wording(client: InfiniumClient, capture_server: CaptureServer) -> None:
    capture_server.script(Reply(401))
    with pytest.raises(
        AuthenticationError,
        match=r"^Authentication failed\. Check your prompt_id and prompt_key\.$",
    ):
        client.get_prompt(PROMPT_ID, "pk")


def _retrying(cls: Any, srv: CaptureServer, agent_id: str, agent_secret: str, **kw: Any) -> Any:
    return make_client(cls, srv, agent_id, agent_secret, max_retries=3, backoff_base=0.01, **kw)


def test_5xx_is_retried_then_raised(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    c = _retrying(InfiniumClient, capture_server, agent_id, agent_secret)
    capture_server.responder = lambda req: Reply(500)
    with pytest.raises(ServerError):
        c.send_task("n", "d", 1)
    assert capture_server.count() == 4  # 1 + max_retries
    capture_server.requests.clear()
    capture_server.script(Reply(503), Reply(502))
    capture_server.responder = lambda req: Reply(200, {"message": "finally"})
    assert c.send_task("n", "d", 1).message == "finally"
    assert capture_server.count() == 3
    # Every attempt of one send carries the same Idempotency-Key.
    keys = {r.headers["idempotency-key"] for r in capture_server.requests}
    assert len(keys) == 1


def test_async_5xx_is_retried(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    c = _retrying(AsyncInfiniumClient, capture_server, agent_id, agent_secret)
    capture_server.script(Reply(503), Reply(503))
    assert asyncio.run(c.send_task("n", "d", 1)).success
    assert capture_server.count() == 3


def test_client_errors_are_not_retried(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    c = _retrying(InfiniumClient, capture_server, agent_id, agent_secret)
    for status in (400, 401, 404):
        capture_server.requests.clear()
        capture_server.script(Reply(status))
        with pytest.raises(InfiniumError):
            c.send_task("n", "d", 1)
        assert capture_server.count() == 1, status


def test_429_with_short_retry_after_is_waited_for(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    c = _retrying(InfiniumClient, capture_server, agent_id, agent_secret)
    capture_server.script(Reply(429, headers={"Retry-After": "1"}))
    start = time.monotonic()
    assert c.send_task("n", "d", 1).success
    assert time.monotonic() - start >= 0.95
    assert capture_server.count() == 2
    # Longer than max_retry_after: raised at once.
    c2 = _retrying(InfiniumClient, capture_server, agent_id, agent_secret, max_retry_after=0.5)
    capture_server.script(Reply(429, headers={"Retry-After": "30"}))
    with pytest.raises(RateLimitError):
        c2.send_task("n", "d", 1)


def test_connection_refused_is_retried_then_network_error(agent_id: str, agent_secret: str) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    c = InfiniumClient(
        agent_id=agent_id,
        agent_secret=agent_secret,
        base_url=f"http://127.0.0.1:{port}",
        max_retries=2,
        backoff_base=0.01,
        enable_rate_limiting=False,
    )
    with pytest.raises(NetworkError) as info:
        c.send_task("n", "d", 1)
    assert type(info.value) is NetworkError
    # The OS error as Python (and so the anchor's message) words it.
    refused = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
    assert str(info.value) == f"Network error: {refused}"
    assert isinstance(info.value.original_error, ConnectionError)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("", "Request URL is missing an 'http://' or 'https://' protocol."),
        ("api.example.com/v1", "Request URL is missing an 'http://' or 'https://' protocol."),
        ("ftp://files.example.com", "Request URL has an unsupported protocol 'ftp://'."),
        ("localhost:8080", "Request URL has an unsupported protocol 'localhost://'."),
        ("http://user:pa55word@127.0.0.1:99999", "Request URL is invalid: invalid port number."),
    ],
)
def test_an_unusable_base_url_says_what_is_wrong_with_it(
    base_url: str, message: str, agent_id: str, agent_secret: str
) -> None:
    """As the anchor, the client is made and the send fails (an ``InfiniumError``);
    the message is httpx's where the anchor has one, and it is not retried."""
    c = InfiniumClient(
        agent_id, agent_secret, base_url=base_url, max_retries=3, enable_rate_limiting=False
    )
    start = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        c.send_task("n", "d", 1)
    assert str(info.value) == message
    assert "pa55word" not in repr(info.value)
    assert info.value.config_key == "base_url"
    assert isinstance(info.value, InfiniumError)
    assert time.monotonic() - start < 0.5  # not retried after backoffs


def test_read_timeout(capture_server: CaptureServer, agent_id: str, agent_secret: str) -> None:
    c = make_client(
        InfiniumClient,
        capture_server,
        agent_id,
        agent_secret,
        timeout=0.3,
        max_retries=1,
        backoff_base=0.01,
    )
    capture_server.responder = lambda req: Reply(200, delay=1.0)
    with pytest.raises(InfiniumTimeoutError) as info:
        c.send_task("n", "d", 1)
    assert str(info.value) == "Request timed out after 0.3 seconds"
    assert info.value.timeout_duration == 0.3
    assert isinstance(info.value, NetworkError)
    assert capture_server.count() == 2


def test_dropped_connection_is_a_network_error(
    client: InfiniumClient, capture_server: CaptureServer
) -> None:
    capture_server.script(Reply(drop=True))
    with pytest.raises(NetworkError):
        client.send_task("n", "d", 1)


# --- validation (SPEC §3) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message", "field"),
    [
        ({"agent_id": None}, "agent_id is required and must be a non-empty string", "agent_id"),
        ({"agent_id": "  "}, "agent_id is required and must be a non-empty string", "agent_id"),
        ({"agent_id": 123}, "agent_id is required and must be a non-empty string", "agent_id"),
        (
            {"agent_secret": ""},
            "agent_secret is required and must be a non-empty string",
            "agent_secret",
        ),
        ({"agent_id": "ab"}, "agent_id must be at least 3 characters long", "agent_id"),
        (
            {"agent_secret": " 1234567 "},
            "agent_secret must be at least 8 characters long",
            "agent_secret",
        ),
    ],
)
def test_credential_validation(
    kwargs: dict[str, Any], message: str, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFINIUM_AGENT_ID", raising=False)
    monkeypatch.delenv("INFINIUM_AGENT_SECRET", raising=False)
    args = {"agent_id": "agent-1", "agent_secret": "secret-123", **kwargs}
    for cls in (InfiniumClient, AsyncInfiniumClient):
        with pytest.raises(ValidationError) as info:
            cls(**args)
        assert str(info.value) == message and info.value.field == field


@pytest.mark.parametrize(
    ("args", "message", "field"),
    [
        (("", "d", 1), "name cannot be empty", "name"),
        ((None, "d", 1), "name is required", "name"),
        (("n", "   ", 1), "description cannot be empty", "description"),
        (("n", None, 1), "description is required", "description"),
        (("x" * 501, "d", 1), "name exceeds maximum length of 500 characters", "name"),
        (
            ("n", "x" * 10_001, 1),
            "description exceeds maximum length of 10000 characters",
            "description",
        ),
        (("n", "d", "soon"), "duration must be a number", "duration"),
        (("n", "d", float("nan")), "duration cannot be NaN", "duration"),
        (("n", "d", float("inf")), "duration cannot be infinite", "duration"),
        (("n", "d", -0.5), "duration must be non-negative", "duration"),
        (("n", "d", 86_400.01), "duration cannot exceed 86400 seconds (24 hours)", "duration"),
        (
            ("n", "d", 1, "yesterday"),
            "current_datetime must be a valid ISO 8601 string",
            "current_datetime",
        ),
        (
            ("n", "d", 1, "1899-12-31T23:59:59Z"),
            "current_datetime must be a valid ISO 8601 string",
            "current_datetime",
        ),
    ],
)
def test_send_task_validation(
    client: InfiniumClient,
    capture_server: CaptureServer,
    args: tuple[Any, ...],
    message: str,
    field: str,
) -> None:
    with pytest.raises(ValidationError) as info:
        client.send_task(*args)
    assert str(info.value) == message and info.value.field == field
    # The same rules hold for a TaskData sent directly (checked in Rust).
    if args[0] is not None and args[1] is not None and not isinstance(args[2], str):
        when = args[3] if len(args) > 3 else WHEN
        with pytest.raises(ValidationError) as info2:
            client.send_task_data(TaskData(args[0], args[1], when, args[2]))
        assert str(info2.value) == message
    assert capture_server.count() == 0


def test_datetime_forms_accepted(client: InfiniumClient, capture_server: CaptureServer) -> None:
    forms = [
        "2026-11-22",
        "2026-11-22T04:06:00",
        "2026-11-22T04:06:00+05:30",
        "2026-11-22 04:06",
    ]
    # Shapes beyond these are decided by the running Python's
    # datetime.fromisoformat, as in the anchor: 3.11 widened it (one
    # fractional digit, for one).
    odd = "2026-11-22T04:06:00.5Z"
    if sys.version_info >= (3, 11):
        forms.append(odd)
    else:
        with pytest.raises(ValidationError, match="current_datetime must be a valid ISO 8601"):
            client.send_task("n", "d", 1, current_datetime=odd)
    for when in forms:
        client.send_task("n", "d", 1, current_datetime=when)
    assert capture_server.count() == len(forms)


def test_agent_id_must_be_a_uuid_when_sending(
    capture_server: CaptureServer, agent_secret: str
) -> None:
    c = InfiniumClient(
        agent_id="agent-1", agent_secret=agent_secret, base_url=capture_server.base_url
    )
    with pytest.raises(ValidationError, match="^agent_id must be a valid UUID format$"):
        c.send_task("n", "d", 1)
    with pytest.raises(ValidationError, match="^task_id contains invalid characters$"):
        make_client(
            InfiniumClient, capture_server, str(uuid.uuid4()), agent_secret
        ).get_interpreted_task_result("x/../y")
    assert capture_server.count() == 0


def test_unknown_send_task_kwargs_raise_type_error(
    client: InfiniumClient, capture_server: CaptureServer
) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument.*costumer"):
        client.send_task("n", "d", 1, costumer={"customer_name": "typo"})
    assert capture_server.count() == 0


def test_create_task_data_coerces_dicts() -> None:
    td = InfiniumClient.create_task_data(
        "n",
        "d",
        3,
        llm_usage={"model": "m", "prompt_tokens": 5},
        customer={"customer_name": "A"},
        input_summary="x",
    )
    assert td.duration == 3.0 and isinstance(td.duration, float)
    assert td.llm_usage == infinium.LlmUsage(model="m", prompt_tokens=5)
    assert td.customer == infinium.Customer(customer_name="A")
    with pytest.raises(ValidationError, match="duration must be non-negative"):
        InfiniumClient.create_task_data("n", "d", -1)
    assert infinium.coerce_section(
        {"step_number": 1, "action": "a", "description": "d", "extra": 1}, infinium.ExecutionStep
    ).metadata == {"extra": 1}


# --- configuration, secrets, lifecycle -------------------------------------------------


def test_environment_variables_configure_the_client(
    capture_server: CaptureServer, agent_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFINIUM_AGENT_ID", agent_id)
    monkeypatch.setenv("INFINIUM_AGENT_SECRET", "env-secret-123")
    monkeypatch.setenv("INFINIUM_BASE_URL", capture_server.base_url + "/")
    c = InfiniumClient(enable_rate_limiting=False)
    assert c.base_url == capture_server.base_url
    c.send_task("n", "d", 1)
    assert capture_server.requests[-1].headers["x-agent-key"] == "env-secret-123"


def test_defaults_match_the_anchor(agent_id: str) -> None:
    c = InfiniumClient(agent_id=agent_id, agent_secret="secret-123")
    assert c.base_url == "https://platform.i42m.ai/api/v1"
    assert (c.timeout, c.max_retries, c.user_agent, c.verify_ssl) == (
        30.0,
        3,
        "infinium-python/1.0.0",
        True,
    )


def test_secret_never_appears_in_repr_or_errors(
    capture_server: CaptureServer, agent_id: str
) -> None:
    secret = "very-secret-key-0123"
    c = make_client(InfiniumClient, capture_server, agent_id, secret, timeout=0.2)
    assert secret not in repr(c) and agent_id in repr(c)
    texts = [repr(c), str(c)]
    capture_server.script(Reply(401, {"error": secret}), Reply(500), Reply(200, delay=0.5))
    for _ in range(3):
        with pytest.raises(InfiniumError) as info:
            c.send_task("n", "d", 1)
        texts += [str(info.value), repr(info.value)]
    bad = InfiniumClient(
        agent_id=agent_id,
        agent_secret=secret,
        base_url=f"http://user:{secret}@127.0.0.1:1",
        max_retries=0,
    )
    with pytest.raises(NetworkError) as net:
        bad.send_task("n", "d", 1)
    texts.append(str(net.value))
    assert all(secret not in t for t in texts), texts


def test_context_managers_and_close(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    with make_client(InfiniumClient, capture_server, agent_id, agent_secret) as c:
        c.send_task("n", "d", 1)
    with pytest.raises(InfiniumError, match="closed"):
        c.send_task("n", "d", 1)

    async def main() -> None:
        async with make_client(AsyncInfiniumClient, capture_server, agent_id, agent_secret) as ac:
            await ac.send_task("n", "d", 1)
        # As the anchor's async client: used again after close, it reopens.
        await ac.send_task("n", "d", 1)
        async with ac:
            await ac.send_task("n", "d", 1)
        await ac.close()
        await ac.close()

    asyncio.run(main())
    assert capture_server.count() == 4


def test_async_calls_do_not_block_the_loop(
    async_client: AsyncInfiniumClient, capture_server: CaptureServer
) -> None:
    capture_server.responder = lambda req: Reply(200, {"message": "slow"}, delay=0.5)

    async def main() -> int:
        sends = asyncio.gather(*(async_client.send_task("n", "d", 1) for _ in range(4)))
        results, ticks = await while_ticking(sends, 0.01)
        assert all(r.message == "slow" for r in results)
        return ticks

    start = time.monotonic()
    ticks = asyncio.run(main())
    assert time.monotonic() - start < 1.5  # concurrent, not 4 x 0.5 s
    assert ticks >= 20


def test_cancelling_an_async_send_is_clean(
    async_client: AsyncInfiniumClient, capture_server: CaptureServer
) -> None:
    capture_server.responder = lambda req: Reply(200, delay=0.5)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(async_client.send_task("n", "d", 1), 0.05)
        await asyncio.sleep(0.6)  # the aborted task must not try to resolve a dead future

    asyncio.run(main())


def test_limiter_is_on_by_default(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    c = InfiniumClient(
        agent_id=agent_id,
        agent_secret=agent_secret,
        base_url=capture_server.base_url,
        requests_per_second=20.0,
        burst=2,
    )
    start = time.monotonic()
    for _ in range(6):
        c.send_task("n", "d", 1)
    # 2 in the burst, 4 more at 20/s.
    assert time.monotonic() - start >= 0.19


def test_panics_and_bad_configuration_are_python_errors(agent_id: str) -> None:
    with pytest.raises(infinium.ConfigurationError):
        InfiniumClient(agent_id=agent_id, agent_secret="secret-123", timeout=0)
    with pytest.raises(infinium.ConfigurationError) as rate:
        InfiniumClient(agent_id=agent_id, agent_secret="secret-123", requests_per_second=-1)
    # The anchor raises ValueError("requests_per_second must be positive").
    assert isinstance(rate.value, ValueError)
    assert str(rate.value) == "requests_per_second must be positive"
    assert rate.value.config_key == "requests_per_second"
    # The anchor accepts these and fails at send time; ours says so up front.
    for bad in (-1, None, 2.0, "3", 2**32):
        with pytest.raises(infinium.ConfigurationError, match="^max_retries must be an integer"):
            InfiniumClient(agent_id=agent_id, agent_secret="secret-123", max_retries=bad)
    with pytest.raises(infinium.ConfigurationError, match="^timeout must be a positive number$"):
        InfiniumClient(agent_id=agent_id, agent_secret="secret-123", timeout="soon")


def test_changed_settings_apply_and_bad_ones_are_refused(
    client: InfiniumClient, capture_server: CaptureServer, agent_id: str
) -> None:
    client.agent_secret = "rotated-secret-1"
    client.timeout = 2
    client.send_task("n", "d", 1)
    assert capture_server.requests[-1].headers["x-agent-key"] == "rotated-secret-1"
    with pytest.raises(infinium.ConfigurationError):
        client.timeout = -1
    assert client.timeout == 2  # refused: left as it was, and still usable
    client.send_task("n", "d", 1)
    assert capture_server.count() == 2
    bg = InfiniumClient(
        agent_id=agent_id,
        agent_secret="secret-123",
        base_url=capture_server.base_url,
        background=True,
    )
    try:
        with pytest.raises(infinium.ConfigurationError, match="background"):
            bg.agent_secret = "rotated-secret-1"
        assert bg.agent_secret == "secret-123"
    finally:
        bg.close()
