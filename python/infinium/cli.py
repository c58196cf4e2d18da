"""The ``infinium`` command.

- ``infinium serve [--host 127.0.0.1] [--port 8787] [--db traces.db] [--config FILE] [--sink]``
  runs the local Infinium API until Ctrl-C (exit status 0).
- ``infinium demo`` starts a local server in-process, sends traces through every
  way the SDK offers and prints what the server stored.
- ``infinium doctor`` checks that ``import infinium`` is this package (and not
  ``infinium-o2`` installed over it) and prints the commands that repair it.
- ``infinium --version`` names the installed ``infinium-rs`` version.

Subcommands are registered in :func:`build_parser`; add one with a
``_add_<name>(subparsers)`` function that sets ``func``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
import threading
import uuid
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["build_parser", "main"]

#: Credentials used by ``infinium serve`` on loopback when none are configured:
#: stable, so they can live in a local ``.env`` across restarts.
DEV_AGENT_ID = "11111111-2222-4333-8444-555555555555"
DEV_AGENT_SECRET = "local-dev-secret"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _load_config(path: str) -> Any:
    """The document of a JSON file, or TOML (``.toml``, Python 3.11+); what it
    holds is checked by the server's configuration parser."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SystemExit(f"infinium serve: --config {path}: {e.strerror or e}") from e
    if path.endswith(".toml"):
        try:
            import tomllib  # type: ignore[import-not-found,unused-ignore]
        except ModuleNotFoundError as e:  # Python < 3.11
            raise SystemExit(
                f"infinium serve: {path}: TOML config files need Python 3.11+; use JSON"
            ) from e
        try:
            return tomllib.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise SystemExit(f"infinium serve: {path} is not valid TOML: {e}") from e
    try:
        return json.loads(raw)
    except ValueError as e:
        raise SystemExit(f"infinium serve: {path} is not valid JSON: {e}") from e


# -- serve ----------------------------------------------------------------------

#: Every setting a ``serve`` flag gives: (flag, argparse dest, path in the
#: configuration). Errors about a setting given by a flag name the flag.
_SERVE_FLAGS = (
    ("--host", "host", "host"),
    ("--port", "port", "port"),
    ("--db", "db", "db"),
    ("--sink", "sink", "sink"),
    ("--agent-id", "agent_id", "agents[0].id"),
    ("--agent-secret", "agent_secret", "agents[0].key"),
    ("--fault-5xx", "fault_5xx", "faults.error_5xx"),
    ("--status-5xx", "status_5xx", "faults.status_5xx"),
    ("--fault-429", "fault_429", "faults.rate_429"),
    ("--retry-after", "retry_after", "faults.retry_after"),
    ("--fault-drop", "fault_drop", "faults.drop"),
    ("--fault-drop-answer", "fault_drop_answer", "faults.drop_answer"),
    ("--latency-ms", "latency_ms", "faults.latency_ms"),
    ("--latency-jitter-ms", "latency_jitter_ms", "faults.latency_jitter_ms"),
    ("--seed", "seed", "faults.seed"),
    ("--capacity", "capacity", "faults.capacity"),
    ("--over-capacity", "over_capacity", "faults.over_capacity"),
    ("--max-connections", "max_connections", "max_connections"),
    ("--header-timeout", "header_timeout", "header_timeout"),
    ("--body-timeout", "body_timeout", "body_timeout"),
)

