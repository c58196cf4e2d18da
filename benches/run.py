#!/usr/bin/env python3
# ruff: noqa: E501, RUF001
"""Benchmark harness: infinium (ours) vs infinium-o2==1.2.0 (the anchor) vs wrk.

Usage:
    python benches/run.py                # full run (~8 min on 2 cores), writes BENCHMARKS.md + chart
    python benches/run.py --quick        # smoke run (< 60 s once the anchor venv is cached), no files written
    python benches/run.py --runs 9       # more runs per figure (each figure is the median)
    python benches/run.py --only serialize,batch --no-write

Run it with the Python that has *our* SDK installed (a release build: e.g.
``maturin build --release`` and ``pip install`` the wheel into a venv, with the
``bench`` extra for matplotlib), from any directory: the workers run outside the
source tree so they import the installed package. The anchor is installed into
a cached venv (``benches/.anchor-venv``, override with ``--anchor-venv``) on
first use.

Sink: nginx when installed (``--sink nginx``), else our local API in sink mode
(``--sink local``: ``infinium.testing.LocalServer(sink=True)``), else a small
Python sink (``--sink python``). wrk (when installed) gives the physical limit:
the same 13 KB body to the same sink with the same connection count. Every
figure is the median over ``--runs`` runs; ratios are computed per run, then
the median taken. Anchor and ours run in separate processes, interleaved.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import fixture  # noqa: E402
import sinks  # noqa: E402

ANCHOR_REQ = "infinium-o2==1.2.0"
WORKER = os.path.join(HERE, "worker.py")
BEGIN = "<!-- BEGIN GENERATED: benches/run.py rewrites from here to END GENERATED -->"
END = "<!-- END GENERATED -->"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- settings -------------------------------------------------------------------------

FULL = dict(
    runs=5,
    limiter_runs=3,
    ser_iters_ours=20000,
    ser_iters_anchor=500,
    seq_n=2000,
    batch_n=2000,
    limiter=((16, 40), (200, 4)),
    deco_n_fast=20000,
    deco_n_send=1500,
    deco_n_bg=20000,
    deco_n_durable=5000,
    wrk_seconds=4,
    import_reps=9,
)
QUICK = dict(
    runs=1,
    limiter_runs=1,
    ser_iters_ours=2000,
    ser_iters_anchor=100,
    seq_n=200,
    batch_n=300,
    limiter=((16, 4), (20, 4)),
    deco_n_fast=2000,
    deco_n_send=200,
    deco_n_bg=2000,
    deco_n_durable=500,
    wrk_seconds=1,
    import_reps=3,
)
SECTIONS = ("serialize", "sequential", "batch", "limiter", "decorated", "import", "sinks")
RPS, BURST = 50.0, 20
BATCH_CONCURRENCY = 32


# --- environments ---------------------------------------------------------------------


def anchor_python(venv: str) -> str:
    py = os.path.join(venv, "bin", "python")
    ok = (
        os.path.exists(py)
        and subprocess.run(
            [
                py,
                "-c",
                "import infinium, importlib.metadata as m; "
                "assert m.version('infinium-o2') == '1.2.0'",
            ],
            capture_output=True,
            cwd=tempfile.gettempdir(),
        ).returncode
        == 0
    )
    if not ok:
        log(f"creating the anchor venv at {venv} ({ANCHOR_REQ}) ...")
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", ANCHOR_REQ],
            check=True,
        )
    return py


def run_worker(python: str, job: Dict[str, Any], timeout: float = 600) -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "INFINIUM_"))}
    try:
        p = subprocess.run(
            [python, WORKER, json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tempfile.gettempdir(),
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": f"worker exit {p.returncode}: {p.stderr.strip()[-800:]}"}
    out: Dict[str, Any] = json.loads(lines[-1])
    return out


def import_ms(python: str, reps: int) -> Optional[float]:
    code = (
        "import time; t = time.perf_counter(); import infinium; "
        "print((time.perf_counter() - t) * 1000)"
    )
    vals = []
    for _ in range(reps):
        p = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir()
        )
        if p.returncode != 0:
            return None
        vals.append(float(p.stdout.strip()))
    return statistics.median(vals)


# --- wrk ----------------------------------------------------------------------------------

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "infinium-python/1.0.0"
wrk.headers["x-agent-id"] = "{agent}"
wrk.headers["x-agent-key"] = "{secret}"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()
"""


def wrk_rps(url: str, lua: str, conns: int, seconds: float) -> Dict[str, Any]:
    threads = 1 if conns < 2 else 2
    p = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds:g}s", "-s", lua, url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    m = re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)
    if not m:
        return {"error": (p.stdout + p.stderr).strip()[-300:]}
    out: Dict[str, Any] = {"per_s": float(m.group(1))}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
    if bad:
        out["non2xx"] = int(bad.group(1))
    err = re.search(r"Socket errors:.*", p.stdout)
    if err:
        out["socket_errors"] = err.group(0)
    return out


