"""The shipped systemd units: valid, and their restart policy matches perpbot's exit codes.

The exit codes are produced by real `perpbot run` subprocesses (a standing kill switch, a
bad strategy file); the unit file is parsed, and `systemd-analyze verify` checks it where
systemd is installed.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

DEPLOY = ROOT / "deploy"


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(DEPLOY / name)
    return cp


def _restart_prevented() -> set[int]:
    svc = _unit("perpbot@.service")["Service"]
    return {int(x) for x in svc["RestartPreventExitStatus"].split()}


def test_the_unit_never_restarts_a_refused_or_killed_bot(tmp_path: Path) -> None:
    svc = _unit("perpbot@.service")["Service"]
    assert svc["Restart"] == "on-failure" and svc["LimitCORE"] == "0" and svc["UMask"] == "0077"
    assert svc["StandardOutput"] == "journal" and "PERPBOT_HOME=%S/perpbot" in svc["Environment"]
    assert "run %E/perpbot/%i.toml" in svc["ExecStart"]

    killed = run_cli("kill", "--reason", "unit test")
    assert killed.returncode == 0, killed.stderr
    refused = run_cli("run", str(ROOT / "strategies" / "grid.toml"), "--duration", "3")
    assert refused.returncode == 4 and refused.returncode in _restart_prevented()
    run_cli("kill", "--clear", "--yes")

    bad = tmp_path / "bad.toml"
    bad.write_text('[strategy]\nname = "x"\n')
    bad_input = run_cli("run", str(bad))
    assert bad_input.returncode == 2 and bad_input.returncode in _restart_prevented()
    assert 1 not in _restart_prevented() and 0 not in _restart_prevented()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    perpbot = Path(sys.executable).with_name("perpbot")
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    for name in ("perpbot@.service", "perpbot-alert@.service"):
        text = (DEPLOY / name).read_text().replace("%h/.local/bin/perpbot", str(perpbot))
        (units_dir / name.replace("@.", "@grid.")).write_text(text)
    for name in ("perpbot-prune.service", "perpbot-prune.timer"):
        text = (DEPLOY / name).read_text().replace("%h/.local/bin/perpbot", str(perpbot))
        (units_dir / name).write_text(text)
    units = [str(p) for p in sorted(units_dir.iterdir())]
    out = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (out.stdout + out.stderr).splitlines()
        if "perpbot" in line and "Failed to lookup RuntimeDirectory" not in line
    ]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
