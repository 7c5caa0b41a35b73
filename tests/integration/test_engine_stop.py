"""The stop path cancels this run's orders and leaves everyone else's alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, run_cli


def _strategy(tmp_path: Path, url: str) -> Path:
    text = (ROOT / "strategies" / "grid.toml").read_text()
    text = text.replace('id = "sim"', f'id = "sim"\nurl = "{url}"', 1)
    (tmp_path / "grid.py").write_text((ROOT / "strategies" / "grid.py").read_text())
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


async def test_stop_cancels_only_this_runs_orders(tmp_path: Path, sim: Any) -> None:
    import ccxt.async_support as ccxt_async

    from perpbot.sim.ccxt_config import configure_loopback

    key, secret = sim.create_account()
    ex = ccxt_async.binanceusdm(
        {
            "apiKey": key,
            "secret": secret,
            "enableRateLimit": False,
            "options": {"fetchCurrencies": False},
        }
    )
    configure_loopback(ex, sim.base_url)
    try:
        await ex.load_markets()
        foreign = await ex.create_order(
            "BTC/USDT:USDT",
            "limit",
            "buy",
            0.002,
            58000.0,  # inside PERCENT_PRICE (mark +- 5 %)
            {"clientOrderId": "someone-else-1"},
        )
    finally:
        await ex.close()
    result = run_cli(
        "run",
        str(_strategy(tmp_path, sim.base_url)),
        "--duration",
        "4",
        "--json",
        env={"PERPBOT_SIM_API_KEY": key, "PERPBOT_SIM_API_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["orders"]["placed"] > 0 and summary["orders"]["open"] == 0
    open_orders = [o for o in sim.state()["open_orders"] if o.get("clientOrderId")]
    assert [o["clientOrderId"] for o in open_orders] == [foreign["clientOrderId"]]
