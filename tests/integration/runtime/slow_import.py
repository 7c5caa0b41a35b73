"""A strategy file whose top-level code never finishes (``PERPBOT_TEST_LOAD``: ``sleep``
blocks, ``spin`` burns CPU): the engine must not wait for it forever."""

from __future__ import annotations

import os
import time

from perpbot.engine import Strategy

if os.environ.get("PERPBOT_TEST_LOAD", "sleep") == "spin":
    while True:
        pass
time.sleep(3600)


class NeverLoaded(Strategy):
    pass
