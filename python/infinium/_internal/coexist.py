"""The import-time check for ``infinium-o2`` installed beside this package.

``infinium-o2`` (the pure-Python SDK this package replaces) and ``infinium-rs``
both install the ``infinium`` package. In one directory, whichever was
installed last owns the shared files, and uninstalling either one later
deletes files the other needs. :func:`warn_if_anchor_beside` runs on every
``import infinium``, so it costs one directory listing and nothing more; the
full diagnosis (RECORD files, hashes, the fix) is ``infinium doctor``.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

#: The distribution this package stands in for, and ours.
ANCHOR_DISTRIBUTION = "infinium-o2"
OUR_DISTRIBUTION = "infinium-rs"

# Installers name a wheel's metadata directory ``{normalised name}-{version}.dist-info``.
_ANCHOR_DIST_INFO_PREFIX = "infinium_o2-"


class InstallConflictWarning(UserWarning):
    """``infinium-o2`` is installed in the directory that holds this ``infinium``.

    Both distributions write the ``infinium`` package: the next install or
    uninstall of either one silently replaces or deletes the other's files.
    ``infinium doctor`` says what to run; ``-W "ignore:infinium-o2 is installed"``
    silences it.
    """


def anchor_dist_info_beside(package_file: str) -> Optional[str]:
    """The ``infinium_o2-*.dist-info`` directory next to the ``infinium``
    package that holds ``package_file`` (its ``__init__.py``), or None.

    A stand-in ``infinium-o2`` whose RECORD lists no file of the package (the
    README's Poetry recipe) does not count: it shares nothing with us. Its
    RECORD is read only when such a directory exists."""
    site_dir = os.path.dirname(os.path.dirname(os.path.abspath(package_file)))
    try:
        names = os.listdir(site_dir)
    except OSError:
        return None
    # Wheels name it in lower case (``infinium_o2-1.2.0.dist-info``); a plain
    # prefix test keeps this loop at a fraction of the listing's own cost.
    for name in names:
        if name.startswith(_ANCHOR_DIST_INFO_PREFIX) and name.endswith(".dist-info"):
            found = os.path.join(site_dir, name)
            if _records_package_files(found, os.path.basename(os.path.dirname(package_file))):
                return found
    return None


def _records_package_files(dist_info: str, package: str) -> bool:
    """Whether the RECORD in ``dist_info`` lists a file of ``package`` (True
    when it cannot be read: then assume the worst)."""
    try:
        with open(os.path.join(dist_info, "RECORD"), encoding="utf-8") as f:
            return any(line.startswith(package + "/") for line in f)
    except (OSError, ValueError):
        return True


def warn_if_anchor_beside(package_file: str) -> None:
    """Warn (:class:`InstallConflictWarning`) when ``infinium-o2`` is installed
    beside this package; called once, when ``infinium`` is imported.

    A warning rather than a log record: logging is rarely configured in the
    scripts and CLI hooks that hit this, a warning is printed by default (once),
    shows in pytest's summary, and can be filtered or made an error by category.
    """
    found = anchor_dist_info_beside(package_file)
    if found is None:
        return
    warnings.warn(
        InstallConflictWarning(
            f"{ANCHOR_DISTRIBUTION} is installed beside {OUR_DISTRIBUTION} "
            f"({os.path.basename(found)} in {os.path.dirname(found)}): both write the "
            f"`infinium` package, so installing, upgrading or uninstalling either one "
            f"replaces or deletes the other's files. Fix: `pip uninstall -y "
            f"{ANCHOR_DISTRIBUTION}`, then reinstall {OUR_DISTRIBUTION} with "
            f"`pip install --force-reinstall --no-deps`; `infinium doctor` checks the "
            f"install and prints the exact commands."
        ),
        stacklevel=2,
    )
