"""A local Infinium API for tests, offline development and demos.

``LocalServer`` runs the Rust server of ``infinium._core`` (on the SDK's own
tokio runtime, so it never competes for the GIL) on a free loopback port::

    from infinium import InfiniumClient
    from infinium.testing import LocalServer

    with LocalServer() as srv:
        client = InfiniumClient(
            agent_id=srv.agent_id, agent_secret=srv.agent_secret, base_url=srv.base_url
        )
        client.send_task(name="t", description="d", duration=1.0)
        assert srv.traces()[0]["name"] == "t"

The server speaks the platform protocol (``POST /agents/{id}/trace``,
``GET /agents/{id}/interpreted-result/{task_id}``, ``GET /prompts/{id}/v/{version}``)
under ``base_url`` (``http://127.0.0.1:PORT/api/v1``), plus the inspection routes
``GET /agents/{id}/traces?limit=&offset=`` (newest first) and
``GET /agents/{id}/traces/{trace_id}``. ``traces()`` returns the posted bodies,
oldest first.

``FakeProvider`` stands in for the OpenAI, Anthropic and Gemini APIs on loopback, so
that ``watch()`` can be tried and tested without an API key (README, "What
``watch()`` records").
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

from infinium import _core
from infinium._internal.fake_provider import FakeProvider

__all__ = ["FakeProvider", "LocalServer", "PromptInfo"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class PromptInfo:
    """Credentials and version of a prompt registered with ``LocalServer.add_prompt``."""

    prompt_id: str
    prompt_key: str
    name: str
    version: int


def _new_secret() -> str:
    return "local-" + secrets.token_hex(16)


class LocalServer:
    """A local Infinium API server with one default agent.

    Args:
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free one (kept across ``stop()``/``start()``).
        agent_id: the default agent's id (a random UUID when omitted).
        agent_secret: the default agent's secret (random when omitted).
        agents: more agents, ``{agent_id: secret}`` or ``[{"id", "key"}]``.
        prompts: Prompt Studio prompts, a list of
            ``{"id", "key", "name", "content", "version"?, "createdAt"?}`` or
            ``{"id", "key", "name", "versions": [{"version", "content", "createdAt"?}]}``.
        db: SQLite file to store traces in (survives restarts); memory when None.
        sink: accept and count trace posts, store nothing (benchmarks).
        faults: seeded fault injection on the platform endpoints, e.g.
            ``dict(error_5xx=0.05, rate_429=0.02, retry_after=1, drop=0.05,
            drop_answer=0.05, latency_ms=0, latency_jitter_ms=0, status_5xx=503,
            seed=42, capacity=8, over_capacity="429")`` (see docs/local-api.md).
        max_connections: open connections at most (default 1024, and never
            more than three quarters of the process's descriptor limit).
        header_timeout: seconds a client has to send a request's headers,
            also the keep-alive idle time (default 30).
        body_timeout: seconds a client has to send a request's body (default 30).

    Every option is checked by the same parser as ``infinium serve``'s config
    file; a bad one raises ``ConfigurationError`` naming it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        agent_id: Optional[str] = None,
        agent_secret: Optional[str] = None,
        agents: Optional[Union[Mapping[str, str], Sequence[Mapping[str, str]]]] = None,
        prompts: Optional[Union[Sequence[Mapping[str, Any]], Mapping[str, Any]]] = None,
        db: Optional[PathLike] = None,
        sink: bool = False,
        faults: Optional[Mapping[str, Any]] = None,
        max_connections: Optional[int] = None,
        header_timeout: Optional[float] = None,
        body_timeout: Optional[float] = None,
    ) -> None:
        self._agent_id = agent_id if agent_id is not None else str(uuid.uuid4())
        self._agent_secret = agent_secret if agent_secret is not None else _new_secret()
        config: Dict[str, Any] = {
            "host": host,
            "port": port,
            "agents": agents,
            "prompts": prompts,
            "db": os.fspath(db) if db is not None else None,
            "sink": sink,
            "faults": faults,
            "max_connections": max_connections,
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
        }
        self._core = _core.LocalServer(config)
        self._core.add_agent(self._agent_id, self._agent_secret)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> LocalServer:
        """Bind and serve; returns self. Safe to call twice."""
        self._core.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (stored traces stay readable; ``start()`` serves again)."""
        self._core.stop(timeout)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<infinium.testing.LocalServer {self._core!r} agent_id={self._agent_id}>"

    # -- connection details --------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/api/v1``: pass it as ``base_url`` to the client."""
        return self._core.base_url

    @property
    def url(self) -> str:
        """The server root, ``http://HOST:PORT`` (routes also work without ``/api/v1``)."""
        base = self._core.base_url
        return base[: -len("/api/v1")] if base.endswith("/api/v1") else base

    @property
    def host(self) -> str:
        return self._core.host

    @property
    def port(self) -> int:
        return self._core.port

    @property
    def running(self) -> bool:
        return self._core.running

    @property
    def agent_id(self) -> str:
        return self._agent_id

    @property
    def agent_secret(self) -> str:
        return self._agent_secret

    @property
    def agents(self) -> Dict[str, str]:
        """Every agent the server accepts, ``{agent_id: secret}`` (ids lower-cased)."""
        return dict(self._core.agents())

    @property
    def core(self) -> _core.LocalServer:
        """The underlying ``infinium._core.LocalServer``."""
        return self._core

    def client_kwargs(self) -> Dict[str, Any]:
        """``agent_id``, ``agent_secret`` and ``base_url`` for a client constructor."""
        return {
            "agent_id": self._agent_id,
            "agent_secret": self._agent_secret,
            "base_url": self.base_url,
        }

    def client(self, **kwargs: Any) -> Any:
        """An ``infinium.InfiniumClient`` pointed at this server (kwargs are passed on)."""
        import infinium

        return infinium.InfiniumClient(**{**self.client_kwargs(), **kwargs})  # type: ignore[attr-defined,unused-ignore]

    def async_client(self, **kwargs: Any) -> Any:
        """An ``infinium.AsyncInfiniumClient`` pointed at this server."""
        import infinium

        return infinium.AsyncInfiniumClient(**{**self.client_kwargs(), **kwargs})  # type: ignore[attr-defined,unused-ignore]

    # -- what the server received --------------------------------------------

    def traces(self, agent_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Posted trace bodies (exactly as sent), oldest first; all agents by default."""
        return self._core.traces(agent_id)

    def records(self, agent_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Stored records, oldest first: ``traceId, agentId, receivedAt, idempotencyKey, trace``."""
        return self._core.records(agent_id)

    def wait_for_traces(
        self, count: int, timeout: float = 5.0, agent_id: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        """Wait until at least ``count`` traces are stored (for background sends).

        Returns the traces; raises ``TimeoutError`` when fewer arrived in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            got = self.traces(agent_id)
            if len(got) >= count:
                return got
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"expected {count} trace(s) within {timeout}s, the server has {len(got)}"
                )
            time.sleep(0.01)

    def stats(self) -> Dict[str, int]:
        """Counters: ``requests, traces_stored, idempotent_replays, sink_accepted,
        bytes_received, injected_5xx, injected_429, injected_drop,
        injected_drop_answer, capacity_429, capacity_queued, in_flight,
        max_in_flight, client_errors, not_found, server_errors,
        connections_evicted`` (see docs/local-api.md)."""
        return self._core.stats()

    def set_faults(self, faults: Optional[Mapping[str, Any]] = None) -> None:
        """Replace the fault injection while running (``None``: no faults);
        same options as ``faults=``."""
        self._core.set_faults(faults)

    def clear(self) -> None:
        """Forget every stored trace and idempotency key."""
        self._core.clear()

    # -- credentials and prompts ---------------------------------------------

    def add_agent(
        self, agent_id: Optional[str] = None, agent_secret: Optional[str] = None
    ) -> Tuple[str, str]:
        """Register another agent (random credentials by default); returns (id, secret)."""
        aid = agent_id if agent_id is not None else str(uuid.uuid4())
        secret = agent_secret if agent_secret is not None else _new_secret()
        self._core.add_agent(aid, secret)
        return aid, secret

    def add_prompt(
        self,
        content: str,
        *,
        name: str = "prompt",
        prompt_id: Optional[str] = None,
        prompt_key: Optional[str] = None,
        version: int = 1,
        created_at: Optional[str] = None,
    ) -> PromptInfo:
        """Serve a prompt version at ``GET /prompts/{prompt_id}/v/{version}``.

        Call again with the same ``prompt_id``/``prompt_key`` and another
        ``version`` to add versions; ``latest`` is the highest number.
        """
        pid = prompt_id if prompt_id is not None else str(uuid.uuid4())
        key = prompt_key if prompt_key is not None else "pk-" + secrets.token_hex(12)
        entry: Dict[str, Any] = {
            "id": pid,
            "key": key,
            "name": name,
            "content": content,
            "version": version,
        }
        if created_at is not None:
            entry["createdAt"] = created_at
        self._core.add_prompt(entry)
        return PromptInfo(prompt_id=pid, prompt_key=key, name=name, version=version)
