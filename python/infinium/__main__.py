"""``python -m infinium``: the ``infinium`` command (serve, demo, replay, doctor)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