# --- limiter analysis ---------------------------------------------------------------------


def window_stats(starts: List[float]) -> Tuple[int, float]:
    """(max starts in any 1-second window, first-to-last start span in s)."""
    best, j = 0, 0
    for i in range(len(starts)):
        while starts[i] - starts[j] >= 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best, (starts[-1] - starts[0]) if starts else 0.0


# --- the runs -------------------------------------------------------------------------------


class Results:
    """figures[key][sdk] -> list of per-run values; notes collected along."""

    def __init__(self) -> None:
        self.v: Dict[str, Dict[str, List[float]]] = {}
        self.na: Dict[Tuple[str, str], str] = {}
        self.errors: List[str] = []

    def add(self, key: str, who: str, value: Optional[float]) -> None:
        if value is not None:
            self.v.setdefault(key, {}).setdefault(who, []).append(float(value))

    def na_keys(self) -> set:
        return {k for (k, _w) in self.na}

    def med(self, key: str, who: str) -> Optional[float]:
        vals = self.v.get(key, {}).get(who)
        return statistics.median(vals) if vals else None

    def take(self, key: str, who: str, res: Dict[str, Any], field: str = "per_s") -> None:
        if "na" in res:
            self.na[(key, who)] = str(res["na"])
        elif "error" in res:
            msg = f"{key} [{who}]: {res['error']}"
            if msg not in self.errors:
                self.errors.append(msg)
                log("ERROR " + msg)
        else:
            self.add(key, who, res.get(field))


