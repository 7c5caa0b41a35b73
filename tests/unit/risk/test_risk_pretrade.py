"""Every pre-trade check, table-driven: (order, what the bot knows, [risk]) -> code + sentence."""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.client.account import OpenOrder
from perpbot.client.request import OrderSpec
from perpbot.config import RiskSection
from perpbot.risk.inputs import CheckInput, MarginInput, RateCounts
from perpbot.risk.margin import AccountMargin, Brackets, Holding
from perpbot.risk.pretrade import CHECKS, run_checks

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
NOW = 1_800_000_000.0
FLAT = Brackets.flat(0.004)


def spec(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {"symbol": BTC, "side": "buy", "type": "limit", "amount": 0.01}
    base["price"] = None if kw.get("type") == "market" else 60000.0
    base.update(kw)
    return OrderSpec(**base)


def order(symbol: str = BTC, side: str = "buy", remaining: float = 0.01, **kw: Any) -> OpenOrder:
    return OpenOrder(
        client_order_id=kw.get("cid"),
        order_id=None,
        symbol=symbol,
        side=side,
        type="limit",
        amount=remaining,
        remaining=remaining,
        price=kw.get("price", 60000.0),
        reduce_only=kw.get("reduce_only", False),
    )


def margin(equity: float, leverage: float = 20.0, position: float = 0.0) -> MarginInput:
    holdings = {}
    if position:
        holdings[BTC] = Holding(position, 60000.0, 60000.0, leverage, FLAT)
    return MarginInput(AccountMargin(equity, holdings), 60000.0, leverage, FLAT)


# (id, order, CheckInput fields, [risk] fields, expected code or None, words in the sentence)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str | None, list[str]]] = [
    ("plain order passes with no limits", {}, {}, {}, None, []),
    # -- reduce-only mode (unhealthy index) ---------------------------------------------
    (
        "reduce-only mode refuses an opening order",
        {},
        {"reduce_only_reason": "the BTC/USDT:USDT index has 1 good source of 3"},
        {},
        "RISK_REDUCE_ONLY_MODE",
        ["reduce-only because the BTC/USDT:USDT index has 1 good source", "buy 0.01"],
    ),
    (
        "reduce-only mode lets a reduce-only exit through",
        {"side": "sell", "reduce_only": True},
        {"reduce_only_reason": "unhealthy", "position": 0.02, "reduce_only_room": 0.02},
        {},
        None,
        [],
    ),
    # -- flags --------------------------------------------------------------------------
    (
        "post-only on a market order is refused, not dropped",
        {"type": "market", "post_only": True},
        {},
        {},
        "RISK_POST_ONLY_UNSUPPORTED",
        ["market order cannot carry post-only", "needs a limit order"],
    ),
    (
        "post-only with IOC contradicts",
        {"post_only": True, "time_in_force": "IOC"},
        {},
        {},
        "RISK_POST_ONLY_TIF",
        ["time_in_force IOC", "GTX"],
    ),
    (
        "post-only limit with GTX is fine",
        {"post_only": True, "time_in_force": "GTX"},
        {},
        {},
        None,
        [],
    ),
    (
        "reduce-only on an unknown order type is refused",
        {"type": "trailing", "reduce_only": True, "side": "sell"},
        {"position": 1.0, "reduce_only_room": 1.0},
        {},
        "RISK_FLAG_UNSUPPORTED",
        ["trailing order cannot carry reduce-only"],
    ),
    # -- reduce-only ----------------------------------------------------------------------
    (
        "reduce-only with no position",
        {"side": "sell", "reduce_only": True},
        {"position": 0.0},
        {},
        "RISK_REDUCE_ONLY_NO_POSITION",
        ["nothing to reduce", "flat"],
    ),
    (
        "reduce-only on the growing side",
        {"side": "buy", "reduce_only": True},
        {"position": 0.02},
        {},
        "RISK_REDUCE_ONLY_WRONG_SIDE",
        ["would grow the long 0.02 position"],
    ),
    (
        "reduce-only beyond the position after other reduce-only orders",
        {"side": "sell", "reduce_only": True, "amount": 0.01},
        {"position": 0.02, "reduce_only_room": 0.005},
        {},
        "RISK_REDUCE_ONLY_EXCEEDS",
        [
            "0.02 position",
            "0.015 held by the bot's other open reduce-only orders",
            "room left: 0.005",
        ],
    ),
    (
        "reduce-only beyond the position after unsettled fills",
        {"side": "buy", "reduce_only": True, "amount": 0.02},
        {"position": -0.02, "reduce_only_room": 0.01, "reduce_only_unsettled": 0.01},
        {},
        "RISK_REDUCE_ONLY_EXCEEDS",
        ["0.01 that reduce-only orders may have closed", "ctx.refresh()"],
    ),
    (
        "reduce-only exactly the room",
        {"side": "sell", "reduce_only": True, "amount": 0.02},
        {"position": 0.02, "reduce_only_room": 0.02},
        {},
        None,
        [],
    ),
    # -- decision age -------------------------------------------------------------------
    (
        "decided on a stale price",
        {"decided_price": 60000.0, "decided_at": NOW - 12.5},
        {},
        {"max_decision_age_s": 5},
        "RISK_STALE_PRICE",
        ["12.5 s ago", "max_decision_age_s 5 s"],
    ),
    (
        "decided on a fresh price",
        {"decided_price": 60000.0, "decided_at": NOW - 1},
        {},
        {"max_decision_age_s": 5},
        None,
        [],
    ),
    ("no decision price: nothing to judge", {}, {}, {"max_decision_age_s": 5}, None, []),
    # -- price band ---------------------------------------------------------------------
    (
        "limit too far above the index (pct)",
        {"price": 61000.0},
        {"index": 60000.0},
        {"price_band_pct": 1.0},
        "RISK_PRICE_BAND",
        ["1.67 % above the index 60,000", "price_band_pct 1 %"],
    ),
    (
        "limit too far below the index (bps)",
        {"side": "sell", "price": 59600.0},
        {"index": 60000.0},
        {"price_band_bps": 50},
        "RISK_PRICE_BAND",
        ["0.67 % below", "price_band_bps 50 bps"],
    ),
    (
        "limit inside the band",
        {"price": 60300.0},
        {"index": 60000.0},
        {"price_band_pct": 1.0},
        None,
        [],
    ),
    (
        "no trustworthy index",
        {},
        {"index": None, "index_note": "the BTC/USDT:USDT index has 0 good sources of 3"},
        {"price_band_pct": 1.0},
        "RISK_NO_INDEX",
        ["0 good sources of 3", "price_band_pct cannot be checked"],
    ),
    (
        "market orders have no band",
        {"type": "market"},
        {"index": 60000.0},
        {"price_band_pct": 1.0},
        None,
        [],
    ),
    # -- rates --------------------------------------------------------------------------
    (
        "order rate for the bot",
        {},
        {"rates": RateCounts(orders_bot=10)},
        {"max_order_rate": 10},
        "RISK_ORDER_RATE",
        ["10 orders for the bot in the last 10 s", "[risk] max_order_rate 10"],
    ),
    (
        "order rate per symbol",
        {},
        {"rates": RateCounts(orders_symbol=3, orders_bot=3)},
        {"symbols": {BTC: {"max_order_rate": 3}}},
        "RISK_ORDER_RATE",
        [f'[risk.symbols."{BTC}"] max_order_rate 3', f"on {BTC}"],
    ),
    (
        "cancel-replace loop pauses new orders",
        {},
        {"rates": RateCounts(cancels_bot=25)},
        {"max_cancel_rate": 20},
        "RISK_CANCEL_RATE",
        ["25 cancels", "cancel-replace loop", "max_cancel_rate 20"],
    ),
    (
        "a reduce-only exit passes a cancel storm",
        {"side": "sell", "reduce_only": True},
        {"rates": RateCounts(cancels_bot=25), "position": 0.02, "reduce_only_room": 0.02},
        {"max_cancel_rate": 20},
        None,
        [],
    ),
    # -- open orders --------------------------------------------------------------------
    (
        "max open orders for the bot",
        {},
        {"orders": [order(), order(ETH), order(side="sell")]},
        {"max_open_orders": 3},
        "RISK_MAX_OPEN_ORDERS",
        ["3 open orders for the bot", "[risk] max_open_orders is 3"],
    ),
    (
        "max open orders per symbol counts only that symbol",
        {},
        {"orders": [order(ETH), order(ETH), order()]},
        {"symbols": {BTC: {"max_open_orders": 2}}},
        None,
        [],
    ),
    # -- notional -----------------------------------------------------------------------
    (
        "order notional",
        {"amount": 0.1},
        {},
        {"max_order_notional": 5000},
        "RISK_MAX_ORDER_NOTIONAL",
        ["6,000.00 USDT (0.1 x 60,000)", "[risk] max_order_notional 5,000.00 USDT"],
    ),
    (
        "market order notional at the reference price",
        {"type": "market", "amount": 0.1},
        {"prices": {BTC: 70000.0}},
        {"max_order_notional": 5000},
        "RISK_MAX_ORDER_NOTIONAL",
        ["7,000.00 USDT (0.1 x 70,000)"],
    ),
    (
        "market order without any price fails closed",
        {"type": "market"},
        {},
        {"max_order_notional": 5000},
        "RISK_NO_PRICE",
        ["no reference price", "max_order_notional cannot be checked"],
    ),
    (
        "position notional counts open orders on the same side",
        {"amount": 0.005},
        {"position": 0.01, "orders": [order(remaining=0.005)]},
        {"symbols": {BTC: {"max_position_notional": 1000}}},
        "RISK_MAX_POSITION_NOTIONAL",
        ["1,200.00 USDT notional", "max_position_notional 1,000.00 USDT"],
    ),
    (
        "an order that shrinks exposure passes even above the cap",
        {"side": "sell", "amount": 0.01},
        {"position": 0.05},
        {"max_position_notional": 1000},
        None,
        [],
    ),
    (
        "bot gross notional sums symbols",
        {"amount": 0.01},
        {"positions": {ETH: 1.0}, "prices": {ETH: 3000.0, BTC: 60000.0}},
        {"max_position_notional": 3500},
        "RISK_MAX_POSITION_NOTIONAL",
        ["gross position to 3,600.00 USDT"],
    ),
    # -- leverage -----------------------------------------------------------------------
    (
        "bot leverage",
        {"amount": 0.02},
        {"equity": 1000.0},
        {"max_leverage": 1},
        "RISK_MAX_LEVERAGE",
        ["1.20x", "1,200.00 USDT notional on 1,000.00 USDT equity", "[risk] max_leverage 1x"],
    ),
    (
        "leverage without equity fails closed",
        {},
        {"equity": None},
        {"max_leverage": 3},
        "RISK_NO_EQUITY",
        ["equity is not known", "max_leverage cannot be checked"],
    ),
    # -- margin and liquidation -----------------------------------------------------------
    (
        "liquidation too close after the fill",
        {"amount": 0.2},
        {"margin": margin(1000.0), "equity": 1000.0},
        {"liquidation_band_pct": 10},
        "RISK_LIQUIDATION_BAND",
        [
            "long 0.2 would be liquidated at about 55,220.88",
            "7.97 % away",
            "liquidation_band_pct 10 %",
        ],
    ),
    (
        "liquidation far enough",
        {"amount": 0.2},
        {"margin": margin(1000.0), "equity": 1000.0},
        {"liquidation_band_pct": 5},
        None,
        [],
    ),
    (
        "not enough margin",
        {"amount": 0.2},
        {"margin": margin(400.0), "equity": 400.0},
        {"liquidation_band_pct": 5},
        "RISK_MARGIN_INSUFFICIENT",
        ["200.00 USDT more margin", "20x leverage"],
    ),
]