DEFAULT_PORT = 8787


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the local Infinium API",
        description="Run the local Infinium API until Ctrl-C. Flags override the "
        "config file. Faults apply to the platform endpoints (trace posts, "
        "interpreted results, prompts), never to /traces or /health.",
        # Errors name the flag as typed: no abbreviations.
        allow_abbrev=False,
    )
    p.add_argument(
        "--host",
        default=None,
        help="interface to bind (default 127.0.0.1; beyond loopback only when given here)",
    )
    p.add_argument(
        "--port", type=int, default=None, help=f"TCP port (default {DEFAULT_PORT}; 0 = a free one)"
    )
    p.add_argument("--db", default=None, help="SQLite file to keep traces in across restarts")
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="JSON (or TOML) file: agents, prompts, faults, limits (docs/local-api.md)",
    )
    p.add_argument("--sink", action="store_true", default=None, help="count posts, store nothing")
    p.add_argument("--agent-id", default=None, help="agent id to accept (with --agent-secret)")
    p.add_argument("--agent-secret", default=None, help="secret of --agent-id")
    g = p.add_argument_group(
        "fault injection (seeded; SHARE is a fraction of requests, from 0 to 1)"
    )
    g.add_argument(
        "--fault-5xx",
        type=float,
        metavar="SHARE",
        help="share of requests answered with a server error (see --status-5xx)",
    )
    g.add_argument(
        "--status-5xx",
        type=int,
        metavar="CODE",
        help="status of those server errors, 500 to 599 (default 503)",
    )
    g.add_argument(
        "--fault-429",
        type=float,
        metavar="SHARE",
        help="share of requests answered 429 Too Many Requests (see --retry-after)",
    )
    g.add_argument(
        "--retry-after",
        type=int,
        metavar="SECONDS",
        help="Retry-After of injected and over-capacity 429s (default 1)",
    )
    g.add_argument(
        "--fault-drop",
        type=float,
        metavar="SHARE",
        help="share of requests whose connection is closed before they are handled",
    )
    g.add_argument(
        "--fault-drop-answer",
        type=float,
        metavar="SHARE",
        help="share of requests handled (a trace is stored) whose answer is then lost "
        "(the connection is closed)",
    )
    g.add_argument(
        "--latency-ms",
        type=int,
        metavar="MS",
        help="latency added before every answer, 429s included (default 0)",
    )
    g.add_argument(
        "--latency-jitter-ms",
        type=int,
        metavar="MS",
        help="extra random latency, uniform from 0 to MS (default 0)",
    )
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed of the fault draws: the same seed and request order give the same faults",
    )
    g.add_argument(
        "--capacity",
        type=int,
        metavar="N",
        help="serve at most N requests at once, latency included (default 0 = no limit)",
    )
    g.add_argument(
        "--over-capacity",
        choices=("429", "queue"),
        help="beyond --capacity: answer 429 with Retry-After (default) or queue the request",
    )
    lim = p.add_argument_group("limits (protection against slow or greedy clients)")
    lim.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="open connections at most (default 1024, and at most 3/4 of the descriptor "
        "limit); at the limit the oldest idle one is closed",
    )
    lim.add_argument(
        "--header-timeout",
        type=float,
        metavar="SECONDS",
        help="time to send a request's headers, also the keep-alive idle time (default 30)",
    )
    lim.add_argument(
        "--body-timeout",
        type=float,
        metavar="SECONDS",
        help="time to send a request's body (default 30)",
    )
    p.set_defaults(func=_serve)


def _overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """The settings given by flags, as a configuration document."""
    doc: Dict[str, Any] = {}
    for _flag, dest, path in _SERVE_FLAGS:
        value = getattr(args, dest)
        if value is None or dest in ("agent_id", "agent_secret"):
            continue
        if path.startswith("faults."):
            doc.setdefault("faults", {})[path.split(".", 1)[1]] = value
        else:
            doc[path] = value
    if args.agent_id is not None:
        doc["agents"] = [{"id": args.agent_id, "key": args.agent_secret}]
    return doc


def _snippet(agent_id: str, secret: str, base_url: str) -> List[str]:
    """A Python snippet that sends a trace to this server (runnable as printed)."""
    return [
        "from infinium import InfiniumClient",
        "",
        "client = InfiniumClient(",
        f"    agent_id={agent_id!r},",
        f"    agent_secret={secret!r},",
        f"    base_url={base_url!r},",
        ")",
        'print(client.send_task(name="hello", description="from the local API", duration=1.0))',
    ]


