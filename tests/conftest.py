"""Shared fixtures: a real loopback HTTP capture server (``tests/support``),
credentials, clients, and the anchor SDK (``infinium-o2==1.2.0``) in a
separate cached venv."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Awaitable, Dict, Iterator, Optional, Sequence, Tuple, TypeVar

import pytest

# Re-exported: test modules import these from here.
from .support.capture import Captured, CaptureServer, Reply, Responder, api_reply

__all__ = ["CaptureServer", "Captured", "Reply", "Responder", "api_reply"]

ROOT = Path(__file__).resolve().parent.parent
ANCHOR_SPEC = "infinium-o2==1.2.0"
ANCHOR_EXTRAS = ["openai", "anthropic", "freezegun"]


T = TypeVar("T")


async def while_ticking(work: Awaitable[T], every: float) -> Tuple[T, int]:
    """Await ``work`` while another task ticks every ``every`` seconds; return
    its result and the tick count (a loop blocked throughout ticks ~once)."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(every)
            ticks += 1

    t = asyncio.create_task(ticker())
    try:
        return await work, ticks
    finally:
        t.cancel()


@pytest.fixture(autouse=True)
def _private_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test (and every process it starts) gets its own
    ``XDG_CACHE_HOME``: background export spools there by default, and no
    test may write into (or read a backlog from) the real ``~/.cache``."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def capture_server() -> Iterator[CaptureServer]:
    srv = CaptureServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def agent_id() -> str:
    return "3f9c1a52-8d4e-4b7a-9c1e-2a6f0b8d7e15"


@pytest.fixture
def agent_secret() -> str:
    return "sk-test-s3cr3t-value"


def make_client(cls: Any, srv: CaptureServer, agent_id: str, agent_secret: str, **kw: Any) -> Any:
    kw.setdefault("enable_rate_limiting", False)
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5.0)
    return cls(agent_id=agent_id, agent_secret=agent_secret, base_url=srv.base_url, **kw)


@pytest.fixture
def client(capture_server: CaptureServer, agent_id: str, agent_secret: str) -> Iterator[Any]:
    from infinium import InfiniumClient

    c = make_client(InfiniumClient, capture_server, agent_id, agent_secret)
    yield c
    c.close()


@pytest.fixture
def async_client(capture_server: CaptureServer, agent_id: str, agent_secret: str) -> Any:
    from infinium import AsyncInfiniumClient

    return make_client(AsyncInfiniumClient, capture_server, agent_id, agent_secret)


# --- the anchor SDK in its own venv --------------------------------------------


def cache_root() -> Path:
    """Where the tests keep what they download or build across sessions."""
    return Path(
        os.environ.get("INFINIUM_TEST_CACHE")
        or os.path.join(os.path.expanduser("~"), ".cache", "infinium-tests")
    )


def _anchor_venv_dir() -> Path:
    # One per Python version: a differential test compares the two SDKs on
    # the same interpreter (reprs and stdlib parsing differ between versions).
    return cache_root() / f"anchor-venv-py{sys.version_info[0]}.{sys.version_info[1]}"


def ensure_anchor_python() -> Tuple[Optional[str], str]:
    """Path to a python with ``infinium-o2==1.2.0`` (and ``ANCHOR_EXTRAS``),
    creating a cached venv on first use. Returns (path or None, reason)."""
    explicit = os.environ.get("INFINIUM_ANCHOR_PYTHON")
    if explicit:
        return (explicit, "") if os.path.exists(explicit) else (None, f"{explicit} missing")
    venv = _anchor_venv_dir()
    py = venv / "bin" / "python"
    # The marker lists what was installed: a venv made before an extra was
    # added gets it installed (pip keeps what is there).
    marker = venv / ".ready"
    wanted = " ".join([ANCHOR_SPEC, *ANCHOR_EXTRAS])

    def ready() -> bool:
        return py.exists() and marker.exists() and marker.read_text() == wanted

    if ready():
        return str(py), ""
    lock = venv.parent / ".anchor-lock"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_EX)
        if ready():
            return str(py), ""
        try:
            if not py.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(py), "-m", "pip", "install", "-q", ANCHOR_SPEC, *ANCHOR_EXTRAS],
                check=True,
                timeout=600,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"could not install {ANCHOR_SPEC}: {exc}"
        marker.write_text(wanted)
    return str(py), ""


@pytest.fixture(scope="session")
def anchor_python() -> str:
    path, reason = ensure_anchor_python()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"anchor SDK unavailable in CI: {reason}")
        pytest.skip(f"anchor SDK unavailable: {reason}")
    return path


def run_script(
    python: str,
    script: str,
    env: Optional[Dict[str, Optional[str]]] = None,
    args: Sequence[str] = (),
) -> str:
    """Run ``script`` with ``python`` outside the repo (so ``import infinium``
    finds that interpreter's own package; for this interpreter, the package
    under test); return stdout. ``env`` adds variables; a ``None`` value
    removes one. ``args`` become ``sys.argv[1:]``."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    full_env.pop("PYTHONPATH", None)
    if python == sys.executable:
        # "Ours" is the package this test run imports: a worktree's own, not
        # whichever checkout the venv's .pth file happens to name.
        import infinium

        full_env["PYTHONPATH"] = str(Path(infinium.__file__).resolve().parent.parent)
    out = subprocess.run(
        [python, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env=full_env,
    )
    if out.returncode != 0:
        raise AssertionError(f"script failed ({python}):\n{out.stderr}")
    return out.stdout
