"""README's Python snippets run as written.

A ```python block preceded by ``<!-- test: run -->`` is executed in a fresh
interpreter against a LocalServer, with the environment the README tells the
reader to set (``INFINIUM_BASE_URL``, ``INFINIUM_AGENT_ID``,
``INFINIUM_AGENT_SECRET``). ``<!-- test: run traces=N -->`` also checks that
the snippet delivered N traces to that server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

import infinium
from infinium.testing import LocalServer

from .conftest import ROOT

_MARK = re.compile(r"^<!-- test: run(?: traces=(\d+))? -->$")


@dataclass(frozen=True)
class Snippet:
    line: int  # of the opening fence, 1-based
    section: str
    code: str
    traces: Optional[int]


def runnable_snippets(text: str) -> List[Snippet]:
    lines = text.splitlines()
    out: List[Snippet] = []
    section = ""
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            section = lines[i].lstrip("#").strip()
        m = _MARK.match(lines[i].strip())
        if m and i + 1 < len(lines) and lines[i + 1].strip() == "```python":
            end = lines.index("```", i + 2)
            traces = int(m.group(1)) if m.group(1) else None
            out.append(Snippet(i + 2, section, "\n".join(lines[i + 2 : end]) + "\n", traces))
            i = end
        i += 1
    return out


SNIPPETS = runnable_snippets((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_sections_users_start_from_are_checked() -> None:
    sections = {s.section for s in SNIPPETS}
    assert {"Quick start", "The local Infinium API"} <= sections, sections
    assert any(s.traces for s in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: f"README.md:{s.line}")
def test_readme_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    with LocalServer() as srv:
        env = dict(os.environ)
        env.update(
            INFINIUM_BASE_URL=srv.base_url,
            INFINIUM_AGENT_ID=srv.agent_id,
            INFINIUM_AGENT_SECRET=srv.agent_secret,
            PYTHONPATH=str(Path(infinium.__file__).resolve().parent.parent),
        )
        env.setdefault("OPENAI_API_KEY", "sk-readme-snippet")  # constructs, never calls
        script = tmp_path / "snippet.py"
        script.write_text(snippet.code)
        out = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            cwd=str(tmp_path),
            env=env,
            timeout=120,
        )
        assert out.returncode == 0, f"README.md:{snippet.line} failed:\n{out.stderr}"
        if snippet.traces is not None:
            stored = srv.traces()  # the snippet sends synchronously
            assert len(stored) == snippet.traces, [t.get("name") for t in stored]
