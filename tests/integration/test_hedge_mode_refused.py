"""Hedge mode is refused: perpbot's engine keeps one net position per symbol.

``ctx.position(symbol)``, the reduce-only room the scope gate allows and the risk gate's
judgement all read a signed net amount. On a hedge-mode account (Binance
``dualSidePosition``, a LONG and a SHORT position per symbol) a SELL can close the LONG
side or open the SHORT one, which a net amount cannot tell apart, so:

- ``perpbot run`` refuses such an account at start, in one line, exit 1, before anything
  is armed or sent (the simulator's own order list is the truth);
- an order whose params carry ``positionSide`` is refused by the client before the
  scope and risk gates (it would override what they judge).

Binance: Change Position Mode / Get Current Position Mode,
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Change-Position-Mode
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.client.request import Request
from perpbot.client.validate import OrderRefused, wire_order
from perpbot.sim.ccxt_config import configure_loopback
from tests.conftest import run_cli
from tests.integration.risk_support.bot import quiet, write_toml


def _ccxt(sim: Any, key: str, secret: str) -> ccxt.binanceusdm:
    ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    return ex


def test_run_on_a_hedge_mode_account_is_refused_in_one_line(
    sim_factory: Any, tmp_path: Path
) -> None:
    sim = sim_factory(market=quiet())
    key, secret = sim.create_account()
    ex = _ccxt(sim, key, secret)
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    toml = write_toml(tmp_path, sim.base_url)
    env = {"PERPBOT_SIM_API_KEY": key, "PERPBOT_SIM_API_SECRET": secret}

    refused = run_cli("run", str(toml), "--duration", "3", env=env)
    assert refused.returncode == 1, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "hedge mode" in lines[0] and "one-way" in lines[0], lines
    assert "Traceback" not in refused.stderr and secret not in refused.stderr
    assert sim.state()["orders"] == []
    assert ex.fapiPrivateGetPositionSideDual() == {"dualSidePosition": True}  # left as it was


def test_an_order_naming_a_position_side_is_refused_before_the_gates() -> None:
    for side in ("LONG", "SHORT", "BOTH"):
        raw = Request(
            "create_order",
            ("BTC/USDT:USDT", "market", "sell", 0.1, None, {"positionSide": side}),
            command="run",
        )
        with pytest.raises(OrderRefused) as info:
            wire_order(raw)
        assert info.value.code == "BAD_PARAM"
        assert "position side (hedge mode)" in info.value.message