@pytest.mark.parametrize(
    ("name", "order_kw", "input_kw", "cfg_kw", "code", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_check_table(
    name: str,
    order_kw: dict[str, Any],
    input_kw: dict[str, Any],
    cfg_kw: dict[str, Any],
    code: str | None,
    words: list[str],
) -> None:
    cfg = RiskSection(**cfg_kw)
    i = CheckInput(spec=spec(**order_kw), now=NOW, **input_kw)
    rejection = run_checks(i, cfg)
    if code is None:
        assert rejection is None, rejection
        return
    assert rejection is not None, f"{name}: expected {code}"
    assert rejection.code == code
    for w in words:
        assert w in rejection.sentence, f"{w!r} not in {rejection.sentence!r}"
    assert rejection.data.get("symbol") == BTC


def test_the_table_covers_every_check() -> None:
    """Each row of pretrade.CHECKS rejects at least one case above (no untested check)."""
    codes = {c[4] for c in CASES if c[4]}
    by_check = {
        "reduce_only_mode": {"RISK_REDUCE_ONLY_MODE"},
        "flags": {"RISK_POST_ONLY_UNSUPPORTED", "RISK_POST_ONLY_TIF", "RISK_FLAG_UNSUPPORTED"},
        "reduce_only": {"RISK_REDUCE_ONLY_NO_POSITION", "RISK_REDUCE_ONLY_EXCEEDS"},
        "decision_age": {"RISK_STALE_PRICE"},
        "price_band": {"RISK_PRICE_BAND", "RISK_NO_INDEX"},
        "order_rate": {"RISK_ORDER_RATE"},
        "cancel_rate": {"RISK_CANCEL_RATE"},
        "open_orders": {"RISK_MAX_OPEN_ORDERS"},
        "order_notional": {"RISK_MAX_ORDER_NOTIONAL"},
        "position_notional": {"RISK_MAX_POSITION_NOTIONAL"},
        "leverage": {"RISK_MAX_LEVERAGE", "RISK_NO_EQUITY"},
        "margin": {"RISK_LIQUIDATION_BAND", "RISK_MARGIN_INSUFFICIENT"},
    }
    assert {row.name for row in CHECKS} == set(by_check)
    for check, expected in by_check.items():
        assert expected <= codes, f"{check}: untested codes {expected - codes}"


def test_symbol_table_is_judged_before_the_bot_table() -> None:
    cfg = RiskSection(max_order_notional=10_000, symbols={BTC: {"max_order_notional": 500}})
    r = run_checks(CheckInput(spec=spec(), now=NOW), cfg)
    assert r is not None and f'[risk.symbols."{BTC}"] max_order_notional 500.00 USDT' in r.sentence
    assert f"on {BTC}" in r.sentence


def test_reduce_only_orders_skip_exposure_limits_but_not_the_band() -> None:
    cfg = RiskSection(max_order_notional=1, max_leverage=0.1, price_band_pct=1)
    exit_ = spec(side="sell", reduce_only=True, amount=0.02, price=60100.0)
    i = CheckInput(spec=exit_, now=NOW, position=0.02, reduce_only_room=0.02, index=60000.0)
    assert run_checks(i, cfg) is None
    far = spec(side="sell", reduce_only=True, amount=0.02, price=70000.0)
    i = CheckInput(spec=far, now=NOW, position=0.02, reduce_only_room=0.02, index=60000.0)
    r = run_checks(i, cfg)
    assert r is not None and r.code == "RISK_PRICE_BAND"
