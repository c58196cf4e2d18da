"""Sending a decorated call's trace through the client given to the decorator.

A failed send is logged on ``infinium.tracing``, never raised into the traced
code. The client may be sync or async whichever the traced function is.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Awaitable, Set

from ..types import ApiResponse, TaskData

__all__ = ["send_from_async", "send_from_sync"]

logger = logging.getLogger("infinium.tracing")

#: Sends of an async client finishing on a running loop (kept until done).
_background_sends: Set[Any] = set()
_isawaitable = inspect.isawaitable


def _log_send_failure(name: str) -> None:
    logger.warning("Failed to auto-send trace for %s", name, exc_info=True)


async def _await_send(awaitable: Awaitable[Any], name: str) -> None:
    try:
        await awaitable
    except Exception:
        _log_send_failure(name)


def send_from_sync(client: Any, task_data: TaskData, name: str) -> None:
    """Send from a sync function (an async client's send finishes on the
    running loop if there is one, otherwise on a private one)."""
    try:
        pending = client.send_task_data(task_data)
    except Exception:
        _log_send_failure(name)
        return
    if isinstance(pending, ApiResponse) or not _isawaitable(pending):  # the common case first
        return
    import asyncio

    coro = _await_send(pending, name)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    task = loop.create_task(coro)
    _background_sends.add(task)
    task.add_done_callback(_background_sends.discard)


async def send_from_async(client: Any, task_data: TaskData, name: str) -> None:
    """Send from a coroutine (awaiting an async client's send)."""
    try:
        pending = client.send_task_data(task_data)
        if _isawaitable(pending):
            await pending
    except Exception:
        _log_send_failure(name)
