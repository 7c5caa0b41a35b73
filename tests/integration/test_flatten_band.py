"""An exit never dumps through the price band (freqtrade#12598: after a -1013/PERCENT_PRICE
rejection it sold at market). A book whose best bid lies outside PERCENT_PRICE makes Binance
answer -4131 to a market order; perpbot's exit shrinks and re-prices inside the band, keeps
its pace, and closes as soon as a bid inside the band appears. The simulator's own fills are
the truth: no fill of the bot below mark x multiplierDown.
"""

from __future__ import annotations

import json
from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from perpbot.sim.config import SymbolConfig
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    orders_of,
    position_of,
    quiet_market,
    sim_env,
)

BTC, BTC_ID = "BTC/USDT:USDT", "BTCUSDT"
PRICE = 60_000.0
# the crowd quotes 4,000 USDT either side of the mid: its best bid and ask both lie outside
# the 5% PERCENT_PRICE band around mark, as after a cascade emptied the book near the price
WIDE = SymbolConfig(symbol=BTC_ID, base_asset="BTC", price=PRICE, crowd_spread_ticks=80_000)


def _client(sim: Any, creds: tuple[str, str]) -> Any:
    ex = ccxt.binanceusdm({"apiKey": creds[0], "secret": creds[1], "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    ex.load_markets()
    return ex


@pytest.fixture
def long_in_a_gapped_book(sim_factory: Any) -> tuple[Any, tuple[str, str], Any]:
    """The bot's account holds +0.01 BTC, bought from another account inside the band."""
    sim = sim_factory(market=quiet_market(), symbols=[WIDE])
    bot, other = sim.create_account(), sim.create_account()
    seller = _client(sim, other)
    seller.create_order(BTC, "limit", "sell", 0.01, PRICE)
    _client(sim, bot).create_order(BTC, "limit", "buy", 0.01, PRICE)
    assert position_of(sim.state(), bot[0], BTC_ID) == 0.01
    return sim, bot, seller


def test_the_simulator_answers_4131_to_a_market_order_into_a_gapped_book(
    long_in_a_gapped_book: tuple[Any, tuple[str, str], Any],
) -> None:
    """Binance error codes (derivatives-trading/usds-margined-futures/error-code): -4131
    "The counterparty's best price does not meet the PERCENT_PRICE filter limit"."""
    sim, bot, _ = long_in_a_gapped_book
    with pytest.raises(ccxt.ExchangeError, match="-4131"):
        _client(sim, bot).create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})
    assert position_of(sim.state(), bot[0], BTC_ID) == 0.01


def test_flatten_at_market_never_fills_outside_the_band_and_closes_when_a_bid_returns(
    long_in_a_gapped_book: tuple[Any, tuple[str, str], Any],
) -> None:
    sim, bot, seller = long_in_a_gapped_book
    before = {o["orderId"] for o in orders_of(sim.state(), bot[0])}

    stuck = run_cli(
        "flatten", "--url", sim.base_url, "--policy", "market", "--symbol", BTC,
        "--timeout", "4", "--json", env=sim_env(bot),
    )  # fmt: skip
    assert stuck.returncode == 1, stuck.stderr
    assert "Traceback" not in stuck.stderr
    assert position_of(sim.state(), bot[0], BTC_ID) == 0.01  # nothing dumped
    tried = [o for o in orders_of(sim.state(), bot[0]) if o["orderId"] not in before]
    assert all(float(o["executedQty"]) == 0 for o in tried)
    assert len(tried) <= 40, f"{len(tried)} orders in 4 s: the exit must keep its pace"

    seller.create_order(BTC, "limit", "buy", 0.01, PRICE - 100)  # a bid inside the band
    done = run_cli(
        "flatten", "--url", sim.base_url, "--policy", "market", "--symbol", BTC,
        "--timeout", "30", "--json", env=sim_env(bot),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["closed"][0]["to"] == 0.0
    state = sim.state()
    assert position_of(state, bot[0], BTC_ID) == 0.0
    sells = [t for t in state["trades"] if t["account"] == bot[0] and t["side"] == "SELL"]
    assert sells and all(float(t["price"]) >= PRICE * 0.95 for t in sells)
    assert sum(float(t["qty"]) for t in sells) == pytest.approx(0.01)
