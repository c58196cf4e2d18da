"""The ``infinium`` command: ``serve`` as a subprocess (SIGINT, config, --db), the
anchor SDK posting to it, and ``demo``."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from infinium.cli import _SERVE_FLAGS, DEV_AGENT_ID, DEV_AGENT_SECRET, build_parser, main

CLI = [sys.executable, "-m", "infinium.cli"]
ROOT = Path(__file__).resolve().parent.parent


class Served:
    """``infinium serve ...`` running as a subprocess."""

    def __init__(self, *args: str, cwd: Optional[Path] = None) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=ours_env(),
        )
        self.lines: List[str] = []
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 15
        self.base_url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        banner = "".join(self.lines)
        m = re.search(r"listening on (http://\S+)", banner)
        if m is None:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"serve did not start:\n{banner}\n{err}")
        self.base_url = m.group(1)
        self.banner = banner

    def stop(self, sig: int = signal.SIGINT) -> Tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=15)
        return self.proc.returncode, self.banner + out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def ours_env() -> Dict[str, str]:
    """The environment for a subprocess that must import this worktree's infinium."""
    import infinium

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(infinium.__file__).resolve().parent.parent)
    return env


@pytest.fixture
def serve_factory() -> Iterator[Any]:
    started: List[Served] = []

    def make(*args: str, cwd: Optional[Path] = None) -> Served:
        s = Served(*args, cwd=cwd)
        started.append(s)
        return s

    yield make
    for s in started:
        s.kill()


def call(
    url: str, body: Optional[Dict[str, Any]] = None, headers: Optional[Dict[str, str]] = None
) -> Tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def trace(name: str) -> Dict[str, Any]:
    return {
        "name": name,
        "description": "d",
        "current_datetime": "2026-01-01T00:00:00Z",
        "duration": 0.5,
    }


def dev_auth() -> Dict[str, str]:
    return {"x-agent-id": DEV_AGENT_ID, "x-agent-key": DEV_AGENT_SECRET}


def test_serve_prints_url_and_credentials_and_stops_on_sigint(serve_factory: Any) -> None:
    s = serve_factory()
    assert s.base_url.startswith("http://127.0.0.1:") and s.base_url.endswith("/api/v1")
    assert DEV_AGENT_ID in s.banner and DEV_AGENT_SECRET in s.banner
    assert "WARNING" not in s.banner
    status, data = call(f"{s.base_url}/agents/{DEV_AGENT_ID}/trace", trace("cli"), dev_auth())
    assert status == 200 and "traceId" in data
    status, page = call(f"{s.base_url}/agents/{DEV_AGENT_ID}/traces", headers=dev_auth())
    assert [r["trace"]["name"] for r in page["traces"]] == ["cli"]
    rc, out, err = s.stop(signal.SIGINT)
    assert rc == 0, err
    assert "Stopped. 2 request(s), 1 trace(s) stored" in out
    assert "Traceback" not in err


def test_serve_stops_on_sigterm(serve_factory: Any) -> None:
    rc, out, _ = serve_factory().stop(signal.SIGTERM)
    assert rc == 0
    assert "Stopped." in out


def test_serve_with_config_file(serve_factory: Any, tmp_path: Path) -> None:
    aid, pid = str(uuid.uuid4()), str(uuid.uuid4())
    cfg = {
        "agents": {aid: "config-secret"},
        "prompts": [{"id": pid, "key": "pk", "name": "p", "content": "Hi {{x}}"}],
        "faults": {"latency_ms": 1, "seed": 3},
    }
    path = tmp_path / "local.json"
    path.write_text(json.dumps(cfg))
    s = serve_factory("--config", str(path))
    assert aid in s.banner and "config-secret" in s.banner
    assert DEV_AGENT_ID not in s.banner
    assert '"latency_ms": 1' in s.banner
    auth = {"x-agent-id": aid, "x-agent-key": "config-secret"}
    assert call(f"{s.base_url}/agents/{aid}/trace", trace("c"), auth)[0] == 200
    assert call(f"{s.base_url}/agents/{DEV_AGENT_ID}/trace", trace("c"), dev_auth())[0] == 401
    status, prompt = call(
        f"{s.base_url}/prompts/{pid}/v/latest", headers={"x-prompt-id": pid, "x-prompt-key": "pk"}
    )
    assert status == 200 and prompt["content"] == "Hi {{x}}" and prompt["version"] == 1
    assert s.stop()[0] == 0


