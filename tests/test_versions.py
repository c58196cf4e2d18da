"""Versions where users look: ``infinium --version``, ``python -m infinium``,
``infinium.__distribution_version__``; ``__version__`` stays the anchor's
(it is the wire's ``environment.sdk_version``)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

import infinium
from infinium import _core
from infinium.cli import main

INSTALLED = metadata.version("infinium-rs")


def _python_m(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infinium", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_distribution_version_is_the_installed_one() -> None:
    assert infinium.__distribution_version__ == INSTALLED == _core.__version__


def test_version_stays_the_anchors_and_is_the_wire_sdk_version() -> None:
    assert infinium.__version__ == "1.2.0"
    body = json.loads(infinium.dumps(infinium.TraceBuilder("n", "d").build()))
    assert body["environment"]["sdk_version"] == "1.2.0"


def test_dash_dash_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"infinium-rs {INSTALLED} (import name `infinium`, ")
    assert "infinium-o2 1.2.0" in out and "warning" not in out


def test_python_dash_m_infinium() -> None:
    version = _python_m("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"infinium-rs {INSTALLED} ")
    bare = _python_m()
    assert bare.returncode == 2
    for command in ("serve", "demo", "replay", "doctor"):
        assert command in bare.stdout


def test_doctor_on_this_install_is_ok() -> None:
    out = _python_m("doctor", "--json")
    report = json.loads(out.stdout)
    assert out.returncode == 0, report["problems"]
    assert report["ok"] and report["running_ours"] and report["core_version"] == INSTALLED
    assert [o["name"] for o in report["ours"]] == ["infinium-rs"]
    assert report["anchors"] == []
