"""What every framework adapter shares around its run trees: the open runs
(bounded, oldest evicted), sending through the user's client (never raising),
the counters, and the adapter's public face.

Nothing here imports a framework.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, Generic, Hashable, List, Optional, Tuple, TypeVar

from ..types import ApiResponse, TaskData
from ._runtree import MAX_SPANS_PER_TRACE, RunTree

__all__ = [
    "EXIT_TIMEOUT",
    "FLUSH_TIMEOUT",
    "MAX_OPEN_TRACES",
    "MAX_SPANS_PER_TRACE",
    "AdapterBase",
    "Facade",
    "OpenRuns",
    "Sender",
]

logger = logging.getLogger("infinium.integrations")

#: Runs open at once, by default.
MAX_OPEN_TRACES = 1000
#: Seconds a framework's shutdown / force_flush waits for the sends in flight.
FLUSH_TIMEOUT = 30.0
#: Seconds the sends still in flight at exit get to finish.
EXIT_TIMEOUT = 5.0


# ---------------------------------------------------------------------------
# Open runs: bounded, oldest evicted
# ---------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class OpenRuns(Generic[K, V]):
    """Runs not finished yet, at most ``cap``; a new one past the cap evicts the
    oldest (counted, with a warning). Callers hold the adapter's lock."""

    __slots__ = ("_runs", "cap", "evicted", "on_evict", "what")

    def __init__(self, cap: int, what: str, on_evict: Optional[Callable[[V], None]] = None) -> None:
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise ValueError(f"the cap on open {what} must be a positive int, got {cap!r}")
        self.cap = cap
        self.what = what
        self.evicted = 0
        self.on_evict = on_evict
        self._runs: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, key: K) -> Optional[V]:
        return self._runs.get(key)

    def pop(self, key: K) -> Optional[V]:
        return self._runs.pop(key, None)

    def add(self, key: K, value: V) -> None:
        runs = self._runs
        while len(runs) >= self.cap:
            _, oldest = runs.popitem(last=False)
            self.evicted += 1
            if self.on_evict is not None:
                self.on_evict(oldest)
            logger.warning(
                "Infinium: more than %d open %s; the oldest was dropped unsent (%d so far)",
                self.cap,
                self.what,
                self.evicted,
            )
        runs[key] = value

    def values(self) -> List[V]:
        return list(self._runs.values())

    def clear(self) -> None:
        self._runs.clear()


# ---------------------------------------------------------------------------
# Sending through the user's client
# ---------------------------------------------------------------------------


class _LoopThread:
    """One daemon thread running an event loop, for sends that must not block
    (or cannot run on) the caller's thread. Started on first use; a forked child
    starts its own. At exit, sends still in flight get up to
    ``EXIT_TIMEOUT`` seconds to finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._pid = 0
        self._atexit = False
        self.pending: set[concurrent.futures.Future[Any]] = set()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="infinium-integrations-send", daemon=True
                )
                thread.start()
                self._loop, self._pid = loop, os.getpid()
                self.pending = set()
                if not self._atexit:
                    atexit.register(self.drain)
                    self._atexit = True
            return self._loop

    def drain(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Wait for the sends in flight (at exit)."""
        with self._lock:
            pending = list(self.pending) if self._pid == os.getpid() else []
        if pending:
            concurrent.futures.wait(pending, timeout=timeout)


