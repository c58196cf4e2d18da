#!/usr/bin/env python3
"""The cost ``watch()`` adds to an LLM call: watched vs unwatched clients of the real
``openai`` / ``anthropic`` packages against ``infinium.testing.FakeProvider`` (loopback
HTTP), per call, outside a trace and inside one.

Usage:
    python benches/watch_overhead.py                # ~1 min on 2 cores
    python benches/watch_overhead.py --quick        # smoke run, seconds
    python benches/watch_overhead.py --calls 600 --rounds 9 --json

Inside a trace the call is made by a function decorated with
``trace_agent(..., auto_send=False)``, and the trace it built is serialised
(``infinium.dumps``: the bytes that would be sent): both variants pay for the
decorator and the body; the watched one adds the recording, the ``llm_call`` step
and its share of the body. Outside a trace the watched variant pays for the
pass-through (one context-variable read).

Three transports: ``loopback`` (HTTP to the fake provider, in a child process),
``replay`` (an ``httpx2.MockTransport`` answering each request with the bytes the
fake provider gave the first time: the packages' own request building and parsing
remain, the network noise goes) and ``stub`` (the client's method replaced, before
``watch()``, by one returning the response, or an iterator over the chunks, the
fake provider gave: what is left is the cost of the wrapper and the recording;
the helpers ``responses.stream()`` / ``messages.stream()`` need a real response and
are not run there).

Each round times ``--calls`` calls of every variant, interleaved call by call (so
that drift hits both alike); a figure is the median per-call time of a round, and
the table shows the median over ``--rounds`` rounds, the added cost being the
median of the per-round differences. The fake provider's own time (HTTP on
loopback, the package's parsing) is in both variants: the difference is ours.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import anthropic
import httpx2
import openai

import infinium
from infinium.integrations import watch

TRANSPORTS = ("loopback", "replay", "stub")
MESSAGES = [{"role": "user", "content": "summarise the plan in three words"}]


# The fake provider runs in a process of its own, so that its threads do not take
# the GIL from the calls being timed; it stops when its stdin closes.
_SERVE = (
    "import sys\n"
    "from infinium.testing import FakeProvider\n"
    "with FakeProvider(max_lifetime=3600) as fake:\n"
    "    print(fake.url, flush=True)\n"
    "    sys.stdin.read()\n"
)


@contextlib.contextmanager
def fake_provider() -> Iterator[str]:
    """The URL of a fake provider running in a child process."""
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def replay_client(real: httpx2.Client) -> httpx2.Client:
    """An HTTP client answering each distinct request (method, URL path, body) with
    what ``real`` got for it the first time."""
    seen: Dict[Tuple[str, str, bytes], Tuple[int, Dict[str, str], bytes]] = {}

    def answer(request: httpx2.Request) -> httpx2.Response:
        key = (request.method, request.url.path, request.content)
        if key not in seen:
            r = real.request(request.method, request.url, content=request.content)
            headers = {"content-type": r.headers.get("content-type", "application/json")}
            seen[key] = (r.status_code, headers, r.content)
        status, headers, content = seen[key]
        return httpx2.Response(status, headers=headers, content=content)

    return httpx2.Client(transport=httpx2.MockTransport(answer))


def stub(o: Any) -> Any:
    """``o`` (OpenAI) with ``chat.completions.create`` and ``responses.create`` answering
    from memory what they answered once."""
    reply = o.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = list(
        o.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    response = o.responses.create(model="gpt-4o", input="summarise the plan in three words")
    o.chat.completions.create = lambda **kw: iter(chunks) if kw.get("stream") else reply
    o.responses.create = lambda **kw: response
    return o


def cases(o: Any, a: Any) -> Dict[str, Callable[[], Any]]:
    """One call of each entry point, with client ``o`` (OpenAI) and ``a`` (Anthropic)."""

    def chat() -> Any:
        return o.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def chat_stream() -> Any:
        stream = o.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        return sum(1 for _ in stream)

    def responses() -> Any:
        return o.responses.create(model="gpt-4o", input="summarise the plan in three words")

    def responses_stream() -> Any:
        with o.responses.stream(model="gpt-4o", input="summarise the plan") as s:
            return s.get_final_response()

    def messages_stream() -> Any:
        with a.messages.stream(model="claude", max_tokens=50, messages=MESSAGES) as s:
            return s.get_final_message()

    return {
        "chat.completions.create": chat,
        "chat.completions.create(stream=True)": chat_stream,
        "responses.create": responses,
        "responses.stream()": responses_stream,
        "anthropic messages.stream()": messages_stream,
    }


def traced(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` made inside a trace, whose body is then serialised."""
    decorated: Any = infinium.trace_agent("bench", auto_send=False)(fn)

    def run() -> Any:
        decorated()
        return infinium.dumps(decorated.last_trace)

    return run


