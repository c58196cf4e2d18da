"""infinium-rs installed next to packages that require infinium-o2, in a real
virtualenv with real pip: the README's pip recipe keeps ``import infinium``
ours; a plain install lets infinium-o2 overwrite us, which ``infinium doctor``
reports (exit 1) and repairs with the commands it prints; the import-time
warning fires once when infinium-o2's metadata sits beside ours.

One scratch venv per session, reset before each test. Our wheel is packed
from the package under test (its compiled core included: building with
maturin again costs minutes) and cached under the tests' cache directory;
the package that requires infinium-o2 is a small wheel written here; pip
installs offline from a wheelhouse of infinium-o2 1.2.0 and its requirements,
downloaded once into the cache (needs PyPI the first time: skipped without
it, an error in CI)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, List, Union

import pytest

import infinium

from .conftest import ANCHOR_SPEC, ROOT, cache_root

pytestmark = [pytest.mark.venv, pytest.mark.timeout(600)]

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
DEPENDENT = "infinium-anchor-dependent"
HELPER = "infinium-anchor-dependent-helper"


# -- wheels ----------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def write_wheel(
    out_dir: Path,
    name: str,
    version: str,
    tag: str,
    files: Dict[str, Union[bytes, Path]],
    metadata_text: str,
    entry_points: str = "",
) -> Path:
    """A wheel (PEP 427) holding ``files`` (archive name -> bytes or a file to
    copy), with its ``.dist-info`` and a RECORD of sha256 hashes."""
    stem = name.replace("-", "_")
    dist_info = f"{stem}-{version}.dist-info"
    root_is_purelib = "true" if tag.startswith("py3-none") else "false"
    members: Dict[str, Union[bytes, Path]] = dict(files)
    members[f"{dist_info}/METADATA"] = metadata_text.encode()
    members[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: infinium-tests\nRoot-Is-Purelib: {root_is_purelib}\n"
        f"Tag: {tag}\n"
    ).encode()
    if entry_points:
        members[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    path = out_dir / f"{stem}-{version}-{tag}.whl"
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for arcname, content in sorted(members.items()):
            data = content.read_bytes() if isinstance(content, Path) else content
            big = len(data) > (1 << 20)  # the compiled core: storing is much faster
            zf.writestr(arcname, data, zipfile.ZIP_STORED if big else zipfile.ZIP_DEFLATED)
            writer.writerow([arcname, _record_hash(data), len(data)])
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        zf.writestr(f"{dist_info}/RECORD", record.getvalue())
    tmp.replace(path)
    return path


def our_wheel() -> Path:
    """infinium-rs as a wheel of the package under test, cached by the files'
    names, sizes and mtimes (rebuilt after any change to the checkout)."""
    pkg = Path(infinium.__file__).resolve().parent
    dist = metadata.distribution("infinium-rs")
    ext = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    files: Dict[str, Union[bytes, Path]] = {}
    key = hashlib.sha256((dist.read_text("METADATA") or "").encode())
    for path in sorted(pkg.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if path.name.startswith("_core.") and not path.name.endswith(ext):
            continue  # a core built for another Python version
        arcname = "infinium/" + path.relative_to(pkg).as_posix()
        files[arcname] = path
        st = path.stat()
        key.update(f"{arcname}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}-cp{sys.version_info[0]}{sys.version_info[1]}-{platform}"
    cache = cache_root() / f"our-wheel-py{PY}"
    slot = cache / key.hexdigest()[:20]
    found = list(slot.glob("*.whl"))
    if found:
        return found[0]
    shutil.rmtree(cache, ignore_errors=True)  # one wheel kept: the checkout's latest
    slot.mkdir(parents=True)
    return write_wheel(
        slot,
        "infinium-rs",
        dist.version,
        tag,
        files,
        dist.read_text("METADATA") or "",
        dist.read_text("entry_points.txt") or "",
    )


def dependent_wheels(out_dir: Path) -> None:
    """A package that requires infinium-o2 as the connectors on PyPI do, and
    one more requirement of its own (the recipe installs it by hand)."""
    write_wheel(
        out_dir,
        HELPER,
        "1.0.0",
        "py3-none-any",
        {"infinium_anchor_dependent_helper/__init__.py": b"READY = True\n"},
        f"Metadata-Version: 2.1\nName: {HELPER}\nVersion: 1.0.0\n",
    )
    write_wheel(
        out_dir,
        DEPENDENT,
        "1.0.0",
        "py3-none-any",
        {
            "infinium_anchor_dependent/__init__.py": (
                b"import infinium\n"
                b"from infinium import InfiniumClient, TraceBuilder, get_current_iso_datetime\n"
                b"import infinium_anchor_dependent_helper\n"
                b"SDK = 'infinium-rs' if hasattr(infinium, '__distribution_version__') "
                b"else 'infinium-o2'\n"
            )
        },
        f"Metadata-Version: 2.1\nName: {DEPENDENT}\nVersion: 1.0.0\n"
        "Requires-Dist: infinium-o2<2.0.0,>=1.0.0\n"
        f"Requires-Dist: {HELPER}\n",
    )


# What pip installs from: the anchor, and the build backend of the README's stand-in.
WHEELHOUSE = [ANCHOR_SPEC, "setuptools>=61"]


def wheelhouse() -> Path:
    """infinium-o2 1.2.0 and its requirements (and setuptools), downloaded once."""
    house = cache_root() / f"anchor-wheelhouse-py{PY}"
    marker = house / ".ready"
    if marker.exists() and marker.read_text() == " ".join(WHEELHOUSE):
        return house
    house.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(house), *WHEELHOUSE],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        message = f"cannot download {ANCHOR_SPEC}: {out.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    marker.write_text(" ".join(WHEELHOUSE))
    return house


# -- the scratch venv -------------------------------------------------------------


@dataclass
class Venv:
    root: Path
    wheel: Path
    env: Dict[str, str]

    def sh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell command as a user would, with the venv's bin first on PATH."""
        out = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=str(self.root),
            timeout=300,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"{command!r} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
            )
        return out

    def py(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.sh(f"python -c {_q(code)}")

    def doctor(self) -> Dict[str, Any]:
        out = self.sh("infinium doctor --json", check=False)
        report: Dict[str, Any] = json.loads(out.stdout)
        assert out.returncode == (0 if report["ok"] else 1), out.stderr
        return report

    def installed(self) -> Dict[str, str]:
        out = self.sh("pip list --format json")
        return {p["name"].lower(): p["version"] for p in json.loads(out.stdout)}

    def reset(self) -> None:
        """Only infinium-rs (and what earlier tests left of httpx & co)."""
        self.sh(f"pip uninstall -q -y {DEPENDENT} {HELPER} infinium-o2")
        self.sh(f"pip install -q --force-reinstall --no-deps {_q(str(self.wheel))}")


def _q(s: str) -> str:
    import shlex

    return shlex.quote(s)


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    house = wheelhouse()
    local = tmp_path_factory.mktemp("wheels")
    dependent_wheels(local)
    wheel = our_wheel()
    root = tmp_path_factory.mktemp("coexist-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=f"{root / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(root / "venv"),
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=f"{house} {local} {wheel.parent}",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    yield Venv(root, wheel, env)


@pytest.fixture
def fresh(venv: Venv) -> Venv:
    venv.reset()
    return venv


# -- the tests --------------------------------------------------------------------


def _sdk_of_dependent(v: Venv) -> str:
    return v.py("import infinium_anchor_dependent as d; print(d.SDK)").stdout.strip()


def test_pip_recipe_installs_a_dependent_of_the_anchor_on_ours(fresh: Venv) -> None:
    # The README's recipe: the dependent without its requirements, then its
    # other requirements by name.
    fresh.sh(f"pip install --no-deps {DEPENDENT}")
    fresh.sh(f"pip install {HELPER}")
    assert "infinium-o2" not in fresh.installed()
    assert _sdk_of_dependent(fresh) == "infinium-rs"
    # ... and the dependent really runs on our code: a trace through our serialiser.
    out = fresh.py(
        "import infinium, infinium_anchor_dependent, json\n"
        "tb = infinium.TraceBuilder('n', 'd')\n"
        "print(json.loads(infinium.dumps(tb.build()))['environment']['sdk_version'])"
    )
    assert out.stdout.strip() == "1.2.0"
    # pip check names infinium-o2 as missing, and nothing else (README says so).
    check = fresh.sh("pip check", check=False)
    assert check.returncode == 1
    assert check.stdout.strip().splitlines() == [
        f"{DEPENDENT} 1.0.0 requires infinium-o2, which is not installed."
    ]
    report = fresh.doctor()
    assert report["ok"] and report["running_ours"] and report["problems"] == []
    assert [d["name"] for d in report["dependents"]] == [DEPENDENT]
    assert any(DEPENDENT in n and "pip check" in n for n in report["notes"])


def test_plain_install_of_a_dependent_overwrites_ours_and_doctor_repairs_it(fresh: Venv) -> None:
    fresh.sh(f"pip install {DEPENDENT}")  # exits 0 and pulls infinium-o2 over us
    assert fresh.installed()["infinium-o2"] == "1.2.0"
    assert _sdk_of_dependent(fresh) == "infinium-o2"
    text = fresh.sh("infinium doctor", check=False)
    assert text.returncode == 1
    assert "NOT infinium-rs's code" in text.stdout and "Fix (run in this order):" in text.stdout

    report = fresh.doctor()
    assert not report["ok"] and not report["running_ours"]
    assert report["core_version"] == infinium.__distribution_version__  # our core is still there
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path["infinium/__init__.py"]["owner"] == "infinium-o2"
    replaced = [
        f["path"]
        for f in report["files"]
        if f["owner"] == "infinium-o2"
        and any(c["distribution"] == "infinium-rs" for c in f["claims"])
    ]
    assert len(replaced) == 13  # every file of infinium-o2's wheel overwrote one of ours
    assert by_path["infinium/cli.py"]["owner"] == "infinium-rs"  # the anchor has none
    assert any("`import infinium` runs infinium-o2's code" in p for p in report["problems"])
    assert any("13 file(s) of infinium-rs hold infinium-o2's copy" in p for p in report["problems"])
    assert any(
        "infinium-o2 1.2.0 is installed in the same directory" in p for p in report["problems"]
    )
    commands = [c for c in report["fix"] if not c.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("-m pip uninstall -y infinium-o2")
    assert "install --force-reinstall --no-deps" in commands[1] and fresh.wheel.name in commands[1]
    assert any(c.startswith("#") and DEPENDENT in c for c in report["fix"])

    for command in commands:  # exactly as printed
        fresh.sh(command)
    after = fresh.doctor()
    assert after["ok"], after["problems"]
    assert _sdk_of_dependent(fresh) == "infinium-rs"
    assert "infinium-o2" not in fresh.installed()
    quiet = fresh.sh("python -W error -c 'import infinium'")
    assert quiet.stderr == ""


def test_import_warns_once_when_the_anchor_is_installed_beside_ours(fresh: Venv) -> None:
    # Clean install: no warning (an error under -W error would fail here).
    fresh.sh("python -W error -c 'import infinium'")
    fresh.sh(f"pip install -q {_q(ANCHOR_SPEC)}")  # the anchor over us ...
    fresh.sh(f"pip install -q --force-reinstall --no-deps {_q(str(fresh.wheel))}")  # ... us over it
    out = fresh.py(
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import infinium, infinium.client, infinium.tracing\n"
        "    import importlib; importlib.import_module('infinium')\n"
        "for w in caught:\n"
        "    print(type(w.category).__name__, w.category.__name__, '|', w.message)\n"
        "print('ours' if hasattr(infinium, '__distribution_version__') else 'anchor')"
    ).stdout.splitlines()
    assert out[-1] == "ours"
    warned = out[:-1]
    assert len(warned) == 1, warned
    assert warned[0].startswith("type InstallConflictWarning | infinium-o2 is installed beside")
    for piece in ("infinium_o2-1.2.0.dist-info", "pip uninstall -y infinium-o2", "infinium doctor"):
        assert piece in warned[0]
    # Shown by default, once, on stderr.
    plain = fresh.sh("python -c 'import infinium, infinium'")
    assert plain.stderr.count("InstallConflictWarning") == 1

    report = fresh.doctor()
    assert report["running_ours"] and not report["ok"]
    assert report["problems"] == [
        "infinium-o2 1.2.0 is installed in the same directory and shares 13 file(s) with "
        "infinium-rs: installing or uninstalling either one replaces or deletes the other's files"
    ]


def test_doctor_after_uninstalling_the_anchor_that_overwrote_ours(fresh: Venv) -> None:
    fresh.sh(f"pip install -q {_q(ANCHOR_SPEC)}")
    fresh.sh("pip uninstall -q -y infinium-o2")  # deletes the 13 shared files, ours included
    broken = fresh.sh("python -c 'import infinium; infinium.InfiniumClient'", check=False)
    assert broken.returncode != 0
    report = fresh.doctor()  # the console script still runs: cli.py was never shared
    assert not report["ok"] and not report["running_ours"]
    assert (
        "`import infinium` finds no infinium/__init__.py: the package is broken"
        in (report["problems"])
    )
    assert any(
        p.startswith("13 file(s) of infinium-rs are missing") and "__init__.py" in p
        for p in report["problems"]
    )
    commands = [c for c in report["fix"] if not c.startswith("#")]
    assert len(commands) == 1 and "--force-reinstall --no-deps" in commands[0]
    fresh.sh(commands[0])
    assert fresh.doctor()["ok"]
    fresh.py("import infinium; infinium.InfiniumClient")


def test_our_wheel_holds_the_package_under_test(venv: Venv) -> None:
    # The cached wheel is rebuilt from the checkout: its __init__ is ours, byte for byte.
    with zipfile.ZipFile(venv.wheel) as zf:
        packed = zf.read("infinium/__init__.py")
        names: List[str] = zf.namelist()
    assert packed == Path(infinium.__file__).read_bytes()
    assert any(n.startswith("infinium/_core.") for n in names)
    assert "infinium/cli.py" in names and "infinium/_internal/doctor.py" in names


def readme_stand_in() -> str:
    """The stand-in's pyproject.toml, as README gives it."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if "<!-- test: infinium-o2 stand-in -->" in line)
    assert lines[start + 1].strip() == "```toml"
    end = next(i for i in range(start + 2, len(lines)) if lines[i].strip() == "```")
    return "\n".join(line.strip() for line in lines[start + 2 : end]) + "\n"


def test_readme_stand_in_meets_the_requirement_and_installs_nothing(
    fresh: Venv, tmp_path: Path
) -> None:
    stand_in = tmp_path / "infinium-o2-stand-in"
    stand_in.mkdir()
    (stand_in / "pyproject.toml").write_text(readme_stand_in())
    fresh.sh(f"pip install {_q(str(stand_in))}")
    fresh.sh(f"pip install {DEPENDENT}")  # a plain install: the stand-in meets infinium-o2
    assert fresh.installed()["infinium-o2"] == "1.2.0"
    assert _sdk_of_dependent(fresh) == "infinium-rs"
    assert fresh.sh("pip check").stdout.strip() == "No broken requirements found."
    assert fresh.sh("python -W error -c 'import infinium'").stderr == ""
    report = fresh.doctor()
    assert report["ok"], report["problems"]
    assert any("a stand-in" in n for n in report["notes"])
