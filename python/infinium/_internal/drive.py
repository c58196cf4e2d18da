"""Running a client operation (a generator of ``ops.Step``): blocking for
``InfiniumClient``, as a coroutine for ``AsyncInfiniumClient``.

Each step is answered by the Rust core: the blocking calls wait with the GIL
released (and answer Ctrl-C), the async ones return awaitables that never
block the event loop. An error raised by the core propagates out of the
operation (after closing it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

from .. import _core
from .ops import Batch, Http, Op, Step

__all__ = ["drive_async", "drive_sync"]

T = TypeVar("T")


def _perform(core: _core.CoreClient, step: Step, blocking: bool) -> Any:
    """What answers ``step``: the answer itself when ``blocking``, else an awaitable of it."""
    if isinstance(step, Http):
        request = core.request if blocking else core.request_async
        return request(
            step.method,
            step.path,
            step.body,
            prompt=step.prompt,
            idempotency_key=step.idempotency_key,
        )
    if isinstance(step, Batch):
        send = core.send_batch if blocking else core.send_batch_async
        return send(step.path, step.tasks, step.max_concurrent, step.fail_fast)
    return (time.sleep if blocking else asyncio.sleep)(step.seconds)


def drive_sync(core: _core.CoreClient, op: Op[T]) -> T:
    """Run ``op`` to its result, each step answered by a blocking call."""
    try:
        step = next(op)
        while True:
            step = op.send(_perform(core, step, True))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        op.close()


async def drive_async(core: _core.CoreClient, op: Op[T]) -> T:
    """Run ``op`` to its result, each step's answer awaited."""
    try:
        step = next(op)
        while True:
            step = op.send(await _perform(core, step, False))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        op.close()