def timed(fn: Callable[[], Any]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def measure(
    plain: Callable[[], Any], watched: Callable[[], Any], calls: int, rounds: int
) -> Tuple[float, float, float]:
    """(unwatched µs, watched µs, added µs) per call: medians as the docstring says."""
    base: List[float] = []
    ours: List[float] = []
    added: List[float] = []
    for _ in range(3):  # warm up both paths (connections, caches)
        plain()
        watched()
    for r in range(rounds):
        gc.collect()
        a: List[int] = []
        b: List[int] = []
        for i in range(calls):
            if (i + r) % 2:
                a.append(timed(plain))
                b.append(timed(watched))
            else:
                b.append(timed(watched))
                a.append(timed(plain))
        ma, mb = statistics.median(a) / 1000, statistics.median(b) / 1000
        base.append(ma)
        ours.append(mb)
        added.append(mb - ma)
    return statistics.median(base), statistics.median(ours), statistics.median(added)


def run(args: argparse.Namespace, url: str) -> List[Dict[str, Any]]:
    """The table's rows: every transport x entry point x scope."""
    rows: List[Dict[str, Any]] = []
    real = httpx2.Client()
    transports = TRANSPORTS if args.transport == "all" else (args.transport,)
    for transport in transports:
        replay = transport == "replay"

        def oai(replay: bool = replay, stubbed: bool = transport == "stub") -> Any:
            http = replay_client(real) if replay else None
            o = openai.OpenAI(base_url=url + "/v1", api_key="x", http_client=http)
            return stub(o) if stubbed else o

        def anth(replay: bool = replay) -> Any:
            http = replay_client(real) if replay else None
            return anthropic.Anthropic(base_url=url, api_key="x", http_client=http)

        unwatched = cases(oai(), anth())
        watched = cases(watch(oai()), watch(anth()))
        for name in unwatched:
            if args.only and args.only not in name:
                continue
            if transport == "stub" and name.endswith("stream()"):
                continue
            for scope, plain, ours in (
                ("untraced", unwatched[name], watched[name]),
                ("traced", traced(unwatched[name]), traced(watched[name])),
            ):
                base, mine, extra = measure(plain, ours, args.calls, args.rounds)
                rows.append(
                    {"transport": transport, "entry point": name, "scope": scope,
                     "unwatched_us": round(base, 1), "watched_us": round(mine, 1),
                     "added_us": round(extra, 1)}
                )  # fmt: skip
                print(
                    f"{transport:8s} {name:38s} {scope:9s} unwatched {base:8.1f} µs"
                    f"  watched {mine:8.1f} µs  added {extra:+7.1f} µs",
                    file=sys.stderr,
                    flush=True,
                )
    real.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300, help="calls per variant per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 calls, 1 round")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--only", help="only the entry points whose name contains this")
    ap.add_argument("--transport", choices=(*TRANSPORTS, "all"), default="all", help="see above")
    args = ap.parse_args()
    if args.quick:
        args.calls, args.rounds = 20, 1
    with fake_provider() as url:
        rows = run(args, url)
    meta = {
        "python": platform.python_version(),
        "openai": openai.__version__,
        "anthropic": anthropic.__version__,
        "calls": args.calls,
        "rounds": args.rounds,
        "machine": platform.machine(),
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return 0
    print(f"\nwatch() overhead per call ({json.dumps(meta)})\n")
    print("| transport | entry point | scope | unwatched µs | watched µs | added µs |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['transport']} | {r['entry point']} | {r['scope']} | "
            f"{r['unwatched_us']} | {r['watched_us']} | {r['added_us']:+} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
