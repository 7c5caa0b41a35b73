"""`perpbot run` as a user meets it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

BAD_CASES = [
    ("tick_interval = 1.0", "tick_interval = -5", "[strategy] tick_interval: got -5"),
    ('id = "sim"', 'id = "sim"\nfoo = 1', "[exchange] foo: unknown key"),
    ("levels = 3 ", "levels = -3 ", "[strategy.params] levels: got -3"),
    (
        'symbols = ["BTC/USDT:USDT"]',
        'symbols = ["NOPE/USDT:USDT"]',
        "[strategy] symbols[0]: got 'NOPE/USDT:USDT', expected a symbol",
    ),
    ("[strategy]", "[strategy", "invalid TOML"),
]


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "strategies" / "grid.toml").read_text()
    assert old in text
    (tmp_path / "grid.py").write_text((ROOT / "strategies" / "grid.py").read_text())
    path = tmp_path / "grid.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(("old", "new", "expected"), BAD_CASES)
def test_bad_strategy_file_is_one_line_exit_2(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = _variant(tmp_path, old, new)
    result = run_cli("run", str(path), "--duration", "5")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def test_missing_file_and_bad_duration_exit_2(tmp_path: Path) -> None:
    r = run_cli("run", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "file not found" in r.stderr
    r = run_cli("run", str(ROOT / "strategies" / "grid.toml"), "--duration", "-1")
    assert r.returncode == 2 and "--duration" in r.stderr
    r = run_cli("run")
    assert r.returncode == 2


def test_help_and_version_do_not_import_heavy_modules() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from perpbot.cli.app import app\n"
        "from perpbot.cli.errors import run_app\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = run_app(app, ['--help'])\n"
        "heavy = [m for m in ('ccxt', 'aiohttp', 'rich', 'pydantic') if m in sys.modules]\n"
        "print(rc, heavy)\n"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 []", out.stdout + out.stderr
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("perpbot ")


def test_both_example_strategies_place_and_fill_in_paper_mode(state_home: Path) -> None:
    """The README's main job: each example strategy places and fills orders on the
    embedded simulator within 25 s (both run at once, as separate processes)."""
    import os
    import subprocess

    env = dict(os.environ)
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "perpbot",
                "run",
                str(ROOT / "strategies" / f"{name}.toml"),
                "--duration",
                "25",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        for name in ("grid", "funding_trend")
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name}: {err}"
        summary = json.loads(out)
        assert summary["end_reason"] == "duration"
        assert summary["orders"]["placed"] > 0, name
        assert summary["fills"] > 0, name
        assert summary["orders"]["open"] == 0, name  # cancelled at stop
        run_dir = Path(summary["run_dir"])
        assert run_dir.parent.parent == state_home
        assert (run_dir / "summary.json").exists()
        fills = (run_dir / "fills.jsonl").read_text().splitlines()
        assert len(fills) == summary["fills"]
