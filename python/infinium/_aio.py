"""Glue for awaitables completed by the Rust core (see ``src/bridge.rs``)."""

from __future__ import annotations

import asyncio
from typing import Any, Optional


def resolve(fut: asyncio.Future[Any], exc: Optional[BaseException], value: Any) -> None:
    """Complete ``fut`` on its own loop unless it was cancelled meanwhile."""
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
