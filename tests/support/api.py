"""Helpers around the shipped local API (``infinium.testing.LocalServer``)."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any, Dict, Optional, Tuple

from infinium.testing import LocalServer

#: The credentials the tests' clients use (the ``agent_id`` / ``agent_secret``
#: fixtures of conftest hold the same values).
AGENT_ID = "3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15"
AGENT_SECRET = "sk-test-s3cr3t-value"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trace_body(name: str = "task", **extra: Any) -> Dict[str, Any]:
    """The smallest trace the local API accepts, plus ``extra`` fields."""
    body: Dict[str, Any] = {
        "name": name,
        "description": "a test trace",
        "current_datetime": "2026-01-02T03:04:05.123456Z",
        "duration": 1.25,
    }
    body.update(extra)
    return body


class ApiServer(LocalServer):
    """The local API on a loopback port chosen up front, so that its
    ``base_url`` is known before it starts and stays the same across
    ``stop()``/``start()`` (an outage is a refused connection), with the views
    the export tests read. Accepts ``AGENT_ID``/``AGENT_SECRET``."""

    def __init__(self, port: Optional[int] = None, **kw: Any) -> None:
        kw.setdefault("agent_id", AGENT_ID)
        kw.setdefault("agent_secret", AGENT_SECRET)
        super().__init__(port=port or free_port(), **kw)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def stored(self) -> Dict[str, Dict[str, Any]]:
        """Stored traces by ``Idempotency-Key`` (posts without one are left out)."""
        return {
            r["idempotencyKey"]: r["trace"]
            for r in self.records()
            if r["idempotencyKey"] is not None
        }

    @property
    def missing_key(self) -> int:
        """Stored traces that were posted without an ``Idempotency-Key``."""
        return sum(1 for r in self.records() if r["idempotencyKey"] is None)

    @property
    def duplicates(self) -> int:
        """Posts answered with an earlier trace (their key was seen before)."""
        return self.stats()["idempotent_replays"]

    @property
    def posts(self) -> int:
        return self.stats()["requests"]

    @property
    def faults(self) -> Dict[str, int]:
        """Injected faults by kind; ``drop`` counts both kinds of drop."""
        st = self.stats()
        return {
            "503": st["injected_5xx"],
            "429": st["injected_429"],
            "drop": st["injected_drop"] + st["injected_drop_answer"],
        }


class Http:
    """A keep-alive HTTP/1.1 connection to one local API, returning
    ``(status, lower-cased headers, parsed JSON or raw bytes)``."""

    def __init__(self, srv: LocalServer, timeout: float = 10) -> None:
        self.srv = srv
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None,
        prefix: str = "/api/v1",
    ) -> Tuple[int, Dict[str, str], Any]:
        self.conn.request(method, prefix + path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        raw = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw
        if hdrs.get("connection", "").lower() == "close":
            self.conn.close()
        return resp.status, hdrs, data

    def auth(self, agent_id: Optional[str] = None, key: Optional[str] = None) -> Dict[str, str]:
        return {
            "x-agent-id": agent_id if agent_id is not None else self.srv.agent_id,
            "x-agent-key": key if key is not None else self.srv.agent_secret,
        }

    def post_trace(
        self,
        body: Any = None,
        agent_id: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
        raw: Optional[bytes] = None,
    ) -> Tuple[int, Dict[str, str], Any]:
        aid = agent_id if agent_id is not None else self.srv.agent_id
        data = raw if raw is not None else json.dumps(body or trace_body()).encode()
        h = {"Content-Type": "application/json", **self.auth()}
        h.update(headers or {})
        return self.request("POST", f"/agents/{aid}/trace", data, h)

    def get(
        self, path: str, headers: Optional[Dict[str, str]] = None
    ) -> Tuple[int, Dict[str, str], Any]:
        return self.request("GET", path, None, self.auth() if headers is None else headers)
