"""``infinium replay DIR``: deliver a spool directory's backlog.

Wired into the ``infinium`` command line as the ``replay`` subcommand
(``replay_main(argv) -> int``). It starts a background client on the spool
directory, which claims the backlog of every process that is gone (the
directories of live processes stay locked and are left alone), shows a
progress bar and prints a final count. Records the server acknowledges are
removed from the spool; what cannot be delivered stays there.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, TextIO

_DIR_NAME = re.compile(r"^([0-9a-fA-F-]{36})\.\d+\.[0-9a-f]+$")


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="infinium replay", description="Deliver the traces left in a spool directory."
    )
    p.add_argument("dir", help="the spool_dir the clients were configured with")
    p.add_argument("--base-url", default=None, help="API base URL (env INFINIUM_BASE_URL)")
    p.add_argument("--agent-id", default=None, help="agent id (env INFINIUM_AGENT_ID)")
    p.add_argument("--agent-secret", default=None, help="agent secret (env INFINIUM_AGENT_SECRET)")
    p.add_argument(
        "--stall-timeout",
        type=float,
        default=30.0,
        help="give up after this many seconds without progress (default 30)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout per request")
    p.add_argument("--no-rate-limit", action="store_true", help="disable the client rate limit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def agents_in(spool: Path) -> List[str]:
    """The agent ids that have a backlog directory under ``spool``."""
    found = set()
    if spool.is_dir():
        for entry in spool.iterdir():
            m = _DIR_NAME.match(entry.name)
            if m and entry.is_dir() and any(entry.glob("seg-*.log")):
                found.add(m.group(1).lower())
    return sorted(found)


def _bar(done: int, total: int, out: TextIO, final: bool = False) -> None:
    width = 30
    filled = width if total == 0 else min(width, width * done // max(total, 1))
    text = f"\rreplaying [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    out.write(text + ("\n" if final else ""))
    out.flush()


def replay_main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``infinium replay``; returns the exit status (0: the
    backlog is delivered, 1: some of it is still in the spool, 2: usage)."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    return run(args)


def run(args: argparse.Namespace) -> int:
    from . import InfiniumClient
    from .exceptions import InfiniumError

    spool = Path(args.dir)
    err = sys.stderr
    if not spool.is_dir():
        err.write(f"infinium replay: {spool} is not a directory\n")
        return 2
    agent_id = args.agent_id or os.environ.get("INFINIUM_AGENT_ID")
    if not agent_id:
        agents = agents_in(spool)
        if len(agents) == 1:
            agent_id = agents[0]
        elif not agents:
            print(f"nothing to replay in {spool}")
            return 0
        else:
            err.write(
                "infinium replay: backlogs of several agents found "
                f"({', '.join(agents)}): pass --agent-id\n"
            )
            return 2
    secret = args.agent_secret or os.environ.get("INFINIUM_AGENT_SECRET")
    if not secret:
        err.write("infinium replay: pass --agent-secret or set INFINIUM_AGENT_SECRET\n")
        return 2
    try:
        client = InfiniumClient(
            agent_id=agent_id,
            agent_secret=secret,
            base_url=args.base_url,
            timeout=args.timeout,
            enable_rate_limiting=not args.no_rate_limit,
            background=True,
            spool_dir=str(spool),
            shutdown_timeout=1.0,
        )
    except InfiniumError as exc:
        err.write(f"infinium replay: {exc}\n")
        return 2
    show = not args.quiet
    try:
        # The first claim of other processes' directories happens at start.
        deadline = time.monotonic() + 1.0
        st = client.stats()
        while st["spool_backlog"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            st = client.stats()
        last_progress = time.monotonic()
        last_done = -1
        while True:
            st = client.stats()
            done = st["sent"] + st["failed"]
            total = done + st["spool_backlog"]
            if show:
                _bar(done, total, err)
            if st["spool_backlog"] == 0 and st["queued"] == 0 and st["in_flight"] == 0:
                break
            if done != last_done:
                last_done, last_progress = done, time.monotonic()
            elif time.monotonic() - last_progress > args.stall_timeout:
                break
            time.sleep(0.1)
        if show:
            _bar(done, total, err, final=True)
    finally:
        st = client.stats()
        client.close()
    left = st["spool_backlog"]
    print(
        f"replayed {st['sent']} trace(s), {st['failed']} rejected by the server, "
        f"{left} left in the spool"
    )
    return 0 if left == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(replay_main())
