"""send_tasks_batch on both clients: order, concurrency, validation failures
mixed in, 429 inside a batch, fail_fast counts and cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List

import pytest

from infinium import (
    AsyncInfiniumClient,
    BatchError,
    BatchResult,
    InfiniumClient,
    TaskData,
    ValidationError,
)

from .conftest import Captured, CaptureServer, Reply, make_client, while_ticking

WHEN = "2026-11-22T04:06:00Z"


def tasks(n: int) -> List[TaskData]:
    return [TaskData(f"task-{i}", "d", WHEN, 1.0) for i in range(n)]


def echo_name(req: Captured) -> Reply:
    return Reply(200, {"message": "stored " + req.json()["name"], "traceId": req.json()["name"]})


def test_results_keep_input_order_and_run_concurrently(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def slow(req: Captured) -> Reply:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return echo_name(req)

    capture_server.responder = slow
    c = make_client(InfiniumClient, capture_server, agent_id, agent_secret)
    start = time.monotonic()
    result = c.send_tasks_batch(tasks(40), max_concurrent=8)
    elapsed = time.monotonic() - start
    assert isinstance(result, BatchResult)
    assert (result.successful, result.failed, result.errors, result.total_tasks) == (40, 0, [], 40)
    assert [r.data["traceId"] for r in result.results] == [f"task-{i}" for i in range(40)]  # type: ignore[index]
    assert [r.message for r in result.results][:2] == ["stored task-0", "stored task-1"]
    assert peak <= 8 and peak >= 4
    assert elapsed < 40 * 0.05 / 2  # really concurrent
    assert capture_server.count() == 40


def test_async_batch_order_and_concurrency_limit(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    capture_server.responder = echo_name
    c = make_client(AsyncInfiniumClient, capture_server, agent_id, agent_secret)
    result = asyncio.run(c.send_tasks_batch(tasks(30), max_concurrent=3))
    assert result.successful == 30
    assert [r.data["traceId"] for r in result.results] == [f"task-{i}" for i in range(30)]  # type: ignore[index]
    seq = asyncio.run(c.send_batch_sequential(tasks(3)))
    assert seq.successful == 3


def slow_echo(req: Captured) -> Reply:
    reply = echo_name(req)
    reply.delay = 0.02
    return reply


def test_sync_batch_leaves_the_gil_to_other_threads(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    capture_server.responder = slow_echo
    c = make_client(InfiniumClient, capture_server, agent_id, agent_secret)
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        # Pure Python: it only advances while it holds the GIL.
        nonlocal ticks
        while not stop.is_set():
            for _ in range(200):
                pass
            ticks += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        result = c.send_tasks_batch(tasks(20), max_concurrent=2)
    finally:
        stop.set()
        spinner.join()
    assert result.successful == 20
    # ~0.2 s of sending; a batch holding the GIL would leave the thread ~0 turns.
    assert ticks > 100


def test_async_batch_never_blocks_the_loop(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    capture_server.responder = slow_echo
    c = make_client(AsyncInfiniumClient, capture_server, agent_id, agent_secret)
    batch = c.send_tasks_batch(tasks(20), max_concurrent=2)
    result, ticks = asyncio.run(while_ticking(batch, 0.005))
    assert result.successful == 20
    # ~0.2 s of sending at one tick per 5 ms: a blocked loop would tick ~once.
    assert ticks >= 10


def test_validation_failures_fail_alone(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    batch = tasks(6)
    batch[1] = TaskData("", "d", WHEN, 1.0)
    batch[4] = TaskData("bad-duration", "d", WHEN, -3.0)
    for cls in (InfiniumClient, AsyncInfiniumClient):
        capture_server.requests.clear()
        c = make_client(cls, capture_server, agent_id, agent_secret)
        result = c.send_tasks_batch(batch, max_concurrent=2)
        if cls is AsyncInfiniumClient:
            result = asyncio.run(result)
        assert (result.successful, result.failed) == (4, 2)
        assert result.errors == [
            "Task '' failed: name cannot be empty",
            "Task 'bad-duration' failed: duration must be non-negative",
        ]
        bad = result.results[4]
        assert not bad.success and bad.status_code is None
        assert bad.message == "Task 'bad-duration' failed: duration must be non-negative"
        assert bad.data == {"task_name": "bad-duration"}
        assert capture_server.count() == 4


def test_server_errors_inside_a_batch(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    capture_server.responder = lambda req: (
        Reply(500) if req.json()["name"] == "task-2" else echo_name(req)
    )
    c = make_client(
        InfiniumClient, capture_server, agent_id, agent_secret, max_retries=1, backoff_base=0.01
    )
    result = c.send_tasks_batch(tasks(5))
    assert (result.successful, result.failed) == (4, 1)
    assert result.errors == ["Task 'task-2' failed: Server error: 500"]
    assert capture_server.count() == 6  # task-2 tried twice


def test_429_in_a_batch_waits_for_retry_after(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    throttled = {"task-1"}

    def reply(req: Captured) -> Reply:
        name = req.json()["name"]
        if name in throttled:
            throttled.discard(name)
            return Reply(429, headers={"Retry-After": "1"})
        return echo_name(req)

    capture_server.responder = reply
    c = make_client(InfiniumClient, capture_server, agent_id, agent_secret, max_retries=2)
    start = time.monotonic()
    result = c.send_tasks_batch(tasks(4), max_concurrent=4)
    assert result.successful == 4 and result.failed == 0
    assert time.monotonic() - start >= 0.95
    assert capture_server.count() == 5


@pytest.mark.parametrize("cls", [InfiniumClient, AsyncInfiniumClient])
def test_empty_list_and_bad_concurrency(
    capture_server: CaptureServer, agent_id: str, agent_secret: str, cls: Any
) -> None:
    c = make_client(cls, capture_server, agent_id, agent_secret)

    def call(*args: Any) -> Any:
        r = c.send_tasks_batch(*args)
        return asyncio.run(r) if cls is AsyncInfiniumClient else r

    with pytest.raises(ValidationError, match="^tasks list cannot be empty$"):
        call([])
    with pytest.raises(ValidationError, match="^max_concurrent must be at least 1$"):
        call(tasks(1), 0)


def test_fail_fast_true_counts_and_cancels_in_flight(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    failed_at: List[float] = []

    def reply(req: Captured) -> Reply:
        name = req.json()["name"]
        index = int(name.split("-")[1])
        if index == 6:
            failed_at.append(time.monotonic() + 0.3)
            return Reply(400, {"error": "rejected"}, delay=0.3)
        # 0-5 succeed at once, 6 fails after 0.3 s, later ones are slow (in flight
        # when 6 fails, and must be cancelled).
        return Reply(200, {"message": "ok"}, delay=0.0 if index < 6 else 2.0)

    capture_server.responder = reply
    c = make_client(AsyncInfiniumClient, capture_server, agent_id, agent_secret)

    async def main() -> BatchError:
        with pytest.raises(BatchError) as info:
            await c.send_tasks_batch(tasks(200), max_concurrent=4, fail_fast=True)
        return info.value

    start = time.monotonic()
    err = asyncio.run(main())
    assert time.monotonic() - start < 1.5  # in-flight slow sends were cancelled, not awaited
    assert str(err) == "Batch operation failed on task 'task-6': rejected"
    assert err.failed_count == 1
    assert err.successful_count == 6
    assert err.errors == ["Task 'task-6' failed: rejected"]
    time.sleep(0.3)
    # No new send started after the failure.
    started_after = [r for r in capture_server.requests if r.at > failed_at[0] + 0.05]
    assert started_after == []
    assert capture_server.count() < 12


def test_fail_fast_false_collects_everything(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    capture_server.responder = lambda req: (
        Reply(400, {"error": "no"}) if req.json()["name"].endswith("3") else echo_name(req)
    )
    c = make_client(AsyncInfiniumClient, capture_server, agent_id, agent_secret)
    result = asyncio.run(c.send_tasks_batch(tasks(20), max_concurrent=5))
    assert (result.successful, result.failed) == (18, 2)
    assert result.errors == ["Task 'task-3' failed: no", "Task 'task-13' failed: no"]


def test_batch_with_dicts_and_generators(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    c = make_client(InfiniumClient, capture_server, agent_id, agent_secret)
    mixed: Any = (
        t
        for t in [
            TaskData("a", "d", WHEN, 1.0),
            {"name": "b", "description": "d", "current_datetime": WHEN, "duration": 2},
        ]
    )
    result = c.send_tasks_batch(mixed)
    assert result.successful == 2
    assert [r.json()["name"] for r in capture_server.requests] in (["a", "b"], ["b", "a"])


class CountedTask(TaskData):
    """Counts how many times the serialiser read it (a property shadowing a
    field makes it read through getattr, once per serialisation)."""

    reads = 0

    @property
    def description(self) -> str:
        type(self).reads += 1
        return "d"

    @description.setter
    def description(self, value: str) -> None:
        pass


def test_a_batch_serialises_ahead_of_its_sends_by_a_bounded_window(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    """Streaming: while the sink holds every answer, a 3,000-trace batch at
    ``max_concurrent=4`` has serialised only its in-flight requests and a
    bounded look-ahead (the channel: 2 x 4 + one chunk of 32), not the batch;
    released, it completes."""
    release = threading.Event()

    def held(req: Captured) -> Reply:
        release.wait(30)
        return Reply(204)

    capture_server.responder = held
    CountedTask.reads = 0
    batch = [CountedTask(f"task-{i}", "d", WHEN, 1.0) for i in range(3000)]
    c = make_client(InfiniumClient, capture_server, agent_id, agent_secret)
    out: List[BatchResult] = []
    sender = threading.Thread(target=lambda: out.append(c.send_tasks_batch(batch, 4)))
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while capture_server.count() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # room to run ahead, if it would
        assert capture_server.count() == 4
        assert 4 <= CountedTask.reads <= 4 + 2 * 4 + 2 * 32, CountedTask.reads
    finally:
        release.set()
        sender.join(60)
    assert out and out[0].successful == 3000
    assert CountedTask.reads == 3000


def test_large_batch_streams(
    capture_server: CaptureServer, agent_id: str, agent_secret: str
) -> None:
    capture_server.responder = lambda req: Reply(204)
    c = make_client(InfiniumClient, capture_server, agent_id, agent_secret)
    result = c.send_tasks_batch(tasks(1500), max_concurrent=16)
    assert result.successful == 1500 and capture_server.count() == 1500
    assert result.results[-1].status_code == 204