def test_serve_db_survives_restart(serve_factory: Any, tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    s1 = serve_factory("--db", str(db))
    assert "SQLite" in s1.banner
    call(f"{s1.base_url}/agents/{DEV_AGENT_ID}/trace", trace("persisted"), dev_auth())
    assert s1.stop()[0] == 0
    s2 = serve_factory("--db", str(db))
    _, page = call(f"{s2.base_url}/agents/{DEV_AGENT_ID}/traces", headers=dev_auth())
    assert [r["trace"]["name"] for r in page["traces"]] == ["persisted"]
    assert s2.stop()[0] == 0


def test_serve_sink(serve_factory: Any) -> None:
    s = serve_factory("--sink")
    assert "sink" in s.banner
    assert call(f"{s.base_url}/agents/{DEV_AGENT_ID}/trace", trace("x"), dev_auth())[0] == 200
    rc, out, _ = s.stop()
    assert rc == 0 and "1 sunk" in out


def test_non_loopback_host_warns(serve_factory: Any) -> None:
    s = serve_factory("--host", "0.0.0.0")
    assert "WARNING" in s.banner and "reachable from the network" in s.banner
    # No fixed development credentials when reachable from the network.
    assert DEV_AGENT_SECRET not in s.banner
    assert s.stop()[0] == 0


def test_config_host_is_ignored_without_explicit_flag(serve_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"host": "0.0.0.0"}))
    s = serve_factory("--config", str(path))
    assert s.base_url.startswith("http://127.0.0.1:")
    rc, _, err = s.stop()
    assert rc == 0 and "pass --host explicitly" in err


def test_serve_port_in_use_exits_1() -> None:
    from infinium.testing import LocalServer

    with LocalServer() as srv:
        proc = subprocess.run(
            [*CLI, "serve", "--port", str(srv.port)], capture_output=True, text=True, timeout=30
        )
    assert proc.returncode == 1
    assert "cannot start the local API" in proc.stderr