def _serve(args: argparse.Namespace) -> int:
    from infinium import _core
    from infinium.exceptions import ConfigurationError

    if (args.agent_id is None) != (args.agent_secret is None):
        print("infinium serve: --agent-id and --agent-secret go together", file=sys.stderr)
        return 2
    cfg: Any = _load_config(args.config) if args.config else None
    explicit_host = args.host is not None
    if isinstance(cfg, dict) and not explicit_host:
        file_host = cfg.get("host")
        if isinstance(file_host, str) and not _is_loopback(file_host):
            # Binding beyond loopback must be asked for on the command line.
            print(
                f"infinium serve: ignoring host {file_host!r} from {args.config}; "
                "pass --host explicitly to listen beyond loopback",
                file=sys.stderr,
            )
            cfg = {k: v for k, v in cfg.items() if k != "host"}
    overrides = _overrides(args)
    if args.port is None and not (isinstance(cfg, dict) and cfg.get("port") is not None):
        overrides["port"] = DEFAULT_PORT
    names = {path: flag for flag, _dest, path in _SERVE_FLAGS}
    try:
        server = _core.LocalServer(cfg, overrides, names, args.config)
    except ConfigurationError as e:
        print(f"infinium serve: {e}", file=sys.stderr)
        return 2
    host = server.host
    loopback = _is_loopback(host)
    if not server.agents():
        if loopback:
            server.add_agent(DEV_AGENT_ID, DEV_AGENT_SECRET)
        else:
            import secrets

            server.add_agent(str(uuid.uuid4()), "local-" + secrets.token_hex(16))
    try:
        server.start()
    except Exception as e:  # a NetworkError (port in use...) from the core
        print(f"infinium: cannot start the local API: {e}", file=sys.stderr)
        return 1

    base_url = server.base_url
    agents = server.agents()
    faults = server.settings()["faults"]
    lines = [f"Infinium local API listening on {base_url}"]
    if server.sink:
        lines.append("  storage: sink (posts are counted, nothing is stored)")
    elif args.db is not None or (isinstance(cfg, dict) and cfg.get("db")):
        db = args.db if args.db is not None else cfg["db"]
        lines.append(f"  storage: SQLite {os.path.abspath(str(db))} (kept across restarts)")
    else:
        lines.append("  storage: memory (traces are lost on exit; --db FILE keeps them)")
    if faults:
        lines.append(f"  faults:  {json.dumps(faults)}")
    for aid, secret in agents:
        lines.append(f"  agent_id:     {aid}")
        lines.append(f"  agent_secret: {secret}")
    first_id, first_secret = agents[0]
    lines += [
        "Use it from Python:",
        "",
        *("    " + line if line else "" for line in _snippet(first_id, first_secret, base_url)),
        "",
        f"Inspect: GET {base_url}/agents/<agent_id>/traces (x-agent-id / x-agent-key headers)",
        "Press Ctrl-C to stop.",
    ]
    if not loopback:
        lines.insert(
            0,
            "WARNING: listening on a non-loopback interface "
            f"({host}): traces and credentials are reachable from the network.",
        )
    # Handlers first: whoever reads the banner may signal us right away.
    stop = threading.Event()

    def _on_term(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _on_term)
    # Ctrl-C must work even when started with SIGINT ignored (e.g. as a background job).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # Inside the try: a signal may land as soon as the banner is out.
        print("\n".join(lines), flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        server.stop()
    stats = server.stats()
    print(
        f"\nStopped. {stats['requests']} request(s), {stats['traces_stored']} trace(s) stored, "
        f"{stats['sink_accepted']} sunk, {stats['injected_5xx']} injected 5xx, "
        f"{stats['injected_429']} injected 429, {stats['injected_drop']} dropped, "
        f"{stats['capacity_429']} over capacity.",
        flush=True,
    )
    return 0


# -- demo -----------------------------------------------------------------------


def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="send traces every way the SDK offers to an in-process local API",
        description="Start a local API in-process, run a small example agent through "
        "send_task, TraceBuilder, a decorated function, a batch and the async client, "
        "then print what the server stored.",
    )
    p.set_defaults(func=_demo)


