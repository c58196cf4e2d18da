"""``infinium doctor``'s reading of RECORD files and the import-time check, on
a site directory laid out here by hand (the same layout pip writes; the real
installs are in test_coexistence.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import warnings
from importlib import metadata
from pathlib import Path
from typing import Dict

import pytest

from infinium._internal import coexist, doctor


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _install(
    site: Path, dist: str, version: str, files: Dict[str, bytes], write: bool = True
) -> None:
    """What an installer leaves: the files, and a dist-info whose RECORD lists them."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    rows = []
    for rel, data in files.items():
        if write:
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_bytes(data)
        rows.append(f"{rel},{_hash(data)},{len(data)}")
    rows.append(f"{rel.split('/')[0]}/__pycache__/x.cpython-311.pyc,,")  # listed without a hash
    rows.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(rows) + "\n")


OURS = {"infinium/__init__.py": b"# ours\n", "infinium/cli.py": b"# our cli\n"}
ANCHORS = {"infinium/__init__.py": b"# the anchor's\n"}


def test_owner_of_each_file_is_whose_hash_matches(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _install(site, "infinium-rs", "0.1.0", OURS)
    _install(site, "infinium-o2", "1.2.0", ANCHORS)  # written last: its __init__ wins
    (site / "infinium" / "stray.py").write_text("")
    statuses = {
        s.path: s
        for s in doctor.file_statuses(site / "infinium", metadata.distributions(path=[str(site)]))
    }
    assert sorted(statuses) == ["infinium/__init__.py", "infinium/cli.py", "infinium/stray.py"]
    init = statuses["infinium/__init__.py"]
    assert init.owner == "infinium-o2"
    assert sorted((c.distribution, c.matches) for c in init.claims) == [
        ("infinium-o2", True),
        ("infinium-rs", False),
    ]
    assert statuses["infinium/cli.py"].owner == "infinium-rs"
    assert statuses["infinium/stray.py"].claims == () and statuses["infinium/stray.py"].on_disk


def test_a_file_listed_but_deleted_is_reported_missing(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _install(site, "infinium-rs", "0.1.0", OURS)
    (site / "infinium" / "__init__.py").unlink()  # uninstalling infinium-o2 does this
    (status,) = [
        s
        for s in doctor.file_statuses(site / "infinium", metadata.distributions(path=[str(site)]))
        if s.path == "infinium/__init__.py"
    ]
    assert not status.on_disk and status.owner is None
    assert [c.matches for c in status.claims] == [False]


def test_dependents_and_the_anchor_are_found_by_normalised_name(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    info = site / "connector-1.4.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: Connector\nVersion: 1.4.0\n"
        "Requires-Dist: Infinium_O2<2.0.0,>=1.0.0\n"
        "Requires-Dist: infinium-o2-tools; extra == 'dev'\n"
        "Requires-Dist: infinium-o2>=1.1; extra == 'dev'\n"
    )
    deps = doctor._dependents(metadata.distributions(path=[str(site)]))
    assert [(d.name, d.requirement) for d in deps] == [("Connector", "Infinium_O2<2.0.0,>=1.0.0")]


def test_import_check_finds_the_anchors_dist_info_beside_the_package(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _install(site, "infinium-rs", "0.1.0", OURS)
    init = str(site / "infinium" / "__init__.py")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert coexist.anchor_dist_info_beside(init) is None
        coexist.warn_if_anchor_beside(init)  # silent
    _install(site, "infinium-o2", "1.2.0", ANCHORS, write=False)
    assert coexist.anchor_dist_info_beside(init) == str(site / "infinium_o2-1.2.0.dist-info")
    with pytest.warns(coexist.InstallConflictWarning) as caught:
        coexist.warn_if_anchor_beside(init)
    (w,) = caught
    message = str(w.message)
    assert message.startswith("infinium-o2 is installed beside infinium-rs (infinium_o2-1.2.0")
    assert "pip uninstall -y infinium-o2" in message and "infinium doctor" in message
    assert issubclass(coexist.InstallConflictWarning, UserWarning)  # shown by default


def test_import_check_survives_an_unlistable_directory(tmp_path: Path) -> None:
    assert (
        coexist.anchor_dist_info_beside(str(tmp_path / "gone" / "infinium" / "__init__.py")) is None
    )


def test_fix_reinstalls_ours_from_where_it_came_from(tmp_path: Path) -> None:
    wheel = tmp_path / "infinium_rs-0.1.0-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"")
    ours = doctor.Installed("infinium-rs", "0.1.0", str(tmp_path), "pip", str(wheel), False)
    assert doctor._reinstall_target(ours) == str(wheel)
    from_index = doctor.Installed("infinium-rs", "0.1.0", str(tmp_path), "pip", None, False)
    assert doctor._reinstall_target(from_index) == "infinium-rs==0.1.0"
    gone = doctor.Installed("infinium-rs", "0.1.0", str(tmp_path), "pip", "/nowhere/x.whl", False)
    assert doctor._reinstall_target(gone) is None
    uninstall, install, flag = doctor._installer_cmd("uv", "/v/bin/python")
    assert install[:3] == ["uv", "pip", "install"]
    assert uninstall[:3] == ["uv", "pip", "uninstall"] and flag == "--reinstall"


def test_a_stand_in_infinium_o2_that_installs_no_file_is_not_a_conflict(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _install(site, "infinium-rs", "0.1.0", OURS)
    _install(site, "infinium-o2", "1.2.0", {"infinium_o2_stand_in.txt": b""})
    init = str(site / "infinium" / "__init__.py")
    assert coexist.anchor_dist_info_beside(init) is None
    d = doctor.diagnose(site / "infinium", search_path=[str(site)])
    assert d.ok, d.problems
    assert any("installs no file of `infinium` (a stand-in" in n for n in d.notes)


def test_diagnosis_of_an_anchor_over_ours_prescribes_the_fix(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    wheel = tmp_path / "infinium_rs-0.1.0-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"")
    _install(site, "infinium-rs", "0.1.0", OURS)
    (site / "infinium_rs-0.1.0.dist-info" / "direct_url.json").write_text(
        json.dumps({"url": wheel.as_uri(), "archive_info": {}})
    )
    _install(site, "infinium-o2", "1.2.0", ANCHORS)
    d = doctor.diagnose(site / "infinium", search_path=[str(site)])
    assert not d.ok
    assert "1 file(s) of infinium-rs hold infinium-o2's copy: __init__.py" in d.problems
    assert d.fix[0].endswith("-m pip uninstall -y infinium-o2")
    assert d.fix[1].endswith(f"-m pip install --force-reinstall --no-deps {wheel}")
    text = doctor.render(d)
    assert "Fix (run in this order):" in text and text.endswith("Not OK.")
