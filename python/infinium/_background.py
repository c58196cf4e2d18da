"""Background export glue for ``InfiniumClient(background=True)`` (issue 6).

The queue, workers and spool are in Rust (``_core.Exporter``; the clients'
``_enqueue`` submits to it directly); this module starts exporters, logs
what the Rust side reports (it never calls into Python from its threads) and
makes sure every exporter is flushed when the process ends:

* an ``atexit`` hook closes every exporter still open, all within the
  longest ``shutdown_timeout`` (interpreter exit is never held longer);
* ``multiprocessing`` children leave through ``os._exit`` (no ``atexit``), so
  they get the same hook as a ``multiprocessing`` finalizer.

After ``os.fork()`` the Rust side notices the new runtime generation and
gives the child a fresh queue, spool directory and connections on first use.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from . import _core

logger = logging.getLogger("infinium")

#: Every exporter not closed yet, with its shutdown timeout.
_live: Dict[int, Tuple[_core.Exporter, float]] = {}
_lock = threading.Lock()
_atexit_registered = False
_finalizer_pid: Optional[int] = None
_fork_hook_registered = False

STAT_KEYS = (
    "queued",
    "in_flight",
    "sent",
    "failed",
    "retried",
    "spooled",
    "replayed",
    "dropped",
)


def empty_stats() -> Dict[str, int]:
    return dict.fromkeys(STAT_KEYS, 0)


def start(
    core: _core.CoreClient,
    path: str,
    agent: str,
    *,
    max_queue_size: int,
    spool_dir: Optional[str],
    durable: bool,
    shutdown_timeout: float,
    concurrency: int,
) -> _core.Exporter:
    """Start the background exporter of one client."""
    global _atexit_registered
    exporter = _core.Exporter(
        core,
        path,
        agent,
        max_queue_size=max_queue_size,
        concurrency=concurrency,
        spool_dir=os.fspath(spool_dir) if spool_dir is not None else None,
        durable=durable,
    )
    with _lock:
        _live[id(exporter)] = (exporter, float(shutdown_timeout))
        if not _atexit_registered:
            # Registered after ``infinium`` itself, so it runs before the
            # hook that stops background completions.
            atexit.register(close_all)
            _atexit_registered = True
        _ensure_mp_finalizer()
    log_warnings(exporter)
    return exporter


def log(warnings: List[str]) -> None:
    """Log what the Rust side gathered in the background."""
    for text in warnings:
        logger.warning("%s", text)


def log_warnings(exporter: _core.Exporter) -> None:
    warnings = exporter.take_warnings()
    if warnings:
        log(warnings)


def stats(exporter: Optional[_core.Exporter]) -> Dict[str, int]:
    if exporter is None:
        return empty_stats()
    log_warnings(exporter)
    return exporter.stats()


def forget(exporter: _core.Exporter) -> float:
    """Take an exporter off the exit list; its shutdown timeout."""
    with _lock:
        entry = _live.pop(id(exporter), None)
    return entry[1] if entry else 0.0


def close(exporter: _core.Exporter, timeout: float) -> bool:
    forget(exporter)
    done = exporter.close(timeout)
    log_warnings(exporter)
    return done


async def close_async(exporter: _core.Exporter, timeout: float) -> bool:
    forget(exporter)
    done = await exporter.close_async(timeout)
    log_warnings(exporter)
    return bool(done)


def close_all() -> None:
    """Close every exporter still open, within the longest shutdown timeout."""
    with _lock:
        entries = list(_live.values())
        _live.clear()
    if not entries:
        return
    deadline = time.monotonic() + max(t for _, t in entries)
    for exporter, timeout in entries:
        remaining = max(0.0, min(timeout, deadline - time.monotonic()))
        try:
            exporter.close(remaining)
            log_warnings(exporter)
        except BaseException:  # never let exit fail because of tracing
            pass


class _ForkMarker:
    """Something ``multiprocessing.util.register_after_fork`` can hold."""


_fork_marker = _ForkMarker()


def _add_finalizer() -> None:
    global _finalizer_pid
    import multiprocessing.util as mp_util

    if _finalizer_pid != os.getpid():
        _finalizer_pid = os.getpid()
        mp_util.Finalize(None, close_all, exitpriority=100)


def _after_mp_fork(_: Any) -> None:
    _add_finalizer()


def _on_fork_child() -> None:
    # ``multiprocessing`` clears its finalizers in the child after this hook
    # runs, then calls its after-fork callbacks: register one of those.
    if _live and "multiprocessing.util" in sys.modules:
        import multiprocessing.util as mp_util

        mp_util.register_after_fork(_fork_marker, _after_mp_fork)


def _ensure_mp_finalizer() -> None:
    """A ``multiprocessing`` child leaves with ``os._exit`` (no ``atexit``):
    close its exporters from a ``multiprocessing`` finalizer instead."""
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_on_fork_child)
        _fork_hook_registered = True
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        _add_finalizer()
