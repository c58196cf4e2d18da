"""Profile-guided optimisation (PGO) of the release build.

    python benches/pgo.py build --out dist     # the whole thing: ~3x a release build
    python benches/pgo.py train --profiles DIR # step 3 alone (CI: .github/workflows/wheels.yml)

``build`` does the four steps:

1. an instrumented release wheel (``RUSTFLAGS=-Cprofile-generate=DIR/raw``);
2. installed into a scratch venv;
3. ``train``: the benchmark harness's own jobs (``benches/worker.py``:
   serialise, sequential sends, sync and async ``send_tasks_batch``, decorated
   calls blocking and in background mode) run with it against our local API
   in sink mode (profiled too); the profiles are merged with
   ``llvm-profdata`` (``rustup component add llvm-tools``) into
   ``DIR/merged.profdata``;
4. the release wheel again, with ``-Cprofile-use``, into ``--out``.

On the project's 2-core machine the result spends ~10 % less CPU per trace
sent (batch and sequential); serialising is unchanged (BENCHMARKS.md).
Measure yours with ``python benches/run.py`` in a venv that has the wheel.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import venv
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import sinks  # noqa: E402
from run import run_worker  # noqa: E402

#: The training jobs: the hot paths users run, at the harness's quick sizes
#: (PGO wants the shape of the work, not long runs).
TRAINING: List[Dict[str, Any]] = [
    {"kind": "serialize", "iters": 3000, "fresh": 300},
    {"kind": "sequential", "n": 300},
    {"kind": "batch", "mode": "sync", "n": 1000, "max_concurrent": 32},
    {"kind": "batch", "mode": "async", "n": 1000, "max_concurrent": 32},
    {"kind": "decorated", "mode": "send", "n": 300, "max_retries": 3},
    {"kind": "decorated", "mode": "background", "n": 3000, "max_retries": 3},
]


def log(msg: str) -> None:
    print(f"[pgo] {msg}", file=sys.stderr, flush=True)


def llvm_profdata() -> str:
    """The llvm-profdata of the active Rust toolchain (its LLVM must match)."""
    sysroot = subprocess.check_output(["rustc", "--print", "sysroot"], text=True).strip()
    host = next(
        line.split(":", 1)[1].strip()
        for line in subprocess.check_output(["rustc", "-vV"], text=True).splitlines()
        if line.startswith("host:")
    )
    path = os.path.join(sysroot, "lib", "rustlib", host, "bin", "llvm-profdata")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: run `rustup component add llvm-tools`")
    return path


def build(out_dir: str, target_dir: str, rustflags: str, maturin: List[str]) -> str:
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir)
    env["RUSTFLAGS"] = f"{env.get('RUSTFLAGS', '')} {rustflags}".strip()
    os.makedirs(out_dir, exist_ok=True)
    before = set(glob.glob(os.path.join(out_dir, "*.whl")))
    # For this interpreter: the training venv is made from it, and the
    # extension is built per CPython version.
    subprocess.run(
        [*maturin, "build", "--release", "-i", sys.executable, "-o", out_dir],
        cwd=ROOT,
        env=env,
        check=True,
    )
    new = sorted(set(glob.glob(os.path.join(out_dir, "*.whl"))) - before, key=os.path.getmtime)
    if not new:  # rebuilt under the same name
        new = sorted(glob.glob(os.path.join(out_dir, "*.whl")), key=os.path.getmtime)
    return new[-1]


def train(python: str, profiles: str) -> str:
    """Run the training jobs with ``python`` (an instrumented build installed,
    writing to ``profiles/raw``) and merge what they wrote; return the
    merged file."""
    profdata = llvm_profdata()
    raw_dir = os.path.join(profiles, "raw")
    # Build scripts run during the instrumented build write profiles too.
    for stale in glob.glob(os.path.join(raw_dir, "*.profraw")):
        os.remove(stale)
    with sinks.LocalServerSink(python) as sink:
        for job in TRAINING:
            log(f"training: {job['kind']} {job.get('mode', '')}")
            result = run_worker(python, {**job, "base_url": sink.base_url, "exit": "normal"})
            if "error" in result:
                sys.exit(f"training job {job['kind']} failed: {result}")
    raw = glob.glob(os.path.join(raw_dir, "*.profraw"))
    if not raw:
        sys.exit(f"training wrote no profiles to {raw_dir}: is the installed build instrumented?")
    merged = os.path.join(profiles, "merged.profdata")
    log(f"merging {len(raw)} profile file(s) into {merged}")
    subprocess.run([profdata, "merge", "-o", merged, *raw], check=True)
    return merged


def build_all(out: str, work: str, maturin: List[str]) -> None:
    llvm_profdata()  # fail before the first build if it is missing
    profiles = os.path.join(work, "profiles")
    shutil.rmtree(profiles, ignore_errors=True)
    os.makedirs(os.path.join(profiles, "raw"))

    log("1/4 instrumented build")
    wheel = build(
        os.path.join(work, "wheel-gen"),
        os.path.join(work, "target-gen"),
        f"-Cprofile-generate={profiles}/raw",
        maturin,
    )
    log("2/4 scratch venv")
    env_dir = os.path.join(work, "venv")
    shutil.rmtree(env_dir, ignore_errors=True)
    venv.create(env_dir, with_pip=True)
    python = os.path.join(env_dir, "bin", "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", wheel],
        check=True,
    )
    log("3/4 training")
    merged = train(python, profiles)
    log("4/4 optimised build")
    wheel = build(out, os.path.join(work, "target-use"), f"-Cprofile-use={merged}", maturin)
    log(f"built {wheel}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="instrumented build, training, optimised build")
    b.add_argument("--out", default=os.path.join(ROOT, "dist"), help="where the wheel goes")
    b.add_argument(
        "--work",
        default=os.path.join(ROOT, "target", "pgo"),
        help="scratch directory: both builds' targets, the venv, the profiles",
    )
    b.add_argument("--maturin", default="maturin", help="the maturin command")
    t = sub.add_parser("train", help="run the workload with an installed instrumented build")
    t.add_argument("--profiles", required=True, help="the build's -Cprofile-generate=DIR/raw DIR")
    t.add_argument("--python", default=sys.executable, help="interpreter with the build installed")
    args = ap.parse_args()
    if args.command == "build":
        build_all(os.path.abspath(args.out), os.path.abspath(args.work), args.maturin.split())
    else:
        train(args.python, os.path.abspath(args.profiles))


if __name__ == "__main__":
    main()
