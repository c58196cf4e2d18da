"""One benchmark job in a fresh process: ``python worker.py '<json job>'``.

Runs with either SDK's interpreter (the anchor ``infinium-o2`` venv or ours):
it only uses the public API both share, plus ``infinium.dumps`` for ours and
the anchor client's own serialisation steps for the anchor. Prints one JSON
object on stdout: the job's figures, or ``{"error": "..."}``.

Jobs (``kind``): info, body, serialize, sequential, batch, limiter, decorated.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import resource
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fixture

import infinium
import infinium.types as T

OURS = hasattr(infinium, "dumps")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def client_params() -> list:
    return list(inspect.signature(infinium.InfiniumClient.__init__).parameters)


def make_client(job: dict, cls=None, agent_id: str = fixture.AGENT_ID, **kw):
    cls = cls or infinium.InfiniumClient
    params = client_params()
    opts = dict(
        base_url=job["base_url"],
        enable_rate_limiting=False,
        max_retries=0,
        timeout=30.0,
    )
    if "max_retries" in job:
        opts["max_retries"] = job["max_retries"]
    opts.update(kw)
    # Keyword-only extras of ours (burst, background, ...) only when supported.
    opts = {
        k: v
        for k, v in opts.items()
        if k in params
        or k
        in ("base_url", "enable_rate_limiting", "max_retries", "timeout", "requests_per_second")
    }
    return cls(agent_id, fixture.AGENT_SECRET, **opts)


def serializer():
    """The work a send does before the network, as a zero-argument-per-task callable."""
    if OURS:
        return infinium.dumps
    from infinium.utils import validate_payload_size

    client = infinium.InfiniumClient(
        fixture.AGENT_ID, fixture.AGENT_SECRET, base_url="http://127.0.0.1:9"
    )
    to_dict = client._task_data_to_dict
    dumps = json.dumps

    def anchor_dumps(task):
        payload = to_dict(task)
        validate_payload_size(payload)  # the anchor's extra json.dumps for the size check
        # what httpx does with json=payload
        return dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    return anchor_dumps


# --- jobs ----------------------------------------------------------------------


def job_info(job: dict) -> dict:
    version = getattr(infinium, "__version__", "?")
    try:
        from importlib.metadata import version as dist_version

        dist = dist_version("infinium-rs" if OURS else "infinium-o2")
    except Exception:
        dist = version
    return {
        "sdk": "ours" if OURS else "anchor",
        "version": dist,
        "python": sys.version.split()[0],
        "params": client_params(),
        "async_params": list(inspect.signature(infinium.AsyncInfiniumClient.__init__).parameters),
    }


def job_body(job: dict) -> dict:
    body = serializer()(fixture.build_task(T))
    with open(job["path"], "wb") as f:
        f.write(body)
    return {"bytes": len(body)}


def job_serialize(job: dict) -> dict:
    dumps = serializer()
    task = fixture.build_task(T)
    n = job["iters"]
    for _ in range(min(n, 200)):
        dumps(task)
    best = float("inf")
    for _ in range(3):  # best of 3 inner loops; the harness takes the median over runs
        t0 = time.perf_counter()
        for _ in range(n):
            dumps(task)
        best = min(best, time.perf_counter() - t0)
    # What a real send sees: objects serialised for the first time (on Python
    # 3.11+ a first look at an instance's __dict__ would build it).
    fresh = tasks(job.get("fresh", 200))
    t0 = time.perf_counter()
    for t in fresh:
        dumps(t)
    fresh_us = (time.perf_counter() - t0) / len(fresh) * 1e6
    return {"us": best / n * 1e6, "fresh_us": fresh_us, "bytes": len(dumps(task))}


def tasks(n: int) -> list:
    return [fixture.build_task(T, i) for i in range(n)]


def job_sequential(job: dict) -> dict:
    items = tasks(job["n"])
    with make_client(job) as client:
        client.send_task_data(items[0])  # connect
        t0 = time.perf_counter()
        for task in items:
            r = client.send_task_data(task)
            if not r.success:
                return {"error": f"send failed: {r.message}"}
        dt = time.perf_counter() - t0
    return {"per_s": len(items) / dt, "seconds": dt}


def job_batch(job: dict) -> dict:
    """One timed ``send_tasks_batch`` after a warm-up batch of ``2 * max_concurrent``
    traces on the same client (its connections open, as in a long-running agent
    process; the same for both SDKs)."""
    items = tasks(job["n"])
    mc = job["max_concurrent"]
    warm = items[: 2 * mc]
    if job["mode"] == "sync":
        with make_client(job) as client:
            client.send_tasks_batch(warm, max_concurrent=mc)
            t0 = time.perf_counter()
            res = client.send_tasks_batch(items, max_concurrent=mc)
            dt = time.perf_counter() - t0
    else:

        async def run():
            async with make_client(job, cls=infinium.AsyncInfiniumClient) as client:
                await client.send_tasks_batch(warm, max_concurrent=mc)
                t0 = time.perf_counter()
                res = await client.send_tasks_batch(items, max_concurrent=mc)
                return res, time.perf_counter() - t0

        res, dt = asyncio.run(run())
    if res.failed:
        return {"error": f"{res.failed} failed: {res.errors[:2]}"}
    return {"per_s": len(items) / dt, "seconds": dt, "rss_mb": peak_rss_mb()}


def job_limiter(job: dict) -> dict:
    """workers x per sends through one client at rps/burst; the sink records starts."""
    workers, per, rps, burst = job["workers"], job["per"], job["rps"], job["burst"]
    task = fixture.build_task(T)
    kw = dict(enable_rate_limiting=True, requests_per_second=rps, burst=burst)
    errors: list = []
    if job["mode"] == "threads":
        client = make_client(job, agent_id=job["agent_id"], **kw)
        barrier = threading.Barrier(workers)

        def work():
            barrier.wait()
            for _ in range(per):
                try:
                    client.send_task_data(task)
                except Exception as e:  # pragma: no cover - reported
                    errors.append(repr(e))

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        w0 = time.time()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
        client.close()
    else:

        async def run():
            async with make_client(
                job, cls=infinium.AsyncInfiniumClient, agent_id=job["agent_id"], **kw
            ) as client:

                async def work():
                    for _ in range(per):
                        try:
                            await client.send_task_data(task)
                        except Exception as e:  # pragma: no cover - reported
                            errors.append(repr(e))

                w0 = time.time()
                t0 = time.perf_counter()
                await asyncio.gather(*(work() for _ in range(workers)))
                return w0, time.perf_counter() - t0

        w0, dt = asyncio.run(run())
    out = {"seconds": dt, "wall_start": w0, "requests": workers * per}
    if errors:
        out["error"] = f"{len(errors)} sends failed: {errors[0]}"
    return out


def job_decorated(job: dict) -> dict:
    """A decorated no-op called n times; mode nosend | send | background | durable."""
    mode, n = job["mode"], job["n"]
    params = client_params()
    kw: dict = {}
    if mode in ("background", "durable"):
        if "background" not in params:
            return {"na": "InfiniumClient has no background= option"}
        kw["background"] = True
        if "max_queue_size" in params:
            kw["max_queue_size"] = max(n + 1000, 10_000)
        if mode == "durable":
            if "durable" not in params or "spool_dir" not in params:
                return {"na": "InfiniumClient has no durable=/spool_dir= options"}
            kw["spool_dir"] = tempfile.mkdtemp(prefix="infinium-bench-spool-")
            kw["durable"] = True
    client = make_client(job, agent_id=job.get("agent_id", fixture.AGENT_ID), **kw)

    @client.trace("noop", auto_send=(mode != "nosend"))
    def noop(x):
        return x

    for i in range(min(n // 10, 200)):  # warm-up (connect, caches)
        noop(i)
    if mode in ("background", "durable"):
        client.flush(timeout=60)
    t0 = time.perf_counter()
    for i in range(n):
        noop(i)
    dt = time.perf_counter() - t0
    out = {"per_s": n / dt, "us": dt / n * 1e6}
    if mode in ("background", "durable"):
        ok = client.flush(timeout=120)
        dt_all = time.perf_counter() - t0
        out["e2e_per_s"] = n / dt_all
        out["flushed"] = bool(ok)
        if hasattr(client, "stats"):
            try:
                out["stats"] = dict(client.stats())
            except Exception:
                pass
    client.close()
    if kw.get("spool_dir"):
        import shutil

        shutil.rmtree(kw["spool_dir"], ignore_errors=True)
    return out


JOBS = {
    "info": job_info,
    "body": job_body,
    "serialize": job_serialize,
    "sequential": job_sequential,
    "batch": job_batch,
    "limiter": job_limiter,
    "decorated": job_decorated,
}


def main() -> None:
    job = json.loads(sys.argv[1])
    try:
        out = JOBS[job["kind"]](job)
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    if job.get("exit") != "normal":  # benches/pgo.py: instrumented builds write profiles at exit
        os._exit(0)  # don't let a background exporter's atexit flush skew the next job


if __name__ == "__main__":
    main()
