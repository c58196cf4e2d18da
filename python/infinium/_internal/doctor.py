"""``infinium doctor``: is the ``infinium`` that Python imports this package, and
who owns its files?

``infinium-o2`` and ``infinium-rs`` both install the ``infinium`` package, and
packages on PyPI that require ``infinium-o2`` pull it in over ours. This module
reads the installed RECORD files (``importlib.metadata``) of every distribution
that claims a file of ``infinium/``, hashes those files on disk to tell whose
copy each one is, checks that the running code is ours (our ``__init__``, the
Rust core), and prints the commands that repair the install. It imports nothing
else of the package, so it still runs when ``infinium-o2`` has replaced
``infinium/__init__.py``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import json
import os
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import unquote, urlparse

from .coexist import ANCHOR_DISTRIBUTION, OUR_DISTRIBUTION

#: The API level this package reproduces (``infinium.__version__``).
ANCHOR_API_VERSION = "1.2.0"
PACKAGE = "infinium"
README_SECTION = 'README, "Next to packages that require infinium-o2"'


@dataclass(frozen=True)
class Installed:
    """One installed distribution, as its metadata directory describes it."""

    name: str
    version: str
    #: The directory holding its ``.dist-info`` (a site-packages directory).
    site_dir: str
    #: What installed it (the ``INSTALLER`` file: ``pip``, ``uv``, ``poetry``), or "".
    installer: str
    #: Where it was installed from (``direct_url.json``): a path or URL; None
    #: when it came from a package index.
    source: Optional[str]
    editable: bool


@dataclass(frozen=True)
class Claim:
    """A distribution whose RECORD lists a file."""

    distribution: str
    #: Whether the file on disk has the hash the RECORD gives (False when absent).
    matches: bool


@dataclass(frozen=True)
class FileStatus:
    """One file of the ``infinium`` package directory."""

    #: Relative to the directory holding the package: ``infinium/client.py``.
    path: str
    on_disk: bool
    claims: Tuple[Claim, ...]

    @property
    def owner(self) -> Optional[str]:
        """The distribution whose copy is on disk, if any."""
        for claim in self.claims:
            if claim.matches:
                return claim.distribution
        return None


@dataclass(frozen=True)
class Dependent:
    """An installed distribution that requires ``infinium-o2``."""

    name: str
    version: str
    requirement: str


@dataclass
class Diagnosis:
    """Everything ``infinium doctor`` found; ``problems`` empty means healthy."""

    python: str
    #: The directory of the ``infinium`` package this code runs from.
    package_dir: str
    #: Whether ``import infinium`` gives this package's ``__init__``.
    running_ours: bool
    #: ``infinium._core.__version__``, or None when the Rust core does not import.
    core_version: Optional[str]
    core_error: Optional[str]
    ours: List[Installed]
    anchors: List[Installed]
    dependents: List[Dependent]
    files: List[FileStatus]
    #: Other ``infinium`` package directories on ``sys.path``.
    other_copies: List[str]
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    fix: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing needs fixing."""
        return not self.problems

    def to_json(self) -> Dict[str, Any]:
        """A JSON-ready dict (``infinium doctor --json``)."""
        out = asdict(self)
        out["ok"] = self.ok
        for f, status in zip(out["files"], self.files):
            f["owner"] = status.owner
        return out


# -- reading the installed metadata ----------------------------------------------


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _read_text(dist: metadata.Distribution, name: str) -> str:
    try:
        return (dist.read_text(name) or "").strip()
    except OSError:
        return ""


def _source(dist: metadata.Distribution) -> Tuple[Optional[str], bool]:
    raw = _read_text(dist, "direct_url.json")
    if not raw:
        return None, False
    try:
        info = json.loads(raw)
    except ValueError:
        return None, False
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return None, False
    url: str = info["url"]
    dir_info = info.get("dir_info")
    editable = isinstance(dir_info, dict) and dir_info.get("editable") is True
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        commit = vcs.get("commit_id")
        return f"{vcs['vcs']}+{url}" + (f"@{commit}" if isinstance(commit, str) else ""), False
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path), editable
    return url, editable


def _dist_site_dir(dist: metadata.Distribution) -> str:
    return os.path.normpath(os.path.abspath(str(dist.locate_file(""))))


def _installed(dist: metadata.Distribution) -> Installed:
    source, editable = _source(dist)
    return Installed(
        name=str(dist.metadata["Name"] or ""),
        version=str(dist.version or ""),
        site_dir=_dist_site_dir(dist),
        installer=_read_text(dist, "INSTALLER"),
        source=source,
        editable=editable,
    )


