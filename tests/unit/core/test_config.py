"""strategy.toml validation: every problem is one line naming file, key, value, expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpbot.config import dump_strategy, load_strategy
from perpbot.errors import BadInput

ROOT = Path(__file__).resolve().parents[3]

GOOD = """
[strategy]
name = "t"
file = "s.py"
symbols = ["BTC/USDT:USDT"]
tick_interval = 0.5
[exchange]
id = "sim"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "s.py").write_text("from perpbot.engine import Strategy\nclass S(Strategy): pass\n")
    p = tmp_path / "strategy.toml"
    p.write_text(text)
    return p


def test_good_file_loads(tmp_path: Path) -> None:
    loaded = load_strategy(write(tmp_path, GOOD))
    assert loaded.config.strategy.tick_interval == 0.5
    assert loaded.config.exchange.id == "sim"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("tick_interval = 0.5", "tick_interval = -1"),
            "[strategy] tick_interval: got -1, expected: input should be greater than 0",
        ),
        (GOOD.replace('id = "sim"', 'id = "sim"\nspeed = 3'), "[exchange] speed: unknown key"),
        (GOOD.replace('symbols = ["BTC/USDT:USDT"]', ""), "[strategy] symbols: missing"),
        (
            GOOD.replace("tick_interval = 0.5", 'tick_interval = "fast"'),
            "[strategy] tick_interval: got 'fast', expected",
        ),
        (GOOD + "\n[risk]\nmax_leverage = 0\n", "[risk] max_leverage: got 0"),
        (
            GOOD.replace('file = "s.py"', 'file = "missing.py"'),
            "[strategy] file: got 'missing.py', expected an existing .py file",
        ),
        ("[strategy\nname=1", "invalid TOML"),
        (GOOD.replace('id = "sim"', 'id = "binanceusdm"'), "[exchange] profile: missing"),
    ],
)
def test_bad_files_are_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BadInput) as info:
        load_strategy(path)
    message = info.value.message
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="file not found"):
        load_strategy(tmp_path / "nope.toml")


@pytest.mark.parametrize("name", ["grid.toml", "funding_trend.toml"])
def test_examples_round_trip_through_tomli_w(tmp_path: Path, name: str) -> None:
    loaded = load_strategy(ROOT / "strategies" / name)
    text = dump_strategy(loaded.config)
    copy = tmp_path / name
    copy.write_text(text)
    (tmp_path / loaded.config.strategy.file).write_text(
        (ROOT / "strategies" / loaded.config.strategy.file).read_text()
    )
    again = load_strategy(copy)
    assert again.config == loaded.config
