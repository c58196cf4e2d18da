"""Background export glue for ``InfiniumClient(background=True)``.

The queue, workers and spool are in Rust (``_core.Exporter``; the clients'
``_enqueue`` submits to it directly); this module checks the export
arguments, starts exporters, logs what the Rust side reports (it never calls
into Python from its threads) and makes sure every exporter is closed when
the process ends (closing delivers for at most ``shutdown_timeout`` seconds,
then saves the rest in the spool):

* an ``atexit`` hook closes every exporter still open, all within the
  longest ``shutdown_timeout`` (interpreter exit is never held longer);
* ``multiprocessing`` children leave through ``os._exit`` (no ``atexit``), so
  they get the same hook as a ``multiprocessing`` finalizer;
* ``Pool.terminate()`` (what ``with Pool() as p:`` does on exit) and
  ``Process.terminate()`` kill children with SIGTERM: a ``multiprocessing``
  child whose SIGTERM is at its default gets a handler that closes the
  exporters first, then dies of SIGTERM as it would have.

The spool is on by default, in a per-user cache directory
(:func:`default_spool_root`); ``spool_dir=False`` turns it off.

After ``os.fork()`` the Rust side notices the new runtime generation and
gives the child a fresh queue, spool directory and connections on first use.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _core
from ._internal.spool_dir import default_spool_root
from .exceptions import ConfigurationError

logger = logging.getLogger("infinium")

#: Every exporter not closed yet, with its shutdown timeout.
_live: Dict[int, Tuple[_core.Exporter, float]] = {}
#: Re-entrant: the SIGTERM handler may run while the main thread holds it.
_lock = threading.RLock()
_atexit_registered = False
_finalizer_pid: Optional[int] = None
_fork_hook_registered = False
_sigterm_pid: Optional[int] = None
_after_fork_pid: Optional[int] = None
_closing_all = False

#: ``max_spool_bytes`` default: 1 GiB.
DEFAULT_MAX_SPOOL_BYTES = 1 << 30

STAT_KEYS = (
    "queued",
    "in_flight",
    "sent",
    "failed",
    "retried",
    "spooled",
    "replayed",
    "dropped",
    "claimed",
    "unreadable",
    "spool_backlog",
)


def empty_stats() -> Dict[str, int]:
    return dict.fromkeys(STAT_KEYS, 0)


SpoolDir = Union[None, bool, str, "os.PathLike[str]"]


def export_args(
    *,
    max_queue_size: int,
    spool_dir: SpoolDir,
    durable: bool,
    shutdown_timeout: float,
    export_concurrency: int,
    max_spool_bytes: int,
) -> Dict[str, Any]:
    """Check the background export arguments (at construction, whether or
    not ``background=True``); the keyword arguments of :func:`start`.

    ``spool_dir``: ``None`` (or ``True``) is the per-user default directory,
    ``False`` no spool, anything else a directory path."""
    if spool_dir is False:
        if durable:
            raise ConfigurationError(
                "durable=True keeps every trace on disk and cannot be combined with "
                "spool_dir=False",
                config_key="spool_dir",
            )
        root: Optional[str] = None
        default = False
    elif spool_dir is None or spool_dir is True:
        root, default = default_spool_root(), True
    elif isinstance(spool_dir, (str, os.PathLike)):
        path = os.fspath(spool_dir)
        if not isinstance(path, str) or not path:
            raise ConfigurationError(
                "spool_dir must be a non-empty str path", config_key="spool_dir"
            )
        root, default = path, False
    else:
        raise ConfigurationError(
            "spool_dir must be a path, None (the default directory) or False (no spool), "
            f"not {type(spool_dir).__name__}",
            config_key="spool_dir",
        )
    if (
        isinstance(max_spool_bytes, bool)
        or not isinstance(max_spool_bytes, int)
        or not 0 < max_spool_bytes < 1 << 63
    ):
        raise ConfigurationError(
            "max_spool_bytes must be a positive int", config_key="max_spool_bytes"
        )
    return dict(
        max_queue_size=max_queue_size,
        spool_dir=root,
        spool_default=default,
        durable=bool(durable),
        max_spool_bytes=max_spool_bytes,
        shutdown_timeout=shutdown_timeout,
        concurrency=export_concurrency,
    )


def start(
    core: _core.CoreClient,
    path: str,
    agent: str,
    *,
    max_queue_size: int,
    spool_dir: Optional[str],
    spool_default: bool,
    durable: bool,
    max_spool_bytes: int,
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
        spool_dir=spool_dir,
        spool_default=spool_default,
        durable=durable,
        max_spool_bytes=max_spool_bytes,
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
    try:
        done = await exporter.close_async(timeout)
    except BaseException:
        # Cancelled: the close goes on as a task; the exit hook waits for
        # it (and spools what is left) if the program ends first.
        with _lock:
            _live[id(exporter)] = (exporter, float(timeout))
        raise
    log_warnings(exporter)
    return bool(done)


def close_all() -> None:
    """Close every exporter still open, within the longest shutdown timeout
    (what is not delivered by then goes to the spool)."""
    global _closing_all
    with _lock:
        entries = list(_live.values())
        _live.clear()
    if not entries:
        return
    _closing_all = True
    try:
        deadline = time.monotonic() + max(t for _, t in entries)
        for exporter, timeout in entries:
            remaining = max(0.0, min(timeout, deadline - time.monotonic()))
            try:
                exporter.close(remaining)
                log_warnings(exporter)
            except BaseException:  # never let exit fail because of tracing
                pass
    finally:
        _closing_all = False


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    """SIGTERM in a ``multiprocessing`` child: close the exporters (deliver
    for at most ``shutdown_timeout``, spool the rest), then die of SIGTERM
    as the default disposition would have (same exit status)."""
    if _closing_all:
        return  # already leaving: the close under way finishes first
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        close_all()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        os._exit(128 + signum)  # pragma: no cover (the signal ends us first)


def _install_sigterm_close() -> None:
    """Give this ``multiprocessing`` child the SIGTERM handler above, unless
    SIGTERM is not at its default (the program handles it) or this is not
    the main thread (only it can set handlers)."""
    global _sigterm_pid
    if _sigterm_pid == os.getpid() or not hasattr(signal, "SIGTERM"):
        return
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return
    _sigterm_pid = os.getpid()


class _ForkMarker:
    """Something ``multiprocessing.util.register_after_fork`` can hold."""


_fork_marker = _ForkMarker()


def _add_finalizer() -> None:
    global _finalizer_pid
    import multiprocessing.util as mp_util

    if _finalizer_pid != os.getpid():
        _finalizer_pid = os.getpid()
        mp_util.Finalize(None, close_all, exitpriority=100)
    _install_sigterm_close()


def _after_mp_fork(_: Any) -> None:
    _add_finalizer()


def _register_after_fork() -> None:
    """Have ``multiprocessing`` run ``_after_mp_fork`` in the children it
    forks from here (it resets their finalizers, then runs these)."""
    global _after_fork_pid
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None and _after_fork_pid != os.getpid():
        _after_fork_pid = os.getpid()
        mp_util.register_after_fork(_fork_marker, _after_mp_fork)


def _on_fork_child() -> None:
    # ``multiprocessing`` clears its finalizers in the child after this hook
    # runs, then calls its after-fork callbacks: make sure ours is one of
    # them (``multiprocessing`` may have been imported after ``start``).
    if _live:
        _register_after_fork()


def _ensure_mp_finalizer() -> None:
    """A ``multiprocessing`` child leaves with ``os._exit`` (no ``atexit``):
    close its exporters from a ``multiprocessing`` finalizer instead."""
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_on_fork_child)
        _fork_hook_registered = True
    _register_after_fork()
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return
    # A child that is running, or (spawn, forkserver) one importing the
    # main module before it runs.
    if mp.parent_process() is not None or getattr(mp.current_process(), "_inheriting", False):
        _add_finalizer()