def _all_distributions(path: Optional[List[str]] = None) -> List[metadata.Distribution]:
    seen = set()
    out = []
    found = metadata.distributions() if path is None else metadata.distributions(path=path)
    for dist in found:
        name = dist.metadata["Name"]
        if not isinstance(name, str):
            continue
        key = (_normalise(name), _dist_site_dir(dist))
        if key not in seen:  # a directory listed twice on sys.path
            seen.add(key)
            out.append(dist)
    return out


def _requirement_name(requirement: str) -> Optional[str]:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return _normalise(m.group(1)) if m else None


def _dependents(dists: Iterable[metadata.Distribution]) -> List[Dependent]:
    out = []
    for dist in dists:
        for req in dist.requires or []:
            name, _, marker = req.partition(";")
            if _requirement_name(name) == ANCHOR_DISTRIBUTION and "extra" not in marker:
                out.append(Dependent(str(dist.metadata["Name"]), str(dist.version), name.strip()))
    return sorted(out, key=lambda d: d.name.lower())


# -- who owns each file ----------------------------------------------------------


def _digest(path: Path, mode: str, cache: Dict[Tuple[str, str], Optional[str]]) -> Optional[str]:
    key = (str(path), mode)
    if key not in cache:
        try:
            h = hashlib.new(mode)
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            cache[key] = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii")
        except (OSError, ValueError):  # unreadable, or an unknown hash name
            cache[key] = None
    return cache[key]


def _package_files(package_dir: Path) -> List[str]:
    out = []
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith((".pyc", ".pyo")):
                rel = Path(root, name).relative_to(package_dir.parent)
                out.append(rel.as_posix())
    return out


def file_statuses(package_dir: Path, dists: Iterable[metadata.Distribution]) -> List[FileStatus]:
    """Every file of ``package_dir`` and every file a RECORD of a distribution
    installed beside it lists there, with who claims it and whose copy it is."""
    site_dir = os.path.normpath(str(package_dir.parent))
    claims: Dict[str, List[Tuple[str, str, str]]] = {}
    for dist in dists:
        if _dist_site_dir(dist) != site_dir:
            continue
        name = str(dist.metadata["Name"])
        for f in dist.files or []:
            parts = PurePosixPath(str(f).replace(os.sep, "/")).parts
            if not parts or parts[0] != package_dir.name or "__pycache__" in parts:
                continue
            if f.hash is None:
                continue
            claims.setdefault("/".join(parts), []).append((name, f.hash.mode, f.hash.value))
    cache: Dict[Tuple[str, str], Optional[str]] = {}
    out = []
    for rel in sorted(set(claims) | set(_package_files(package_dir))):
        path = package_dir.parent / rel
        on_disk = path.is_file()
        file_claims = tuple(
            Claim(dist, on_disk and _digest(path, mode, cache) == value)
            for dist, mode, value in claims.get(rel, [])
        )
        out.append(FileStatus(rel, on_disk, file_claims))
    return out


# -- the diagnosis ---------------------------------------------------------------


def _quote(arg: str) -> str:
    return shlex.quote(arg)


def _installer_cmd(installer: str, python: str) -> Tuple[List[str], List[str], str]:
    """(uninstall prefix, install prefix, reinstall flag) for the tool that
    installed the package: a uv venv usually has no pip."""
    if installer == "uv":
        py = ["--python", _quote(python)]
        return ["uv", "pip", "uninstall", *py], ["uv", "pip", "install", *py], "--reinstall"
    base = [_quote(python), "-m", "pip"]
    return [*base, "uninstall", "-y"], [*base, "install"], "--force-reinstall"


def _reinstall_target(ours: Installed) -> Optional[str]:
    if ours.source is None:
        return f"{OUR_DISTRIBUTION}=={ours.version}"
    if "://" not in ours.source and not os.path.exists(ours.source):
        return None  # a local wheel or checkout that is gone
    return _quote(ours.source)


def _running_ours() -> Tuple[bool, Optional[str]]:
    try:
        pkg = importlib.import_module(PACKAGE)
    except Exception as e:  # the package's own __init__ may be broken
        return False, f"{type(e).__name__}: {e}"
    return getattr(pkg, "__distribution_version__", None) is not None, None


def _core() -> Tuple[Optional[str], Optional[str]]:
    try:
        core = importlib.import_module(f"{PACKAGE}._core")
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"
    version = getattr(core, "__version__", None)
    return (version if isinstance(version, str) else "?"), None


def _other_copies(package_dir: Path) -> List[str]:
    out = []
    for entry in sys.path:
        candidate = Path(entry or os.getcwd(), PACKAGE)
        try:
            same = candidate.resolve() == package_dir.resolve()
            if candidate.is_dir() and not same and str(candidate) not in out:
                out.append(str(candidate))
        except OSError:
            continue
    return out


