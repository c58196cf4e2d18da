"""The client-side rate limiter under contention, measured where it matters:
request start times at a real server."""

from __future__ import annotations

import asyncio
import threading
from typing import List

from infinium import AsyncInfiniumClient, InfiniumClient

from .conftest import CaptureServer

RATE = 20.0
BURST = 5


def max_in_window(times: List[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] < t - window + 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_threads_never_exceed_rate_plus_burst(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    c = InfiniumClient(
        agent_id=agent_id,
        agent_secret=agent_secret,
        base_url=capture_server.base_url,
        requests_per_second=RATE,
        burst=BURST,
        max_retries=0,
    )
    threads = [
        threading.Thread(target=lambda: [c.send_task("n", "d", 1) for _ in range(6)])
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    arrivals = [r.at for r in capture_server.requests]
    assert len(arrivals) == 96
    assert max_in_window(arrivals) <= RATE + BURST
    # And it is not needlessly slow: (96 - burst) / rate seconds, plus slack.
    span = max(arrivals) - min(arrivals)
    assert (96 - BURST) / RATE * 0.97 <= span <= (96 - BURST) / RATE + 1.0


def test_tasks_never_exceed_rate_plus_burst(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    c = AsyncInfiniumClient(
        agent_id=agent_id,
        agent_secret=agent_secret,
        base_url=capture_server.base_url,
        requests_per_second=RATE,
        burst=BURST,
        max_retries=0,
    )

    async def main() -> None:
        async def worker() -> None:
            for _ in range(2):
                await c.send_task("n", "d", 1)

        await asyncio.gather(*(worker() for _ in range(40)))

    asyncio.run(main())
    arrivals = [r.at for r in capture_server.requests]
    assert len(arrivals) == 80
    assert max_in_window(arrivals) <= RATE + BURST


def test_window_counter() -> None:
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert max_in_window([]) == 0
