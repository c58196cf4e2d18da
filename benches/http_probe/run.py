"""Run the HTTP probe against nginx, beside wrk, and print one table.

    python benches/http_probe/run.py [--rounds 5]

Builds ``http-probe`` (cargo, release), starts nginx through ``benches/sinks.py``
and runs every variant (see ``src/main.rs``) once per round, the order rotated
each round so that no variant always runs first on a warm machine. Prints the
median over rounds of each figure and its ratio to wrk with the same number
of connections, taken within each round. Needs cargo, nginx and wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sinks  # noqa: E402

BODY_LEN = 13_219  # the benchmark trace's size, as in src/main.rs
SEQUENTIAL = ["S1", "S5", "S2", "S3", "S4", "wrk-c1"]
CONCURRENT = ["C1", "C4", "C2", "C3", "wrk-c32"]
WHAT = {
    "S1": "reqwest as the SDK configures it, block_on per request",
    "S2": "hyper conn API, connection task spawned",
    "S3": "hyper, connection polled in the caller's block_on",
    "S4": "S3 on a current_thread runtime (no other thread)",
    "S5": "hyper-util pooled client (reqwest's engine), as S1",
    "wrk-c1": "wrk -t1 -c1",
    "C1": "reqwest, 32 in flight (JoinSet)",
    "C2": "hyper, 32 connections, connection tasks spawned",
    "C3": "hyper, each task drives its own connection",
    "C4": "hyper-util pooled client (reqwest's engine), as C1",
    "wrk-c32": "wrk -t2 -c32",
}


def build() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "target"))
    subprocess.run(
        [
            "cargo",
            "build",
            "--release",
            "--quiet",
            "--manifest-path",
            os.path.join(HERE, "Cargo.toml"),
        ],
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": target},
    )
    return os.path.join(target, "release", "http-probe")


def run_wrk(url: str, connections: int, script: str) -> dict:
    threads = 1 if connections == 1 else 2
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", "-d5s", "-s", script, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e6
    return {"us_per_req": 1e6 / rps, "rps": rps, "cpu_us_per_req": cpu / n}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    for tool in ("cargo", "wrk", "nginx"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed")
    probe = build()
    runs: List[Dict[str, dict]] = []
    with tempfile.TemporaryDirectory() as tmp, sinks.NginxSink(workers=2) as sink:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write(
                'wrk.method = "POST"\n'
                f'wrk.body = string.rep("x", {BODY_LEN})\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
        url = sink.base_url + "/agents/00000000-0000-0000-0000-000000000001/trace"
        for r in range(args.rounds):
            this: Dict[str, dict] = {}
            for group in (SEQUENTIAL, CONCURRENT):
                k = r % len(group)
                for v in group[k:] + group[:k]:
                    if v.startswith("wrk"):
                        this[v] = run_wrk(url, int(v[5:]), script)
                    else:
                        out = subprocess.run(
                            [probe, url, v], capture_output=True, text=True, timeout=120, check=True
                        )
                        this[v] = json.loads(out.stdout)
            runs.append(this)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def med(v: str, key: str) -> float:
        return statistics.median(run[v][key] for run in runs)

    def ratio(v: str, ref: str, key: str) -> float:
        return statistics.median(run[v][key] / run[ref][key] for run in runs)

    print(f"\nmedians of {args.rounds} rounds; ratios to wrk taken within each round\n")
    print("| variant | what | µs/request | CPU µs/request | x wrk time |")
    print("|---|---|---:|---:|---:|")
    for v in SEQUENTIAL:
        print(
            f"| {v} | {WHAT[v]} | {med(v, 'us_per_req'):.1f} | {med(v, 'cpu_us_per_req'):.1f} "
            f"| {ratio(v, 'wrk-c1', 'us_per_req'):.2f} |"
        )
    print("\n| variant | what | requests/s | CPU µs/request | % of wrk |")
    print("|---|---|---:|---:|---:|")
    for v in CONCURRENT:
        print(
            f"| {v} | {WHAT[v]} | {med(v, 'rps'):,.0f} | {med(v, 'cpu_us_per_req'):.1f} "
            f"| {100 * ratio(v, 'wrk-c32', 'rps'):.0f} % |"
        )


if __name__ == "__main__":
    main()