def diagnose(
    package_dir: Optional[Path] = None, search_path: Optional[List[str]] = None
) -> Diagnosis:
    """Inspect the install of the ``infinium`` package (default: this one),
    with the distributions found on ``search_path`` (default: ``sys.path``)."""
    pkg_dir = package_dir or Path(__file__).resolve().parent.parent
    dists = _all_distributions(search_path)
    by_name: Dict[str, List[Installed]] = {}
    for dist in dists:
        by_name.setdefault(_normalise(str(dist.metadata["Name"])), []).append(_installed(dist))
    running_ours, import_error = _running_ours()
    core_version, core_error = _core()
    d = Diagnosis(
        python=sys.executable,
        package_dir=str(pkg_dir),
        running_ours=running_ours,
        core_version=core_version,
        core_error=core_error,
        ours=by_name.get(OUR_DISTRIBUTION, []),
        anchors=by_name.get(ANCHOR_DISTRIBUTION, []),
        dependents=_dependents(dists),
        files=file_statuses(pkg_dir, dists),
        other_copies=_other_copies(pkg_dir),
    )
    _judge(d, import_error)
    return d


def _judge(d: Diagnosis, import_error: Optional[str]) -> None:
    site_dir = os.path.normpath(str(Path(d.package_dir).parent))
    init = next((f for f in d.files if f.path == f"{PACKAGE}/__init__.py"), None)
    if import_error is not None:
        d.problems.append(f"`import {PACKAGE}` fails: {import_error}")
    elif not d.running_ours and (init is None or not init.on_disk):
        d.problems.append(
            f"`import {PACKAGE}` finds no {PACKAGE}/__init__.py: the package is broken"
        )
    elif not d.running_ours:
        who = init.owner if init is not None and init.owner else "another package"
        d.problems.append(
            f"`import {PACKAGE}` runs {who}'s code, not {OUR_DISTRIBUTION}'s "
            f"({PACKAGE}/__init__.py was replaced)"
        )
    if d.core_error is not None:
        d.problems.append(f"the Rust core ({PACKAGE}._core) does not import: {d.core_error}")

    ours_here = [o for o in d.ours if o.site_dir == site_dir]
    if not d.ours:
        d.notes.append(
            f"{OUR_DISTRIBUTION} is not installed as a distribution: running from {d.package_dir}"
        )
    for o in ours_here:
        if o.editable:
            d.notes.append(f"{OUR_DISTRIBUTION} is an editable install of {o.source}")
            continue
        mine = [f for f in d.files if any(c.distribution == o.name for c in f.claims)]
        missing = [f.path for f in mine if not f.on_disk]
        replaced: Dict[str, List[str]] = {}
        for f in mine:
            if f.on_disk and f.owner != o.name:
                replaced.setdefault(f.owner or "an unknown source", []).append(f.path)
        if missing:
            d.problems.append(
                f"{len(missing)} file(s) of {OUR_DISTRIBUTION} are missing "
                f"(deleted by uninstalling a package that shared them?): {_names(missing)}"
            )
        for who, paths in sorted(replaced.items()):
            d.problems.append(
                f"{len(paths)} file(s) of {OUR_DISTRIBUTION} hold {who}'s copy: {_names(paths)}"
            )

    stand_in = False
    for a in d.anchors:
        if a.site_dir != site_dir:
            d.notes.append(
                f"{a.name} {a.version} is installed in {a.site_dir}, which holds no file of "
                f"this `{PACKAGE}`: harmless while {d.package_dir} comes first on sys.path"
            )
            continue
        claimed = [f for f in d.files if any(c.distribution == a.name for c in f.claims)]
        if not claimed:
            stand_in = True
            d.notes.append(
                f"{a.name} {a.version} installs no file of `{PACKAGE}` (a stand-in, as in the "
                f"README's Poetry recipe): it only satisfies requirements on {ANCHOR_DISTRIBUTION}"
            )
            continue
        shared = [f.path for f in claimed if any(c.distribution != a.name for c in f.claims)]
        d.problems.append(
            f"{a.name} {a.version} is installed in the same directory"
            + (f" and shares {len(shared)} file(s) with {OUR_DISTRIBUTION}" if shared else "")
            + ": installing or uninstalling either one replaces or deletes the other's files"
        )
    for copy in d.other_copies:
        d.notes.append(f"another `{PACKAGE}` package directory is on sys.path: {copy}")

    met = (
        f"met by the stand-in {ANCHOR_DISTRIBUTION}"
        if stand_in
        else f"`pip check` reports {ANCHOR_DISTRIBUTION} as missing; that is expected"
    )
    for dep in d.dependents:
        d.notes.append(
            f"{dep.name} {dep.version} requires {dep.requirement}: {OUR_DISTRIBUTION} "
            f"provides the API of {ANCHOR_DISTRIBUTION} {ANCHOR_API_VERSION}; install it "
            f"without {ANCHOR_DISTRIBUTION} as the {README_SECTION} shows ({met})"
        )
    if d.problems:
        _prescribe(d, ours_here)