def test_bad_config_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"agentz": {}}))
    proc = subprocess.run(
        [*CLI, "serve", "--config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0
    assert "unknown key(s) agentz" in proc.stderr


def test_no_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    exe = shutil.which("infinium", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("the infinium console script is not installed next to this python")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "demo" in proc.stdout


def serve_subparser() -> Any:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["serve"]


def test_every_serve_flag_has_help_and_is_documented() -> None:
    serve = serve_subparser()
    flags = [a for a in serve._actions if a.option_strings and a.dest != "help"]
    assert len(flags) >= 20
    missing = [a.option_strings[0] for a in flags if not (a.help or "").strip()]
    assert missing == []
    docs = (ROOT / "docs" / "local-api.md").read_text()
    undocumented = [a.option_strings[0] for a in flags if a.option_strings[0] not in docs]
    assert undocumented == []
    # Every flag maps onto a configuration setting (errors name it).
    assert {f for f, _, _ in _SERVE_FLAGS} == {
        a.option_strings[0] for a in flags if a.dest != "config"
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--fault-5xx", "2"], "--fault-5xx must be a number from 0 to 1"),
        (["--fault-5xx", "nan"], "--fault-5xx must be a finite number"),
        (["--fault-drop", "0.6", "--fault-5xx", "0.6"], "(--fault-5xx + --fault-drop) add up"),
        (["--latency-ms", "-1"], "--latency-ms must be a non-negative integer"),
        (["--status-5xx", "404"], "--status-5xx must be a status from 500 to 599"),
        (["--port", "70000"], "--port must be an integer from 0 to 65535"),
        (["--capacity", "-2"], "--capacity must be a non-negative integer"),
        (["--header-timeout", "0"], "--header-timeout must be a number of seconds above 0"),
        (["--max-connections", "0"], "--max-connections must be an integer from 1"),
        (["--agent-id", " ", "--agent-secret", "k"], "--agent-id must be a non-empty agent id"),
        (["--agent-id", "a", "--agent-secret", ""], "--agent-secret must be a non-empty secret"),
        (["--agent-id", "a"], "--agent-id and --agent-secret go together"),
        (["--db", ""], "--db must be a file path"),
    ],
)
def test_serve_errors_name_the_flag_typed(
    argv: List[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err


def test_serve_flag_syntax_errors_come_from_argparse_and_abbreviations_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, message in (
        (["--fault-5xx", "x"], "argument --fault-5xx: invalid float value: 'x'"),
        (["--over-capacity", "drop"], "argument --over-capacity: invalid choice: 'drop'"),
        (["--latency", "5"], "unrecognized arguments: --latency"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["serve", *argv])
        assert e.value.code == 2
        assert message in capsys.readouterr().err


def test_config_file_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "local.json"
    for doc, message in (
        ({"faults": {"drop": 2}}, "local.json: faults.drop must be a number from 0 to 1"),
        ({"agents": [{"id": "a"}]}, "local.json: agents[0].key must be a string"),
        ({"prompts": {"p": {"key": "k"}}}, "local.json: prompts.p.content must be a string"),
        ([1, 2], "local.json: the configuration must be an object"),
    ):
        path.write_text(json.dumps(doc))
        proc = subprocess.run(
            [*CLI, "serve", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            env=ours_env(),
        )
        assert proc.returncode == 2
        assert message in proc.stderr, proc.stderr
    path.write_text("{not json")
    proc = subprocess.run(
        [*CLI, "serve", "--config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0 and "is not valid JSON" in proc.stderr


def documented_block(path: Path, lang: str, after: str) -> str:
    """The first ``lang`` code block after the line starting with ``after``."""
    text = path.read_text()
    start = text.index(after)
    m = re.search(rf"```{lang}\n(.*?)```", text[start:], re.S)
    assert m is not None, f"no {lang} block after {after!r} in {path}"
    return m.group(1)


def run_python(code: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=ours_env(),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_documented_config_starts_a_server_whose_snippet_works(
    serve_factory: Any, tmp_path: Path
) -> None:
    doc = documented_block(ROOT / "docs" / "local-api.md", "json", "## Config file")
    cfg = json.loads(doc)
    (tmp_path / "local.json").write_text(doc)
    s = serve_factory("--config", "local.json", cwd=tmp_path)
    agent_id, secret = next(iter(cfg["agents"].items()))
    assert f"agent_id:     {agent_id}" in s.banner
    assert f"SQLite {tmp_path / 'traces.db'}" in s.banner
    # The snippet, exactly as printed (indented by four spaces in the banner).
    lines = s.banner.split("Use it from Python:\n", 1)[1].split("\nInspect:", 1)[0]
    snippet = textwrap.dedent(lines)
    assert "from infinium import InfiniumClient" in snippet
    out = run_python(snippet, tmp_path)
    assert "success=True" in out or "'traceId'" in out, out
    auth = {"x-agent-id": agent_id, "x-agent-key": secret}
    _, page = call(f"{s.base_url}/agents/{agent_id}/traces", headers=auth)
    assert [r["trace"]["name"] for r in page["traces"]] == ["hello"]
    prompt = cfg["prompts"][0]
    status, got = call(
        f"{s.base_url}/prompts/{prompt['id']}/v/latest",
        headers={"x-prompt-id": prompt["id"], "x-prompt-key": prompt["key"]},
    )
    assert status == 200 and got["content"] == "Hi {{name}}!"
    assert s.stop()[0] == 0


# -- the anchor SDK (infinium-o2 1.2.0, separate venv) against `infinium serve` ----------


ANCHOR_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from infinium import InfiniumClient, TraceBuilder
    from infinium.exceptions import AuthenticationError, NotFoundError

    base_url, agent_id, secret, prompt_id = sys.argv[1:5]
    out = {}
    with InfiniumClient(agent_id=agent_id, agent_secret=secret, base_url=base_url) as c:
        r = c.send_task(name="anchor task", description="from infinium-o2", duration=1.5,
                        llm_usage={"model": "gpt-4o", "prompt_tokens": 10})
        out["send_task"] = [r.success, r.status_code, r.data["traceId"]]
        tb = TraceBuilder("anchor builder", "two steps")
        with tb.step("a", "first") as s:
            s.record_llm_call("gpt-4o", provider="openai", prompt_tokens=3)
        with tb.step("b", "second"):
            pass
        out["builder"] = c.send_task_data(tb.build()).data["traceId"]
        p = c.get_prompt(prompt_id, "anchor-pk", variables={"who": "anchor"})
        out["prompt"] = [p.version, p.rendered_content]
        try:
            c.get_interpreted_task_result(out["builder"])
        except NotFoundError as e:
            out["interpreted"] = "NotFoundError"
    try:
        InfiniumClient(agent_id=agent_id, agent_secret="wrong-secret",
                       base_url=base_url).send_task(name="x", description="y", duration=1)
    except AuthenticationError:
        out["bad_secret"] = "AuthenticationError"
    print(json.dumps(out))
    """
)


def test_anchor_sdk_posts_to_infinium_serve(
    serve_factory: Any, tmp_path: Path, anchor_python: str
) -> None:
    # `anchor_python` (conftest): infinium-o2 1.2.0 in its own cached venv.
    exe = anchor_python
    pid = str(uuid.uuid4())
    cfg = {
        "agents": {DEV_AGENT_ID: DEV_AGENT_SECRET},
        "prompts": [{"id": pid, "key": "anchor-pk", "name": "p", "content": "Hello {{who}}"}],
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    s = serve_factory("--config", str(path))
    script = tmp_path / "anchor_client.py"
    script.write_text(ANCHOR_SCRIPT)
    # Run outside the repo so `import infinium` finds the anchor, not ours.
    proc = subprocess.run(
        [exe, str(script), s.base_url, DEV_AGENT_ID, DEV_AGENT_SECRET, pid],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["send_task"][:2] == [True, 200]
    assert out["prompt"] == [1, "Hello anchor"]
    assert out["interpreted"] == "NotFoundError"
    assert out["bad_secret"] == "AuthenticationError"
    _, page = call(f"{s.base_url}/agents/{DEV_AGENT_ID}/traces", headers=dev_auth())
    records = page["traces"]
    assert [r["trace"]["name"] for r in records] == ["anchor builder", "anchor task"]
    assert records[1]["traceId"] == out["send_task"][2]
    assert records[1]["trace"]["llm_usage"] == {"model": "gpt-4o", "prompt_tokens": 10}
    assert [st["action"] for st in records[0]["trace"]["steps"]] == ["a", "b"]
    rc, _, err = s.stop(signal.SIGINT)
    assert rc == 0, err


# -- infinium demo --------------------------------------------------------------------------


def test_demo_runs_every_way_of_sending() -> None:
    import infinium

    missing = [
        n
        for n in ("InfiniumClient", "AsyncInfiniumClient", "TraceBuilder", "LlmUsage")
        if not hasattr(infinium, n)
    ]
    if missing:
        pytest.skip(f"the SDK client is not available yet (missing {', '.join(missing)})")
    proc = subprocess.run([*CLI, "demo"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name in (
        "Summarise ticket #1042",
        "Research brief",
        "Email classifier",
        "Batch item 1",
        "Batch item 3",
        "Async triage",
    ):
        assert name in out
    assert "stored 7 trace(s)" in out
    assert "Demo complete" in out
    # Research brief: 3 steps, 1250 tokens, 1 error (the failed step).
    assert re.search(r"Research brief\s+3\s+1250\s+1", out), out
