"""[risk], [index] and [monitor] in strategy.toml: one-line errors, and the run preflight."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpbot.config import load_strategy
from perpbot.errors import BadInput
from perpbot.risk.plugin import needs_index, preflight

HEAD = """
[strategy]
name = "t"
file = "t.py"
symbols = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
"""


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "t.py").write_text("")
    p = tmp_path / "t.toml"
    p.write_text(HEAD + body)
    return p


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[risk]\nmax_leverage = -1\n", ["[risk] max_leverage", "got -1", "greater than 0"]),
        ("[risk]\nprice_band_pct = 1\nprice_band_bps = 50\n", ["price_band_pct or price_band_bps"]),
        ("[risk]\nmax_ordr_notional = 5\n", ["[risk] max_ordr_notional: unknown key"]),
        (
            '[risk.symbols."BTC/USDT:USDT"]\nmax_open_orders = 0\n',
            ["max_open_orders", "got 0"],
        ),
        ('[index]\non_unhealthy = "panic"\n', ["[index] on_unhealthy", "'panic'"]),
        ('[[index.sources]]\nexchange = "sim"\nurl = "ftp://x"\n', ["http:// or https://"]),
        ("[monitor.cancel_burst]\nfactor = 0.5\n", ["[monitor] cancel_burst.factor", "got 0.5"]),
        ("[monitor.thin_book]\nthin = 1\n", ["thin_book.thin: unknown key"]),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path: Path, body: str, words: list[str]) -> None:
    with pytest.raises(BadInput) as info:
        load_strategy(write(tmp_path, body))
    msg = info.value.message
    assert "\n" not in msg and str(tmp_path / "t.toml") in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            '[risk.symbols."BTCUSDT"]\nmax_open_orders = 3\n',
            ['[risk.symbols."BTCUSDT"]', "not one"],
        ),
        (
            '[[index.sources]]\nexchange = "sim"\nurl = "http://127.0.0.1:1"\n'
            'symbol = "SOL/USDT:USDT"\n',
            ["prices 'SOL/USDT:USDT'", "set for_symbol"],
        ),
        (
            '[[index.sources]]\nexchange = "sim"\nsymbol = "BTC/USDT:USDT"\n',
            ["a sim source needs a url"],
        ),
        (
            "[index]\nmin_sources = 2\n"
            '[[index.sources]]\nexchange = "self"\nsymbol = "BTC/USDT:USDT"\n'
            '[[index.sources]]\nexchange = "self"\nsymbol = "ETH/USDT:USDT"\n',
            ["min_sources: got 2", "has 1 source", "never be healthy"],
        ),
        (
            '[index]\non_unhealthy = "kill"\n[kill]\non_anomaly = false\n',
            ['on_unhealthy = "kill" needs [kill] on_anomaly = true'],
        ),
    ],
)
def test_preflight_refuses_what_can_never_work(tmp_path: Path, body: str, words: list[str]) -> None:
    loaded = load_strategy(write(tmp_path, body))
    with pytest.raises(BadInput) as info:
        preflight(loaded)
    for w in words:
        assert w in info.value.message, info.value.message


def test_a_good_basket_passes_preflight(tmp_path: Path) -> None:
    body = "".join(
        f'[[index.sources]]\nname = "{n}"\nexchange = "sim"\nurl = "http://127.0.0.1:{p}"\n'
        f'symbol = "{s}"\n'
        for n, p in (("a", 1), ("b", 2))
        for s in ("BTC/USDT:USDT", "ETH/USDT:USDT")
    )
    loaded = load_strategy(write(tmp_path, "[index]\nmin_sources = 2\n" + body))
    preflight(loaded)
    assert needs_index(loaded.config)


def test_index_runs_only_when_something_needs_it(tmp_path: Path) -> None:
    assert not needs_index(load_strategy(write(tmp_path, "")).config)
    assert needs_index(load_strategy(write(tmp_path, "[risk]\nprice_band_bps = 30\n")).config)
