"""``infinium replay [DIR]``: deliver what background export left in a spool.

Wired into the ``infinium`` command line as the ``replay`` subcommand
(``replay_main(argv) -> int``). ``DIR`` is a spool root (default: the
per-user spool directory) or one target folder in it. Each target (an
agent and the base URL its traces were queued for) is replayed by a
background client for that agent and URL, which takes over the backlog of
every exporter that is gone (the directories of live processes stay locked
and are left alone); it shows a progress bar and prints a final count.
Records the server acknowledges are removed from the spool; what cannot be
delivered stays there.

``--to URL`` delivers a backlog to another base URL than the one it was
queued for (a mistyped URL, a moved endpoint); without it every backlog goes
only to its own target.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Sequence, TextIO, Tuple

# Nothing else of the package is imported before the command runs: the
# command line (and `infinium doctor`) must start even when it is broken.
from ._internal.spool_dir import default_spool_root


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="infinium replay", description="Deliver the traces left in a spool directory."
    )
    p.add_argument(
        "dir",
        nargs="?",
        default=None,
        help=f"the spool directory (default: {default_spool_root()})",
    )
    p.add_argument(
        "--base-url",
        default=None,
        help="only the backlog queued for this base URL (needed, with its credentials, "
        "for a URL that had user:password@)",
    )
    p.add_argument("--to", default=None, help="deliver to this base URL instead")
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


def agents_in(spool: str) -> List[str]:
    """The agent ids that have a backlog under ``spool``."""
    from . import _core

    return sorted({t[1] for t in _core.Exporter.spool_targets(spool) if t[4] > 0})


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
    from . import _core

    err = sys.stderr
    spool = args.dir if args.dir is not None else default_spool_root()
    if not os.path.isdir(spool):
        if args.dir is None:
            print(f"nothing to replay in {spool}")
            return 0
        err.write(f"infinium replay: {spool} is not a directory\n")
        return 2
    targets = [t for t in _core.Exporter.spool_targets(spool) if t[4] > 0]
    agent_id = args.agent_id or os.environ.get("INFINIUM_AGENT_ID")
    if agent_id:
        targets = [t for t in targets if t[1] == agent_id]
    elif len({t[1] for t in targets}) > 1:
        agents = ", ".join(sorted({t[1] for t in targets}))
        err.write(
            f"infinium replay: backlogs of several agents found ({agents}): pass --agent-id\n"
        )
        return 2
    if args.base_url:
        chosen = args.base_url
        targets = [
            t for t in targets if t[0] == _core.Exporter.spool_target_dir(t[0].parent, t[1], chosen)
        ]
    if not targets:
        print(f"nothing to replay in {spool}")
        return 0
    secret = args.agent_secret or os.environ.get("INFINIUM_AGENT_SECRET")
    if not secret:
        err.write("infinium replay: pass --agent-secret or set INFINIUM_AGENT_SECRET\n")
        return 2
    totals = [0, 0, 0]
    status = 0
    for folder, agent, recorded, had_credentials, _ in targets:
        url = args.to or args.base_url or recorded
        if had_credentials and not (args.to or args.base_url):
            err.write(
                f"infinium replay: the backlog for {recorded} was queued for a URL with "
                "credentials, which are not stored: pass --base-url with them\n"
            )
            status = 1
            continue
        root = str(folder.parent)
        if args.to:
            _core.Exporter.retarget(folder, root, agent, args.to)
        code, counts = _replay_target(args, root, agent, secret, url)
        status = max(status, code)
        totals = [a + b for a, b in zip(totals, counts)]
    print(
        f"replayed {totals[0]} trace(s), {totals[1]} rejected by the server, "
        f"{totals[2]} left in the spool"
    )
    return status


def _replay_target(
    args: argparse.Namespace, root: str, agent: str, secret: str, url: str
) -> Tuple[int, Tuple[int, int, int]]:
    """Deliver one target's backlog; (status, (sent, rejected, left))."""
    from . import InfiniumClient
    from .exceptions import InfiniumError

    err = sys.stderr
    try:
        # The backlog of every exporter that is gone is claimed here.
        client = InfiniumClient(
            agent_id=agent,
            agent_secret=secret,
            base_url=url,
            timeout=args.timeout,
            enable_rate_limiting=not args.no_rate_limit,
            background=True,
            spool_dir=root,
            shutdown_timeout=1.0,
        )
    except InfiniumError as exc:
        err.write(f"infinium replay: {exc}\n")
        return 2, (0, 0, 0)
    show = not args.quiet
    done = total = 0
    try:
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
    return (0 if left == 0 else 1), (st["sent"], st["failed"], left)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(replay_main())