_loop_thread = _LoopThread()


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Sender:
    """Hands finished traces to the user's client; never raises.

    * a sync client: ``send_task_data`` in the caller's thread (with
      ``background=True`` that only queues); a blocking send called from a thread
      running an event loop goes to the send thread instead, so the loop never
      waits on the network;
    * an async client: its coroutine runs on the send thread's own loop, so a sync
      callback neither blocks the caller's loop nor depends on it outliving the
      send (``asyncio.run`` cancels what is left on its loop when it returns);
      with ``background=True`` it only queues, without waiting: then it runs in
      the caller's thread, at once.

    :meth:`flush` waits for the sends handed to the send thread.
    """

    def __init__(self, client: Any, stats: Dict[str, int], lock: threading.Lock) -> None:
        send = getattr(client, "send_task_data", None)
        if not callable(send):
            raise TypeError(
                "client must be an InfiniumClient or AsyncInfiniumClient "
                f"(with send_task_data), got {type(client).__name__}"
            )
        self.client = client
        self._stats = stats
        self._lock = lock
        self._pending: set[concurrent.futures.Future[Any]] = set()
        is_async = asyncio.iscoroutinefunction(send)
        background = bool(getattr(client, "background", False))
        self._is_async = is_async
        self._blocking = not is_async and not background
        #: An async client that sends (rather than queues): its coroutine waits.
        self._blocking_async = is_async and not background

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _outcome(self, result: Any, name: str) -> None:
        if isinstance(result, ApiResponse) and not result.success:
            self._count("send_errors")
            logger.warning(
                "Infinium: sending the trace of %r failed: %s %s",
                name,
                result.status_code,
                result.message,
            )
        else:
            self._count("traces_sent")

    def _failed(self, name: str) -> None:
        self._count("send_errors")
        logger.warning("Infinium: sending the trace of %r failed", name, exc_info=True)

    def send(self, task_data: TaskData) -> None:
        name = task_data.name
        if self._is_async and not self._blocking_async:
            if self._queue_inline(task_data, name):
                return
        if self._is_async or (self._blocking and _running_loop() is not None):
            self._hand_off(task_data, name)
            return
        try:
            result = self.client.send_task_data(task_data)
        except Exception:
            self._failed(name)
            return
        self._outcome(result, name)

    def _queue_inline(self, task_data: TaskData, name: str) -> bool:
        """An async client with ``background=True`` only queues: its coroutine
        finishes without waiting, so it is run here, at once (False: it waited
        after all, and is handed to the send thread instead)."""
        coro = self.client.send_task_data(task_data)
        try:
            coro.send(None)
        except StopIteration as done:
            self._outcome(done.value, name)
            return True
        except Exception:
            self._failed(name)
            return True
        coro.close()
        return False

    async def _send_async(self, task_data: TaskData, name: str) -> None:
        try:
            if self._is_async:
                result = await self.client.send_task_data(task_data)
            else:
                # Blocking, on the send thread itself (it is ours; an executor
                # could not start its threads while the interpreter exits).
                result = self.client.send_task_data(task_data)
        except Exception:
            self._failed(name)
            return
        self._outcome(result, name)

    def _hand_off(self, task_data: TaskData, name: str) -> None:
        coro = self._send_async(task_data, name)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, _loop_thread.loop())
        except Exception:
            coro.close()
            self._failed(name)
            return
        with self._lock:
            self._pending.add(future)
            _loop_thread.pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
            _loop_thread.pending.discard(future)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for the sends handed to the send thread (True when all are done)."""
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return True
        _done, not_done = concurrent.futures.wait(pending, timeout=timeout)
        return not not_done


# ---------------------------------------------------------------------------
# What every adapter shares
# ---------------------------------------------------------------------------

STAT_KEYS = (
    "traces_sent",
    "send_errors",
    "build_errors",
    "callback_errors",
    "traces_evicted",
    "spans_dropped",
)


class AdapterBase:
    """Client, ``capture_content``, the lock, counters, the open runs and sending.

    ``stats()`` reports: ``traces_sent`` (handed to the client and accepted: queued
    or delivered), ``send_errors``, ``build_errors`` (a run that could not be made a
    trace), ``callback_errors`` (a framework callback this adapter failed on; the
    framework never sees the error), ``traces_evicted`` (runs dropped unsent past
    ``max_open_traces``), ``spans_dropped`` (spans past ``max_spans_per_trace``),
    ``open_traces`` and ``pending_sends``.
    """

    framework: Optional[str] = None

    def __init__(
        self,
        client: Any,
        *,
        capture_content: bool,
        max_open_traces: int,
        max_spans_per_trace: int,
        what: str,
    ) -> None:
        if not isinstance(capture_content, bool):
            raise TypeError(f"capture_content must be a bool, got {type(capture_content).__name__}")
        if (
            not isinstance(max_spans_per_trace, int)
            or isinstance(max_spans_per_trace, bool)
            or max_spans_per_trace < 1
        ):
            raise ValueError(
                f"max_spans_per_trace must be a positive int, got {max_spans_per_trace!r}"
            )
        self._lock = threading.Lock()
        self._stats: Dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._sender = Sender(client, self._stats, self._lock)
        self.client = client
        self.capture_content = capture_content
        self.max_spans_per_trace = max_spans_per_trace
        self._open: OpenRuns[Any, RunTree] = OpenRuns(max_open_traces, what, self._forget)
        self._logged_callback_error = False
        self._version: Optional[Tuple[Optional[str]]] = None

    def stats(self) -> Dict[str, int]:
        """Counters of this adapter (see the class docstring)."""
        with self._lock:
            out = dict(self._stats)
            out["traces_evicted"] = self._open.evicted
            out["open_traces"] = len(self._open)
        out["pending_sends"] = self._sender.pending()
        return out

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until the traces finished so far are handed over (True), or
        ``timeout`` seconds pass (False). A client with ``background=True`` has
        its own ``flush()`` for delivery."""
        return self._sender.flush(timeout)

    def _callback_failed(self, where: str) -> None:
        """A framework callback failed inside this adapter: log it (the first
        time with its traceback) and count it; never raise into the framework."""
        with self._lock:
            self._stats["callback_errors"] += 1
            first = not self._logged_callback_error
            self._logged_callback_error = True
        if first:
            logger.warning("Infinium: %s failed in %s", where, type(self).__name__, exc_info=True)
        else:
            logger.debug("Infinium: %s failed in %s", where, type(self).__name__, exc_info=True)

    def _new_tree(
        self,
        key: Any,
        name: str,
        description: str,
        start_ns: Optional[int] = None,
        *,
        register: bool = True,
    ) -> RunTree:
        """A run tree, registered among the open runs unless ``register`` is False
        (a run that ends as it starts). Called under the lock."""
        if self._version is None:
            self._version = (self._framework_version(),)
        tree = RunTree(
            name,
            description,
            start_ns=start_ns,
            framework=self.framework,
            framework_version=self._version[0],
            max_nodes=self.max_spans_per_trace,
        )
        if register:
            self._open.add(key, tree)
        return tree

    def _framework_version(self) -> Optional[str]:
        """The framework's version (read once, on the first run)."""
        return None

    def _forget(self, tree: RunTree) -> None:
        """A run is gone (finished or evicted): drop what maps to it (under the lock)."""

    def _finish(self, tree: RunTree, end_ns: Optional[int] = None) -> None:
        """Build the trace of a finished run and send it (never raises)."""
        try:
            if tree.dropped:
                with self._lock:
                    self._stats["spans_dropped"] += tree.dropped
            task_data = tree.build(end_ns)
        except Exception:
            with self._lock:
                self._stats["build_errors"] += 1
            logger.warning("Infinium: could not build the trace of %r", tree.name, exc_info=True)
            return
        self._sender.send(task_data)


class Facade:
    """The public face of an adapter whose state is an :class:`AdapterBase` in
    ``_core`` (the adapter itself subclasses the framework's base class)."""

    _core: AdapterBase

    @property
    def client(self) -> Any:
        """The Infinium client the traces are sent through."""
        return self._core.client

    @property
    def capture_content(self) -> bool:
        return self._core.capture_content

    def stats(self) -> Dict[str, int]:
        """Counters: ``traces_sent``, ``send_errors``, ``build_errors``,
        ``callback_errors``, ``traces_evicted``, ``spans_dropped``,
        ``open_traces``, ``pending_sends``."""
        return self._core.stats()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for the sends handed to the send thread (True when none is left)."""
        return self._core.flush(timeout)
