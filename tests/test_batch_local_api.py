"""A large batch through the local Infinium API with seeded fault injection:
every trace ends up stored exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

from infinium import AsyncInfiniumClient, InfiniumClient, TaskData
from infinium.testing import LocalServer

WHEN = "2026-11-22T04:06:00Z"
N = 20_000


def test_20k_batch_with_5xx_and_429_all_succeed() -> None:
    faults = {"error_5xx": 0.05, "rate_429": 0.02, "retry_after": 0, "seed": 7}
    with LocalServer(faults=faults) as srv:
        client = InfiniumClient(
            agent_id=srv.agent_id,
            agent_secret=srv.agent_secret,
            base_url=srv.base_url,
            enable_rate_limiting=False,
            max_retries=5,
            backoff_base=0.001,
        )
        tasks = [TaskData(f"t-{i}", "d", WHEN, 1.0) for i in range(N)]
        result = client.send_tasks_batch(tasks, max_concurrent=32)
        assert result.failed == 0, result.errors[:3]
        assert result.successful == N
        stats = srv.stats()
        # The faults really happened, at about the rates asked for...
        assert 0.04 * N < stats["injected_5xx"] < 0.065 * N
        assert 0.012 * N < stats["injected_429"] < 0.03 * N
        # ...and every trace is stored exactly once.
        names = Counter(t["name"] for t in srv.traces())
        assert len(names) == N and set(names.values()) == {1}
        assert [r.data["traceId"] for r in result.results[:1]]  # type: ignore[index]


def test_async_batch_through_the_local_api() -> None:
    with LocalServer(faults={"error_5xx": 0.1, "seed": 3}) as srv:
        client = AsyncInfiniumClient(
            agent_id=srv.agent_id,
            agent_secret=srv.agent_secret,
            base_url=srv.base_url,
            enable_rate_limiting=False,
            max_retries=6,
            backoff_base=0.001,
        )
        tasks = [TaskData(f"a-{i}", "d", WHEN, 1.0) for i in range(2000)]
        result = asyncio.run(client.send_tasks_batch(tasks, max_concurrent=16))
        assert (result.successful, result.failed) == (2000, 0)
        assert len({t["name"] for t in srv.traces()}) == 2000