def _tokens(trace: Dict[str, Any]) -> int:
    usage = trace.get("llm_usage") or {}
    if usage.get("total_tokens") is not None:
        return int(usage["total_tokens"])
    if usage.get("prompt_tokens") is not None or usage.get("completion_tokens") is not None:
        return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
    total = 0
    for step in trace.get("steps") or []:
        call = step.get("llm_call") or {}
        total += int(call.get("prompt_tokens") or 0) + int(call.get("completion_tokens") or 0)
    return total


def _errors(trace: Dict[str, Any]) -> int:
    n = len(trace.get("errors") or [])
    return n + sum(1 for s in trace.get("steps") or [] if s.get("error"))


def _summary(traces: List[Dict[str, Any]]) -> str:
    rows = [("#", "name", "steps", "tokens", "errors")]
    for i, t in enumerate(traces, 1):
        rows.append(
            (
                str(i),
                str(t.get("name", "?")),
                str(len(t.get("steps") or [])),
                str(_tokens(t)),
                str(_errors(t)),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    out = []
    for j, r in enumerate(rows):
        out.append(
            "  ".join(
                cell.ljust(widths[c]) if c == 1 else cell.rjust(widths[c])
                for c, cell in enumerate(r)
            )
        )
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _demo(args: argparse.Namespace) -> int:
    import infinium
    from infinium.testing import LocalServer

    sdk: Any = infinium
    failures: List[str] = []
    expected = 0

    def run(label: str, fn: Callable[[], int]) -> None:
        nonlocal expected
        try:
            expected += fn()
            print(f"  ok    {label}")
        except Exception as e:
            failures.append(f"{label}: {type(e).__name__}: {e}")
            print(f"  FAIL  {label}: {type(e).__name__}: {e}")

    with LocalServer() as srv:
        print(f"Local Infinium API on {srv.base_url} (agent {srv.agent_id})")
        prompt = srv.add_prompt(
            "You classify support emails about {{product}} into billing, bug or other.",
            name="email-classifier",
        )
        client = sdk.InfiniumClient(
            agent_id=srv.agent_id, agent_secret=srv.agent_secret, base_url=srv.base_url
        )

        def send_task() -> int:
            client.send_task(
                name="Summarise ticket #1042",
                description="One-paragraph summary of a customer ticket",
                duration=0.42,
                input_summary="Ticket #1042: 'I was charged twice this month.'",
                output_summary="Customer reports a duplicate charge; refund suggested.",
                llm_usage=sdk.LlmUsage(
                    model="gpt-4o-mini",
                    provider="openai",
                    prompt_tokens=182,
                    completion_tokens=41,
                    total_tokens=223,
                    api_calls_count=1,
                ),
                customer={"customer_name": "Acme Corp", "client_industry": "retail"},
            )
            return 1

        def trace_builder() -> int:
            tb = sdk.TraceBuilder("Research brief", "Collect sources and draft a brief")
            tb.set_input_summary("Topic: local-first agent tooling")
            with tb.step("tool_use", "Search the web") as step:
                step.record_tool_call(
                    "web_search", duration_ms=120, input_summary="local-first", http_status=200
                )
                step.set_output("5 results")
            with tb.step("llm_inference", "Draft the brief") as step:
                step.record_llm_call(
                    "claude-3-5-sonnet",
                    provider="anthropic",
                    prompt_tokens=900,
                    completion_tokens=350,
                )
                step.set_output("A three-paragraph brief.")
            try:
                with tb.step("tool_use", "Publish to the wiki"):
                    raise ConnectionError("wiki is read-only today")
            except ConnectionError:
                pass
            tb.set_output_summary("Brief drafted; publishing failed")
            client.send_task_data(tb.build())
            return 1

        def decorated() -> int:
            def classify_email(text: str) -> str:
                """Classify a support email."""
                fetched = client.get_prompt(
                    prompt.prompt_id, prompt.prompt_key, variables={"product": "Infinium"}
                )
                assert "Infinium" in fetched.rendered_content
                return "billing" if "charge" in text else "other"

            classify = client.trace("Email classifier")(classify_email)  # @client.trace(...)
            assert classify("I was charged twice") == "billing"
            return 1

        def batch() -> int:
            tasks = [
                sdk.InfiniumClient.create_task_data(
                    name=f"Batch item {i}",
                    description="Translate a product description",
                    duration=0.1 * i,
                    llm_usage={"model": "gpt-4o-mini", "prompt_tokens": 50 * i},
                )
                for i in range(1, 4)
            ]
            result = client.send_tasks_batch(tasks, max_concurrent=3)
            if result.failed:
                raise RuntimeError(f"{result.failed} batch item(s) failed: {result.errors}")
            return len(tasks)

        def async_client() -> int:
            async def go() -> None:
                async with sdk.AsyncInfiniumClient(
                    agent_id=srv.agent_id, agent_secret=srv.agent_secret, base_url=srv.base_url
                ) as aclient:
                    await aclient.send_task(
                        name="Async triage",
                        description="Triage an alert with the async client",
                        duration=0.05,
                        errors=[
                            sdk.ErrorDetail(
                                error_type="TimeoutError",
                                message="pager API slow",
                                recoverable=True,
                                retry_count=1,
                            )
                        ],
                    )

            asyncio.run(go())
            return 1

        print("Sending traces:")
        run("send_task", send_task)
        run("TraceBuilder + send_task_data", trace_builder)
        run("@client.trace decorated function (with a Prompt Studio fetch)", decorated)
        run("send_tasks_batch (3 tasks)", batch)
        run("AsyncInfiniumClient.send_task", async_client)
        close = getattr(client, "close", None)
        if callable(close):
            close()  # flushes anything still being sent in the background
        try:
            stored = srv.wait_for_traces(expected, timeout=10.0)
        except TimeoutError as e:
            failures.append(str(e))
            stored = srv.traces()

        print(f"\nThe local API stored {len(stored)} trace(s):")
        print(_summary(stored))
        stats = srv.stats()
        print(
            f"\n{stats['requests']} request(s) served, {stats['client_errors']} rejected, "
            f"{stats['traces_stored']} stored."
        )
    if failures:
        print(f"\n{len(failures)} part(s) of the demo failed:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("\nDemo complete: every way of sending reached the local API.")
    return 0


# -- entry point ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``infinium`` argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="infinium",
        description="Infinium SDK tools: a local Infinium API, a demo, spool replay.",
    )
    _add_version(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(sub)
    _add_demo(sub)
    _add_replay(sub)
    _add_doctor(sub)
    return parser


class _VersionAction(argparse.Action):
    """``--version``: computed when asked for (it imports the Rust core)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from ._internal import doctor

        print(doctor.version_text())
        parser.exit()


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version", action=_VersionAction, help="print the infinium-rs version and exit"
    )


def _add_doctor(sub: Any) -> None:
    from ._internal import doctor

    p = sub.add_parser(
        "doctor",
        help="check that `import infinium` is this package and say how to repair it",
        description="Check the install: which distribution owns each file of the "
        "`infinium` package (infinium-o2 installs the same package), whether the "
        "running code is infinium-rs, and the commands that fix it. Exit status 1 "
        "when something needs fixing.",
    )
    doctor.add_arguments(p)
    p.set_defaults(func=doctor.run)


def _add_replay(sub: Any) -> None:
    from . import _replay

    p = sub.add_parser(
        "replay",
        help="deliver the traces left in a background-export spool directory",
        description="Deliver the traces left in a spool directory, with a progress bar.",
    )
    _replay.build_parser(p)
    p.set_defaults(func=_replay.run)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``infinium`` command on ``argv`` (default: ``sys.argv[1:]``);
    return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