def _names(paths: List[str], limit: int = 8) -> str:
    short = [p.split("/", 1)[-1] for p in paths]
    return ", ".join(short[:limit]) + (
        f" and {len(short) - limit} more" if len(short) > limit else ""
    )


def _prescribe(d: Diagnosis, ours_here: List[Installed]) -> None:
    installer = next((o.installer for o in ours_here if o.installer), "pip")
    uninstall, install, reinstall = _installer_cmd(installer, d.python)
    site_dir = os.path.normpath(str(Path(d.package_dir).parent))
    if any(
        a.site_dir == site_dir and any(c.distribution == a.name for f in d.files for c in f.claims)
        for a in d.anchors
    ):
        d.fix.append(" ".join([*uninstall, ANCHOR_DISTRIBUTION]))
    for o in ours_here:
        if o.editable:
            continue
        target = _reinstall_target(o)
        if target is None:
            d.fix.append(
                f"# reinstall {OUR_DISTRIBUTION} from the wheel or checkout it came from "
                f"({o.source} is gone): " + " ".join([*install, reinstall, "--no-deps", "<it>"])
            )
        else:
            d.fix.append(" ".join([*install, reinstall, "--no-deps", target]))
    if not ours_here and not d.ours:
        d.fix.append(
            f"# install {OUR_DISTRIBUTION} (from its wheel, or `pip install .` in a checkout)"
        )
    if d.dependents:
        names = ", ".join(dep.name for dep in d.dependents)
        d.fix.append(
            f"# then keep {ANCHOR_DISTRIBUTION} out when installing {names}: {README_SECTION}"
        )


# -- output ----------------------------------------------------------------------


def _describe(i: Installed) -> str:
    how = f", by {i.installer}" if i.installer else ""
    src = f" from {i.source}" if i.source else ""
    kind = " (editable)" if i.editable else ""
    return f"{i.name} {i.version}{kind}{how}{src}, in {i.site_dir}"


def render(d: Diagnosis) -> str:
    """The human-readable report."""
    lines = [f"infinium doctor: Python {sys.version.split()[0]} at {d.python}", ""]
    running = f"{OUR_DISTRIBUTION}'s" if d.running_ours else "NOT " + OUR_DISTRIBUTION + "'s"
    lines.append(f"  import {PACKAGE}:  {d.package_dir} ({running} code)")
    core = d.core_version if d.core_error is None else f"does not import ({d.core_error})"
    lines.append(f"  {PACKAGE}._core:  {core}")
    for i in d.ours:
        lines.append(f"  installed:       {_describe(i)}")
    for i in d.anchors:
        lines.append(f"  installed:       {_describe(i)}")
    for dep in d.dependents:
        lines.append(
            f"  requires {ANCHOR_DISTRIBUTION}: {dep.name} {dep.version} ({dep.requirement})"
        )
    counts: Dict[str, List[int]] = {}
    for f in d.files:
        for c in f.claims:
            total_ok = counts.setdefault(c.distribution, [0, 0])
            total_ok[0] += 1
            total_ok[1] += int(c.matches)
    if counts:
        lines += ["", f"  files of {d.package_dir}:"]
        for name, (total, ok) in sorted(counts.items()):
            lines.append(f"    {name}: {total} listed in its RECORD, {ok} as installed")
        unowned = [f.path for f in d.files if f.on_disk and not f.claims]
        if unowned:
            lines.append(f"    listed by no RECORD: {_names(unowned)}")
    if d.problems:
        lines += ["", "Problems:"] + [f"  - {p}" for p in d.problems]
    if d.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in d.notes]
    if d.fix:
        lines += ["", "Fix (run in this order):"] + [f"  {c}" for c in d.fix]
    lines += ["", "OK: `import infinium` is infinium-rs." if d.ok else "Not OK."]
    return "\n".join(lines)


def version_text() -> str:
    """What ``infinium --version`` prints."""
    core, error = _core()
    running_ours, _ = _running_ours()
    head = f"{OUR_DISTRIBUTION} {core or '(Rust core missing)'}"
    text = (
        f"{head} (import name `{PACKAGE}`, the API of {ANCHOR_DISTRIBUTION} "
        f"{ANCHOR_API_VERSION}) on Python {sys.version.split()[0]}"
    )
    if error is not None or not running_ours:
        text += (
            f"\nwarning: `import {PACKAGE}` is not {OUR_DISTRIBUTION} here; run `infinium doctor`"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``doctor`` subcommand's options."""
    parser.add_argument("--json", action="store_true", help="print the diagnosis as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the diagnosis; exit status 1 when something needs fixing."""
    d = diagnose()
    if args.json:
        print(json.dumps(d.to_json(), indent=2))
    else:
        print(render(d))
    return 0 if d.ok else 1
