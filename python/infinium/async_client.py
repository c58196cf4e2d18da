"""``infinium.async_client``: where the anchor SDK defines ``AsyncInfiniumClient``.

Both clients live in :mod:`infinium.client`; this module gives code written
for the anchor its import path, with the other names the anchor's module
offers (it imported them): the same list as :mod:`infinium.client`.
"""

from __future__ import annotations

from .client import *  # noqa: F403
from .client import __all__ as __all__