def main() -> int:
    ap = argparse.ArgumentParser(
        prog="python benches/run.py",
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run (1 run, small counts); writes nothing unless --write",
    )
    ap.add_argument(
        "--runs",
        type=int,
        help="runs per figure (median taken); default 5 (limiter rows: at most 3, "
        "each takes ~30 s and barely varies)",
    )
    ap.add_argument("--only", help=f"comma-separated subset of: {','.join(SECTIONS)}")
    ap.add_argument("--sink", choices=("auto", "nginx", "local", "python"), default="auto")
    ap.add_argument(
        "--nginx-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="nginx worker processes (default: one per core, like worker_processes auto)",
    )
    ap.add_argument(
        "--ours-python",
        default=sys.executable,
        help="interpreter with our SDK installed (default: this one)",
    )
    ap.add_argument(
        "--anchor-venv",
        default=os.path.join(HERE, ".anchor-venv"),
        help="venv for infinium-o2==1.2.0 (created if missing)",
    )
    ap.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--chart", default=os.path.join(HERE, "benchmarks.png"))
    ap.add_argument("--json", help="also write the raw per-run figures to this file")
    ap.add_argument("--write", action="store_true", help="write BENCHMARKS.md even with --quick")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    cfg = dict(QUICK if args.quick else FULL)
    if args.runs:
        cfg["runs"] = args.runs
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections: {sorted(unknown)}")
    write = (args.write or not args.quick) and not args.no_write
    t_start = time.monotonic()
    load_before = os.getloadavg()

    pys = {"anchor": anchor_python(os.path.abspath(args.anchor_venv)), "ours": args.ours_python}
    info = {who: run_worker(py, {"kind": "info"}) for who, py in pys.items()}
    for who, i in info.items():
        if "error" in i:
            log(f"cannot import the {who} SDK with {pys[who]}: {i['error']}")
            return 2
        if i["sdk"] != who:
            log(f"{pys[who]} imports the {i['sdk']} SDK, expected {who}")
            return 2
    log(
        f"anchor {info['anchor']['version']} | ours {info['ours']['version']} "
        f"(background={'background' in info['ours']['params']})"
    )

    have_wrk = shutil.which("wrk") is not None
    local = sinks.LocalServerSink(pys["ours"])
    nginx = sinks.NginxSink(args.nginx_workers)
    choice = args.sink
    if choice == "auto":
        choice = "nginx" if nginx.available() else ("local" if local.available() else "python")
    sink: sinks.Sink = {"nginx": nginx, "local": local, "python": sinks.PythonSink(pys["ours"])}[
        choice
    ]
    sink.start()
    recorder: sinks.Sink = sink if sink.can_record() else sinks.PythonSink(pys["ours"])
    if recorder is not sink:
        recorder.start()
    log(f"sink: {sink.label} at {sink.base_url}; wrk: {'yes' if have_wrk else 'not installed'}")

    R = Results()
    tmp = tempfile.mkdtemp(prefix="infinium-bench-")
    body_path = os.path.join(tmp, "body.json")
    lua = os.path.join(tmp, "post.lua")
    anchor_body = os.path.join(tmp, "anchor-body.json")
    body = run_worker(pys["ours"], {"kind": "body", "path": body_path})
    abody = run_worker(pys["anchor"], {"kind": "body", "path": anchor_body})
    if "error" in body:  # fall back to the anchor's body for wrk
        log(f"ours cannot serialise the fixture: {body['error']}")
        body_path = anchor_body
    same_bytes = (
        "error" not in body
        and "error" not in abody
        and open(body_path, "rb").read() == open(anchor_body, "rb").read()
    )
    body_bytes = os.path.getsize(body_path)
    with open(lua, "w") as f:
        f.write(WRK_LUA.format(agent=fixture.AGENT_ID, secret=fixture.AGENT_SECRET, body=body_path))
    trace_url = f"{sink.base_url}/agents/{fixture.AGENT_ID}/trace"

    ratio: Dict[str, List[float]] = {}

    def per_run_ratio(name: str, num: Optional[float], den: Optional[float]) -> None:
        if num is not None and den:
            ratio.setdefault(name, []).append(num / den)

    def last(key: str, who: str, before: int) -> Optional[float]:
        vals = R.v.get(key, {}).get(who, [])
        return vals[-1] if len(vals) > before else None

    limiter_ideal = {}
    try:
        for run in range(cfg["runs"]):
            log(f"run {run + 1}/{cfg['runs']}")
            base = {"base_url": sink.base_url}
            counts = {k: {w: len(x) for w, x in d.items()} for k, d in R.v.items()}

            def n_before(key: str, who: str, counts: Dict[str, Dict[str, int]] = counts) -> int:
                return counts.get(key, {}).get(who, 0)

            if "serialize" in only:
                for who in ("anchor", "ours"):
                    iters = cfg["ser_iters_anchor" if who == "anchor" else "ser_iters_ours"]
                    fresh = max(20, iters // 10)
                    res = run_worker(
                        pys[who], {"kind": "serialize", "iters": iters, "fresh": fresh}
                    )
                    R.take("serialize_us", who, res, "us")
                    R.take("serialize_fresh_us", who, res, "fresh_us")
            if have_wrk and ("sequential" in only or "batch" in only):
                R.take("wrk_c1", "wrk", wrk_rps(trace_url, lua, 1, cfg["wrk_seconds"]))
                R.take(
                    "wrk_c32", "wrk", wrk_rps(trace_url, lua, BATCH_CONCURRENCY, cfg["wrk_seconds"])
                )
            if "sequential" in only:
                for who in ("anchor", "ours"):
                    R.take(
                        "sequential",
                        who,
                        run_worker(pys[who], {**base, "kind": "sequential", "n": cfg["seq_n"]}),
                    )
            if "batch" in only:
                for mode in ("sync", "async"):
                    for who in ("anchor", "ours"):
                        res = run_worker(
                            pys[who],
                            {
                                **base,
                                "kind": "batch",
                                "mode": mode,
                                "n": cfg["batch_n"],
                                "max_concurrent": BATCH_CONCURRENCY,
                            },
                        )
                        R.take(f"batch_{mode}", who, res)
                        if mode == "sync":
                            R.take("rss_mb", who, res, "rss_mb")
            if "limiter" in only and run < cfg["limiter_runs"]:
                for (workers, per), mode in zip(cfg["limiter"], ("threads", "tasks")):
                    total = workers * per
                    limiter_ideal[mode] = (workers, per, (total - BURST) / RPS)
                    for who in ("anchor", "ours"):
                        agent = "11111111-" + str(uuid.uuid4())[9:]
                        res = run_worker(
                            pys[who],
                            {
                                "base_url": recorder.base_url,
                                "kind": "limiter",
                                "mode": mode,
                                "workers": workers,
                                "per": per,
                                "rps": RPS,
                                "burst": BURST,
                                "agent_id": agent,
                            },
                        )
                        if "error" in res:
                            R.take(f"limiter_{mode}_window", who, res)
                            continue
                        time.sleep(0.2)
                        starts = recorder.arrivals(agent)
                        if len(starts) != total:
                            R.errors.append(
                                f"limiter {mode} [{who}]: sink saw {len(starts)} "
                                f"of {total} requests"
                            )
                        if starts:
                            w, span = window_stats(starts)
                            R.add(f"limiter_{mode}_window", who, w)
                            R.add(f"limiter_{mode}_span", who, span)
                            R.add(f"limiter_{mode}_client_s", who, res["seconds"])
            if "decorated" in only:
                for mode, nkey in (
                    ("nosend", "deco_n_fast"),
                    ("send", "deco_n_send"),
                    ("background", "deco_n_bg"),
                    ("durable", "deco_n_durable"),
                ):
                    for who in ("anchor", "ours"):
                        if who == "anchor" and mode in ("background", "durable"):
                            continue
                        n = (
                            cfg[nkey]
                            if who == "ours" or mode != "nosend"
                            else cfg["deco_n_send"] * 4
                        )
                        agent = "22222222-" + str(uuid.uuid4())[9:]
                        res = run_worker(
                            pys[who],
                            {
                                **base,
                                "kind": "decorated",
                                "mode": mode,
                                "n": n,
                                "agent_id": agent,
                                "max_retries": 3,
                            },
                        )
                        R.take(f"deco_{mode}", who, res)
                        if mode == "background" and "na" in res:
                            R.na[("e2e_background", who)] = str(res["na"])
                        if mode in ("background", "durable") and "per_s" in res:
                            R.add(f"deco_{mode}_us", who, res["us"])
                            if mode == "background":
                                R.add("e2e_background", who, res.get("e2e_per_s"))
                            if sink.can_record():
                                time.sleep(0.2)
                                seen = len(sink.arrivals(agent))
                                warm = min(n // 10, 200)
                                if seen < n + warm:
                                    R.errors.append(
                                        f"decorated {mode} [{who}]: sink saw {seen} "
                                        f"of {n + warm} traces after flush()"
                                    )
            if "import" in only:
                for who in ("anchor", "ours"):
                    R.add("import_ms", who, import_ms(pys[who], cfg["import_reps"]))
            if "sinks" in only and have_wrk:
                for s in (
                    ([nginx] if nginx.available() else [])
                    + ([local] if local.available() else [])
                    + [sinks.PythonSink(pys["ours"])]
                ):
                    if args.quick and s is not sink:
                        continue
                    own = s is sink
                    try:
                        if not own:
                            s.start()
                        r = wrk_rps(
                            f"{s.base_url}/agents/{fixture.AGENT_ID}/trace",
                            lua,
                            BATCH_CONCURRENCY,
                            cfg["wrk_seconds"],
                        )
                        R.take(f"sink_{s.name}", "wrk", r)
                    except Exception as e:
                        R.errors.append(f"sink {s.name}: {e}")
                    finally:
                        if not own:
                            s.stop()
            # per-run ratios
            for key, wk in (
                ("sequential", "wrk_c1"),
                ("batch_sync", "wrk_c32"),
                ("batch_async", "wrk_c32"),
            ):
                ours = last(key, "ours", n_before(key, "ours"))
                per_run_ratio(f"{key}/anchor", ours, last(key, "anchor", n_before(key, "anchor")))
                per_run_ratio(f"{key}/wrk", ours, last(wk, "wrk", n_before(wk, "wrk")))
                per_run_ratio(
                    f"{key}/anchor_sync",
                    ours,
                    last("batch_sync", "anchor", n_before("batch_sync", "anchor")),
                )
            for key in (
                "serialize_us",
                "serialize_fresh_us",
                "deco_nosend",
                "deco_send",
                "import_ms",
                "rss_mb",
            ):
                per_run_ratio(
                    f"{key}/anchor",
                    last(key, "ours", n_before(key, "ours")),
                    last(key, "anchor", n_before(key, "anchor")),
                )
    finally:
        if recorder is not sink:
            recorder.stop()
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.monotonic() - t_start
    meta = machine(
        info,
        pys,
        sink,
        have_wrk,
        cfg,
        body_bytes,
        same_bytes,
        elapsed,
        load_before,
        os.getloadavg(),
        args,
    )
    rows = build_rows(R, ratio, cfg, limiter_ideal)
    table = render_table(rows)
    print(table)
    if R.errors:
        print("\nProblems:\n" + "\n".join(f"- {e}" for e in R.errors))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "meta": meta,
                    "values": R.v,
                    "ratios": ratio,
                    "errors": R.errors,
                    "na": {f"{k}|{w}": v for (k, w), v in R.na.items()},
                },
                f,
                indent=1,
            )
    if write:
        chart_ok = draw_chart(R, rows, args.chart, limiter_ideal)
        write_markdown(args.output, meta, table, R, args.chart if chart_ok else None)
        log(f"wrote {args.output}" + (f" and {args.chart}" if chart_ok else ""))
    log(f"done in {elapsed:.0f}s")
    return 0


