"""Liquidation as Binance runs it: cancel, IOC at the bankruptcy price, insurance fund, ADL.

When an account's margin balance falls below its maintenance margin (cross: the whole
cross wallet; isolated: that position's margin):

1. the account's open orders are cancelled (cross: every symbol; isolated: that symbol)
   and its algo orders in the symbol expire;
2. the position is sent to the book as an IOC LIMIT order at the **bankruptcy price** (the
   price at which its margin is exactly used up), ``clientOrderId`` ``autoclose-...``,
   ``origType`` LIQUIDATION; it fills at book prices at or better than that;
3. what the book could not take is taken over by the **insurance fund** at the bankruptcy
   price, if the fund can pay the gap to the mark;
4. otherwise the rest is closed against the opposite positions of other accounts, highest
   ``adlQuantile`` score (unrealized PnL % x leverage) first, at the bankruptcy price
   (**ADL**, ``clientOrderId`` ``adl_autoclose-...``, ``origType`` ADL); whatever is left
   without a counterparty (the synthetic crowd) falls to the fund, which may go negative.

The clearance fee (``liquidationFee``, 1.25 % of the notional, at most the margin left) is
paid to the insurance fund (income INSURANCE_CLEAR). One IOC per position, not the
incremental tier-by-tier liquidation Binance uses for large positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from perpbot.sim import margin, trading
from perpbot.sim.engine import LIQUIDATION_FEE, Engine
from perpbot.sim.models import Account, Order, SimPosition
from perpbot.sim.ws_events import AccountChanged, Liquidated


def attach(engine: Engine) -> None:
    engine.liquidator = lambda acct, pv, t: liquidate(engine, acct, pv, t)


def bankruptcy_price(engine: Engine, acct: Account, pv: margin.PositionView) -> float:
    """The price at which the position's margin is used up."""
    if pv.isolated:
        cover = pv.pos.isolated_wallet
    else:
        view = engine.view(acct)
        cover = view.cross_wallet + view.cross_upnl - pv.upnl
    size = abs(pv.amt)
    return pv.pos.entry - cover / size if pv.pos.amt > 0 else pv.pos.entry + cover / size


def liquidate(engine: Engine, acct: Account, pv: margin.PositionView, t: int) -> None:
    spec = pv.spec
    symbol = spec.symbol
    for sym in [symbol] if pv.isolated else list(engine.specs):
        engine.cancel_all(acct.api_key, sym, t)
    for algo in engine.algo_orders.values():
        if algo.account == acct.api_key and algo.symbol == symbol and algo.is_open:
            algo.algo_status, algo.update_time = "EXPIRED", t
    wallet_before = acct.wallet
    isolated_wallet = pv.pos.isolated_wallet
    long = pv.pos.amt > 0
    side = "SELL" if long else "BUY"
    bankrupt = bankruptcy_price(engine, acct, pv)
    ticks = bankrupt / spec.tick_f
    price = max(1, math.ceil(ticks - 1e-9) if long else math.floor(ticks + 1e-9))
    qty = abs(pv.pos.amt)
    order = engine.new_order(
        acct.api_key, symbol, f"autoclose-{t}{engine.seq}", side, "LIMIT", "IOC", price, qty,
        True, t, position_side=pv.pos.side,
    )  # fmt: skip
    order.orig_type = "LIQUIDATION"
    trading.match_taker(engine, order, price, t)
    in_book = order.executed
    by_fund, by_adl = 0, 0
    if order.remaining > 0:
        gap = abs(spec.px(price) - engine.markets[symbol].mark) * spec.qty(order.remaining)
        if engine.insurance_fund >= gap:
            by_fund = order.remaining
            engine.insurance_fund -= gap
            engine.fill_order(order, price, by_fund, False, t)
        else:
            by_adl = _deleverage(engine, order, price, t)
            if order.remaining > 0:  # no counterparty left: the fund carries it
                by_fund = order.remaining
                engine.insurance_fund -= gap
                engine.fill_order(order, price, by_fund, False, t)
    if order.is_open:
        engine.close_order(order, "EXPIRED", t)
    floor = wallet_before - isolated_wallet if pv.isolated else 0.0
    acct.wallet = max(acct.wallet, floor)
    clearance = min(acct.wallet - floor, abs(pv.notional) * LIQUIDATION_FEE)
    if clearance > 0:
        acct.wallet -= clearance
        engine.insurance_fund += clearance
        engine.add_income(acct, symbol, "INSURANCE_CLEAR", -clearance, t, "")
    engine.liquidations.append(
        {
            "account": acct.api_key,
            "symbol": symbol,
            "time": t,
            "side": side,
            "qty": spec.fmt_qty(qty),
            "price": spec.fmt_px(price),
            "bankruptcyPrice": round(bankrupt, 8),
            "filledInBook": spec.fmt_qty(in_book),
            "takenByInsuranceFund": spec.fmt_qty(by_fund),
            "autoDeleveraged": spec.fmt_qty(by_adl),
            "marginType": "ISOLATED" if pv.isolated else "CROSSED",
            "orderId": order.order_id,
            "walletBefore": round(wallet_before, 8),
            "walletAfter": round(acct.wallet, 8),
            "insuranceFund": round(engine.insurance_fund, 8),
        }
    )
    engine.emit(Liquidated(engine.liquidations[-1]))  # forceOrder and the user stream
    engine.emit(AccountChanged(acct.api_key, "INSURANCE_CLEAR", t, (symbol,)))


