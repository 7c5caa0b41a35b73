"""`perpbot --help` must not import ccxt, apprise or prometheus-client (start-up speed)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import sys
from perpbot.cli.entry import main
try:
    main(["--help"])
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"ccxt", "apprise", "prometheus_client"})
print("HEAVY", heavy)
"""


def test_help_lists_ops_commands_without_heavy_imports() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=str(ROOT), timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    for command in ("alerts", "doctor", "metrics", "runs"):
        assert command in out.stdout