# --- presentation -----------------------------------------------------------------------


def fmt(v: Optional[float], unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "x":
        return f"{v:,.2f}×" if v < 10 else f"{v:,.0f}×"
    if unit == "%":
        return f"{v * 100:.0f} %"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def build_rows(
    R: Results,
    ratio: Dict[str, List[float]],
    cfg: Dict[str, Any],
    limiter_ideal: Dict[str, Tuple[int, int, float]],
) -> List[Dict[str, Any]]:
    """One dict per table row: label, anchor, ours, limit, r_anchor, r_limit, target, met."""
    rows: List[Dict[str, Any]] = []

    def med_ratio(name: str) -> Optional[float]:
        vals = ratio.get(name)
        return statistics.median(vals) if vals else None

    def na(key: str, who: str) -> Optional[str]:
        return R.na.get((key, who))

    def row(
        key: str,
        label: str,
        *,
        limit: Optional[str] = None,
        target: str = "",
        met: Optional[bool] = None,
        r_anchor: Optional[float] = None,
        r_limit: Optional[float] = None,
        lower_better: bool = False,
        anchor_na: str = "",
    ) -> None:
        rows.append(
            dict(
                key=key,
                label=label,
                anchor=R.med(key, "anchor"),
                ours=R.med(key, "ours"),
                limit=R.med(limit, "wrk") if limit else None,
                limit_label=limit,
                r_anchor=r_anchor,
                r_limit=r_limit,
                target=target,
                met=met,
                lower_better=lower_better,
                anchor_na=anchor_na,
                ours_na=na(key, "ours"),
            )
        )

    ser = R.med("serialize_us", "ours")
    row(
        "serialize_us",
        "serialise + validate one 13 KB 12-step trace (µs)",
        r_anchor=med_ratio("serialize_us/anchor"),
        target="≤ 10 µs",
        met=None if ser is None else ser <= 10,
        lower_better=True,
    )
    row(
        "serialize_fresh_us",
        "… each trace's first serialisation (fresh objects, as a send sees them) (µs)",
        r_anchor=med_ratio("serialize_fresh_us/anchor"),
        lower_better=True,
    )
    seq_w = med_ratio("sequential/wrk")
    row(
        "sequential",
        "sequential `send_task_data`, 1 connection (traces/s)",
        limit="wrk_c1",
        r_anchor=med_ratio("sequential/anchor"),
        r_limit=seq_w,
        target="≥ 65 % of wrk -c1",
        met=None if seq_w is None else seq_w >= 0.65,
    )
    for mode in ("sync", "async"):
        rw, ra = med_ratio(f"batch_{mode}/wrk"), med_ratio(f"batch_{mode}/anchor_sync")
        met = None
        if rw is not None and ra is not None:
            met = rw >= 0.5 and ra >= 30
        n = cfg["batch_n"]
        row(
            f"batch_{mode}",
            f"{mode} `send_tasks_batch`, {n:,} traces @ {BATCH_CONCURRENCY} (traces/s)",
            limit="wrk_c32",
            r_anchor=med_ratio(f"batch_{mode}/anchor"),
            r_limit=rw,
            target=f"≥ 50 % of wrk -c{BATCH_CONCURRENCY} and ≥ 30× anchor sync"
            + (f" (now {ra:,.0f}×)" if ra is not None else ""),
            met=met,
        )
    for mode in ("threads", "tasks"):
        if mode not in limiter_ideal:
            continue
        workers, per, ideal = limiter_ideal[mode]
        what = f"{workers} threads" if mode == "threads" else f"{workers} asyncio tasks"
        w = R.med(f"limiter_{mode}_window", "ours")
        row(
            f"limiter_{mode}_window",
            f"limiter, {what} × {per} @ {RPS:g}/s burst {BURST}: max starts in any 1 s",
            target=f"≤ {int(RPS + BURST)}",
            met=None if w is None else w <= RPS + BURST,
            lower_better=True,
        )
        s = R.med(f"limiter_{mode}_span", "ours")
        row(
            f"limiter_{mode}_span",
            f"… first-to-last start (s), ideal {ideal:.2f}",
            target=f"{ideal * 0.97:.2f}–{ideal * 1.03:.2f} s",
            met=None if s is None else abs(s - ideal) <= 0.03 * ideal,
        )
    row(
        "import_ms",
        "`import infinium` (ms, fresh process)",
        r_anchor=med_ratio("import_ms/anchor"),
        lower_better=True,
    )
    row(
        "rss_mb",
        f"peak RSS of the sync batch process (MB, {cfg['batch_n']:,} traces)",
        r_anchor=med_ratio("rss_mb/anchor"),
        lower_better=True,
    )
    row(
        "deco_nosend",
        "decorated no-op, `auto_send=False` (calls/s)",
        r_anchor=med_ratio("deco_nosend/anchor"),
    )
    row(
        "deco_send",
        "decorated no-op, sending, blocking (calls/s)",
        r_anchor=med_ratio("deco_send/anchor"),
    )
    bg = R.med("deco_background", "ours")
    row(
        "deco_background",
        "decorated no-op, sending, `background=True` (calls/s)",
        target="≥ 50,000",
        met=None if bg is None else bg >= 50000,
        anchor_na="n/a",
    )
    row("deco_durable", "… with `spool_dir` + `durable=True` (calls/s)", anchor_na="n/a")
    row(
        "e2e_background",
        "delivered to the sink in background mode, to `flush()` (traces/s)",
        anchor_na="n/a",
    )
    for name, label in (
        ("nginx", "nginx"),
        ("local", "our LocalServer sink"),
        ("python", "Python fallback sink"),
    ):
        key = f"sink_{name}"
        if key in R.v:
            rows.append(
                dict(
                    key=key,
                    label=f"sink capacity: wrk -c{BATCH_CONCURRENCY} → {label} (req/s)",
                    anchor=None,
                    ours=None,
                    limit=R.med(key, "wrk"),
                    limit_label=key,
                    r_anchor=None,
                    r_limit=None,
                    target="",
                    met=None,
                    lower_better=False,
                    anchor_na="",
                    ours_na=None,
                )
            )
    return [
        r
        for r in rows
        if r["anchor"] is not None
        or r["ours"] is not None
        or r["limit"] is not None
        or r["ours_na"]
        or (r["anchor_na"] and r["key"] in R.na_keys())
    ]


def render_table(rows: List[Dict[str, Any]]) -> str:
    out = [
        "| figure | anchor 1.2.0 | ours | wrk (limit) | ours / anchor | ours / wrk | target | met |",
        "|---|--:|--:|--:|--:|--:|---|:-:|",
    ]
    for r in rows:
        ra = r["r_anchor"]
        ra_s = fmt(ra, "x")
        if ra is not None and r["lower_better"] and ra > 0:
            ra_s = f"{ra:.3f}× ({1 / ra:,.1f}× less)" if ra < 1 else f"{ra:.2f}×"
        anchor = r["anchor_na"] or fmt(r["anchor"])
        ours = fmt(r["ours"]) if r["ours"] is not None else ("n/a" if r["ours_na"] else "—")
        met = "" if r["met"] is None else ("✅" if r["met"] else "❌")
        out.append(
            f"| {r['label']} | {anchor} | {ours} | {fmt(r['limit'])} | "
            f"{ra_s if ra is not None else ''} | "
            f"{fmt(r['r_limit'], '%') if r['r_limit'] is not None else ''} | "
            f"{r['target']} | {met} |"
        )
    return "\n".join(out)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def machine(
    info: Dict[str, Any],
    pys: Dict[str, str],
    sink: sinks.Sink,
    have_wrk: bool,
    cfg: Dict[str, Any],
    body_bytes: int,
    same_bytes: bool,
    elapsed: float,
    load_before: Tuple[float, float, float],
    load_after: Tuple[float, float, float],
    args: argparse.Namespace,
) -> Dict[str, Any]:
    cpu = re.search(r"model name\s*:\s*(.*)", _read("/proc/cpuinfo"))
    mem = re.search(r"MemTotal:\s*(\d+)", _read("/proc/meminfo"))

    def version(cmd: List[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not installed"

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu.group(1).strip() if cpu else platform.processor() or "?",
        "cores": os.cpu_count(),
        "ram_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "python_anchor": info["anchor"]["python"],
        "python_ours": info["ours"]["python"],
        "anchor": info["anchor"]["version"],
        "ours": info["ours"]["version"],
        "sink": sink.label,
        "wrk": version(["wrk", "-v"]) if have_wrk else "not installed",
        "nginx": version(["nginx", "-v"]) if shutil.which("nginx") else "not installed",
        "runs": cfg["runs"],
        "quick": bool(args.quick),
        "body_bytes": body_bytes,
        "same_bytes": same_bytes,
        "elapsed_s": round(elapsed),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }


def draw_chart(
    R: Results,
    rows: List[Dict[str, Any]],
    path: str,
    limiter_ideal: Dict[str, Tuple[int, int, float]],
) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed (pip install 'infinium-rs[bench]'): no chart")
        return False
    colours = {"anchor": "#9aa0a6", "ours": "#1a73e8", "wrk": "#34a853"}
    fig, axes = plt.subplots(2, 2, figsize=(14, 10), gridspec_kw={"width_ratios": [1.6, 1]})
    fig.suptitle("infinium (ours) vs infinium-o2 1.2.0 (anchor) vs wrk — medians", fontsize=14)

    def bars(
        ax: Any,
        cats: List[Tuple[str, str, Optional[str]]],
        title: str,
        xlabel: str,
        log_scale: bool = True,
        target: Optional[Tuple[float, str]] = None,
        integer: bool = False,
    ) -> None:
        import numpy as np

        y = np.arange(len(cats))
        h = 0.27
        for k, who in enumerate(("anchor", "ours", "wrk")):
            vals = []
            for key, _label, wkey in cats:
                v = (
                    R.med(wkey, "wrk")
                    if who == "wrk" and wkey
                    else (None if who == "wrk" else R.med(key, who))
                )
                vals.append(v)
            pos = y + (k - 1) * h
            for p, v, (key, _l, _w) in zip(pos, vals, cats):
                if v is None:
                    if who == "ours" and R.na.get((key, "ours")):
                        ax.text(
                            0.01,
                            p,
                            "n/a (not in this build)",
                            va="center",
                            fontsize=8.5,
                            color=colours["ours"],
                            transform=ax.get_yaxis_transform(),
                        )
                    continue
                ax.barh(p, v, height=h, color=colours[who])
                ax.text(v, p, f" {v:.0f}" if integer else f" {fmt(v)}", va="center", fontsize=8.5)
        ax.set_yticks(y)
        ax.set_yticklabels([c[1] for c in cats], fontsize=9.5)
        ax.invert_yaxis()
        if log_scale:
            ax.set_xscale("log")
        ax.set_title(title, fontsize=11.5)
        ax.set_xlabel(xlabel)
        ax.margins(x=0.25)
        if target:
            ax.axvline(target[0], color="#d93025", ls="--", lw=1)
            ax.text(
                target[0],
                ax.get_ylim()[0],
                f" {target[1]}",
                color="#d93025",
                fontsize=8.5,
                va="bottom",
            )
        ax.grid(axis="x", alpha=0.3)

    bars(
        axes[0][0],
        [
            ("sequential", "sequential send\n(1 conn; wrk -c1)", "wrk_c1"),
            ("batch_sync", "sync batch @32\n(wrk -c32)", "wrk_c32"),
            ("batch_async", "async batch @32\n(wrk -c32)", "wrk_c32"),
            ("deco_send", "decorated no-op,\nblocking send", None),
            ("deco_background", "decorated no-op,\nbackground=True", None),
            ("deco_durable", "decorated no-op,\ndurable spool", None),
            ("e2e_background", "delivered, background\n(to flush())", None),
            ("deco_nosend", "decorated no-op,\nauto_send=False", None),
        ],
        "Throughput (higher is better, log scale)",
        "traces or calls per second",
    )
    bars(
        axes[0][1],
        [
            ("serialize_us", "serialise + validate\n13 KB trace", None),
            ("serialize_fresh_us", "first serialisation\n(fresh objects)", None),
        ],
        "Serialise + validate (lower is better, log)",
        "µs per trace",
        target=(10, "target 10 µs"),
    )
    lim = []
    for m in ("threads", "tasks"):
        if m not in limiter_ideal:
            continue
        workers, per, ideal = limiter_ideal[m]
        spans = " / ".join(fmt(R.med(f"limiter_{m}_span", who)) for who in ("anchor", "ours"))
        lim.append(
            (
                f"limiter_{m}_window",
                f"{workers} {'threads' if m == 'threads' else 'asyncio tasks'} × {per}\n"
                f"first→last start (s):\nanchor / ours = {spans}\n(ideal {ideal:.2f})",
                None,
            )
        )
    if lim:
        bars(
            axes[1][1],
            lim,
            f"Limiter @ {RPS:g}/s burst {BURST}: max starts in any 1 s",
            "requests started in the busiest 1-second window",
            log_scale=False,
            target=(RPS + BURST, f"≤ {int(RPS + BURST)}"),
            integer=True,
        )
    else:
        axes[1][1].axis("off")
    bars(
        axes[1][0],
        [
            ("import_ms", "import infinium (ms)", None),
            ("rss_mb", "peak RSS, sync batch (MB)", None),
        ],
        "Footprint (lower is better)",
        "ms / MB",
        log_scale=False,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    fig.legend(
        handles,
        ["anchor infinium-o2 1.2.0", "ours (infinium-rs)", "wrk (physical limit)"],
        loc="lower center",
        ncol=3,
        fontsize=10.5,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


USAGE_MD = """\
# Benchmarks

`benches/run.py` measures the Rust-core SDK (ours) against the pure-Python
anchor `infinium-o2==1.2.0` and against the physical limit (`wrk` posting the
same 13 KB body to the same sink with the same number of connections).

```sh
# once: a release build of ours in its own venv, plus the bench extra (matplotlib)
python -m venv /tmp/bench && /tmp/bench/bin/pip install maturin matplotlib
/tmp/bench/bin/maturin build --release -o dist && /tmp/bench/bin/pip install dist/infinium_rs-*.whl
# optional but recommended: the physical limit and the fast sink
apt-get install -y wrk nginx-light

/tmp/bench/bin/python benches/run.py            # full run (~8 min), rewrites the Results section and benches/benchmarks.png
/tmp/bench/bin/python benches/run.py --quick    # smoke run (< 60 s once the anchor venv exists), prints the table only
/tmp/bench/bin/python benches/run.py --help     # --runs, --only, --sink, --anchor-venv, --json ...
cargo bench --bench payload --bench limiter     # criterion micro-benchmarks of the Rust core
python benches/http_probe/run.py                # reqwest vs hyper-util's pool vs hyper's connection API vs wrk (needs cargo, nginx, wrk)
```

How it measures:

- **Processes.** Each figure comes from a fresh worker process (`benches/worker.py`,
  one JSON job in, one JSON result out) run with the anchor's venv
  (`benches/.anchor-venv`, created with `pip install infinium-o2==1.2.0` on first
  use) or with ours; anchor and ours alternate inside every run. Workers run
  outside the source tree, so ours is the installed (release) wheel.
- **Sink.** nginx from a temp dir (`return 200 {"message":"ok","traceId":...}`,
  `client_max_body_size 2m`, one worker per core) when installed; else our local
  API in sink mode (`infinium.testing.LocalServer(sink=True)`); else a small
  asyncio sink. `--sink` picks one. The sink-capacity rows are wrk against each.
- **Body.** `benches/fixture.py` builds a 12-step `TaskData` (tool calls, LLM
  calls, an error, metadata, non-ASCII text) of 13,219 bytes on the wire; the
  harness checks that both SDKs produce the same bytes.
- **Serialise + validate.** Ours: `infinium.dumps(task)`. Anchor: what its
  `send_task_data` does before the network: `_task_data_to_dict`, its
  `validate_payload_size` (a `json.dumps`), and the compact `json.dumps`
  httpx sends. Best of three loops per run over one object; and, as a send
  sees it, one pass over fresh objects (each trace's first serialisation: on
  Python 3.11+ a serialiser that looks at an instance's `__dict__` builds it).
- **Sends.** `enable_rate_limiting=False` for both SDKs (except in the limiter
  rows); sequential = `send_task_data` in a loop on one client (one connection;
  limit: `wrk -c1`); batch = one `send_tasks_batch` of 2,000 traces at
  `max_concurrent=32`, timed after a warm-up batch of 64 on the same client
  (connections open, as in a long-running process; both SDKs alike; limit:
  `wrk -c32`). Peak RSS is that sync batch process's.
- **Limiter.** One client at `requests_per_second=50`, `burst=20` (the anchor's
  burst is fixed at 20): 16 threads × 40 sends, and 200 asyncio tasks × 4 sends.
  The sink logs every request's start time; the table shows the most starts in
  any 1-second window (at most 50 + 20 = 70 allowed) and the first-to-last start
  span against the ideal `(N − burst) / rate`: 12.4 s for 640 sends, 15.6 s for 800.
- **Decorators.** A decorated no-op (`client.trace("noop", ...)`) called in a
  loop: `auto_send=False`; sending (blocking); with `background=True` and with
  `spool_dir` + `durable=True` when the client has those options (else n/a).
  The delivered row is traces/s from the first call until `flush()` returns, and
  the harness checks the sink saw all of them.
- **Statistics.** Every figure is the median of `--runs` runs (default 5; the
  limiter rows at most 3: ~30 s each and they barely vary); ratios are computed
  within each run, then their median taken. `import infinium` is the median of 9
  fresh interpreters. The machine's load average is recorded: on a shared box
  the numbers move with whatever else runs.

"""


def write_markdown(
    path: str, meta: Dict[str, Any], table: str, R: Results, chart: Optional[str]
) -> None:
    m = meta
    gen = [BEGIN, "", f"## Results ({m['date']})", ""]
    gen += [
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['kernel']}",
        f"- **Python** {m['python_ours']} (ours) / {m['python_anchor']} (anchor); "
        f"**SDKs**: ours `infinium-rs` {m['ours']}, anchor `infinium-o2` {m['anchor']}",
        f"- **Sink**: {m['sink']}; **wrk**: {m['wrk']}; **nginx**: {m['nginx']}",
        f"- **Body**: {m['body_bytes']:,} bytes, 12 steps "
        f"({'byte-identical for both SDKs' if m['same_bytes'] else 'BODIES DIFFER between the SDKs'})",
        f"- **Runs**: {m['runs']} (median){' — QUICK smoke run' if m['quick'] else ''}; "
        f"total {m['elapsed_s']} s; load average before {m['load_before'][0]}, "
        f"after {m['load_after'][0]}",
        "",
        table,
        "",
    ]
    if R.na:
        gen += ["n/a: " + "; ".join(sorted({f"{k} ({w}): {v}" for (k, w), v in R.na.items()})), ""]
    if R.errors:
        gen += ["Problems during this run:", ""] + [f"- {e}" for e in R.errors] + [""]
    if chart:
        rel = os.path.relpath(chart, os.path.dirname(os.path.abspath(path)))
        gen += [f"![benchmark chart]({rel})", ""]
    gen += [END]
    block = "\n".join(gen)
    old = _read(path)
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + block + tail
    else:
        new = USAGE_MD + block + "\n"
    with open(path, "w") as f:
        f.write(new)


if __name__ == "__main__":
    sys.exit(main())
