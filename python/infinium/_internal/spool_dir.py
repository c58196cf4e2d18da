"""Where background export keeps its spool by default (standard library
only: the command line shows it in its help even when the package is
broken)."""

from __future__ import annotations

import os


def default_spool_root() -> str:
    """The per-user spool directory: ``$XDG_CACHE_HOME/infinium/spool``
    (when that is an absolute path), else ``~/.cache/infinium/spool``."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "infinium", "spool")
