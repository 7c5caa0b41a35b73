"""The campaign's grant invariant sees what reaches the exchange outside the grant.

Requests sent straight to a simulator with ccxt (no perpbot pipeline, so no ScopeGate): a
leverage change, an order on a symbol the grant does not list and one over its notional cap.
``outside_grant`` must name each from the simulator's own record; what the grant allows
(an order within the cap on the granted symbol, a reduce-only order) it must not name.
"""

from __future__ import annotations

from typing import Any

import ccxt

from bench.support.chaos_grant import GRANT_SYMBOL, MAX_NOTIONAL, OUTSIDE_SYMBOL, outside_grant
from perpbot.client.loopback import configure_loopback
from tests.integration.kill_strategies.support import quiet_market


def test_the_grant_check_names_every_request_outside_the_grant(sim_factory: Any) -> None:
    sim = sim_factory(market=quiet_market())
    key, secret = sim.create_account()
    ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    ex.load_markets()
    btc = float(ex.fetch_funding_rate(GRANT_SYMBOL)["markPrice"])
    eth = float(ex.fetch_funding_rate(OUTSIDE_SYMBOL)["markPrice"])
    within = round(MAX_NOTIONAL / 2 / btc, 3)
    ex.create_order(GRANT_SYMBOL, "limit", "buy", within, round(btc * 0.97, 1))
    assert outside_grant(sim.state(), key) == []  # what the grant allows is not named
    ex.set_leverage(7, GRANT_SYMBOL)
    ex.create_order(OUTSIDE_SYMBOL, "limit", "buy", 0.02, round(eth * 0.97, 2))
    over = round(MAX_NOTIONAL * 3 / btc, 3)
    ex.create_order(GRANT_SYMBOL, "limit", "buy", over, round(btc * 0.97, 1))
    found = outside_grant(sim.state(), key)
    assert len(found) == 3, found
    assert found[0] == "1 request(s) to /fapi/v1/leverage reached the exchange"
    assert "on ETHUSDT, outside the grant's symbols" in found[1]
    assert f"over {MAX_NOTIONAL:g}" in found[2]