def adl_score(pv: margin.PositionView) -> float:
    """Binance's ranking: unrealized PnL % (on the position's margin) x effective leverage."""
    if pv.im <= 0 or pv.notional == 0:
        return 0.0
    return (pv.upnl / pv.im) * (abs(pv.notional) / max(pv.im, 1e-12))


def _deleverage(engine: Engine, order: Order, price: int, t: int) -> int:
    """Close the liquidation's rest against opposite positions, best-ranked first."""
    return deleverage(
        engine, order.symbol, order.side, order.remaining, price, t, skip=order.account,
        on_take=lambda take: engine.fill_order(order, price, take, False, t),
    )  # fmt: skip


def deleverage(
    engine: Engine,
    symbol: str,
    side: str,
    qty: int,
    price: int,
    t: int,
    *,
    skip: str | None = None,
    on_take: Callable[[int], None] | None = None,
) -> int:
    """ADL: close up to ``qty`` steps of the accounts' positions opposite a liquidation
    order of ``side`` (a liquidated short, BUY, is closed against longs), best-ranked
    first, at ``price`` (the bankruptcy price); the steps closed."""
    want_long = side == "BUY"
    ranked: list[tuple[float, Account, SimPosition]] = []
    for key in sorted(engine.holders):
        if key == skip:
            continue
        acct = engine.accounts[key]
        for pv in engine.view(acct).positions:
            if pv.spec.symbol == symbol and (pv.pos.amt > 0) == want_long and pv.pos.amt:
                ranked.append((adl_score(pv), acct, pv.pos))
    ranked.sort(key=lambda r: -r[0])
    done = 0
    for _, acct, pos in ranked:
        if done >= qty:
            break
        take = min(qty - done, abs(pos.amt))
        counter = engine.new_order(
            acct.api_key, symbol, f"adl_autoclose-{t}{engine.seq}",
            "SELL" if pos.amt > 0 else "BUY", "LIMIT", "IOC", price, take, True, t,
            position_side=pos.side,
        )  # fmt: skip
        counter.orig_type = "ADL"
        engine.fill_order(counter, price, take, False, t)
        if on_take is not None:
            on_take(take)
        done += take
    return done


def adl_quantile(engine: Engine, acct: Account, symbol: str) -> int:
    """1..4 (4 = first in line) from the account's score among same-side positions."""
    mine = next((pv for pv in engine.view(acct).positions if pv.spec.symbol == symbol), None)
    if mine is None:
        return 0
    long = mine.pos.amt > 0
    scores = sorted(
        adl_score(pv)
        for key in engine.holders
        for pv in engine.view(engine.accounts[key]).positions
        if pv.spec.symbol == symbol and (pv.pos.amt > 0) == long
    )
    rank = sum(1 for s in scores if s <= adl_score(mine)) / len(scores)
    return max(1, math.ceil(rank * 4))
