"""Strategy errors as a user meets them: on_start failing stops the run; errors name the
strategy file and line; the strategy's own frames go to the run folder and, with -v, stderr."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

STRATEGY = """\
from perpbot.engine import Strategy


def helper(ctx):
    raise ValueError("bad {where}")


class Boom(Strategy):
    def on_start(self, ctx):
        if "{where}" == "on_start":
            helper(ctx)

    def on_tick(self, ctx):
        if "{where}" == "on_tick":
            helper(ctx)
        else:
            ctx.market_order(ctx.symbols[0], "buy", 0.01)
"""


def _write(tmp_path: Path, where: str) -> Path:
    (tmp_path / "boom.py").write_text(STRATEGY.replace("{where}", where))
    toml = tmp_path / "boom.toml"
    toml.write_text(
        '[strategy]\nname = "boom"\nfile = "boom.py"\nsymbols = ["BTC/USDT:USDT"]\n'
        'tick_interval = 0.2\n[exchange]\nid = "sim"\n'
    )
    return toml


def test_an_error_in_on_start_stops_the_run_before_any_trade(tmp_path: Path) -> None:
    result = run_cli("run", str(_write(tmp_path, "on_start")), "--duration", "5", "--json")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["orders"].get("placed", 0) == 0 and summary["fills"] == 0
    assert summary["runtime_s"] < 5
    line = f"{tmp_path / 'boom.py'}:5 in helper: ValueError: bad on_start"
    assert line in summary["error"] and line in result.stderr
    assert "Traceback" not in result.stderr


def test_an_on_tick_error_names_file_and_line_and_keeps_the_strategy_frames(
    tmp_path: Path,
) -> None:
    result = run_cli(
        "run",
        str(_write(tmp_path, "on_tick")),
        "--duration",
        "1.5",
        "--json",
        env={"PERPBOT_VERBOSE": "1"},
    )
    summary = json.loads(result.stdout)
    assert f"{tmp_path / 'boom.py'}:5 in helper: ValueError: bad on_tick" in result.stderr
    # -v: the strategy's own frames, not the engine's
    assert f'File "{tmp_path / "boom.py"}", line 15, in on_tick' in result.stderr
    assert "perpbot/app/lifecycle.py" not in result.stderr
    records = [
        json.loads(line)
        for line in (Path(summary["run_dir"]) / "strategy_errors.jsonl").read_text().splitlines()
    ]
    assert records and records[0]["callback"] == "on_tick"
    assert "line 5, in helper" in records[0]["traceback"]
    assert "ValueError: bad on_tick" in records[0]["traceback"]
