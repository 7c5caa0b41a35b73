"""Leveraged crowd traders: synthetic positions with their own liquidation levels.

``[market] crowd_traders = N`` gives each symbol N synthetic traders (not API accounts),
each holding a position opened near the start price with a leverage drawn from a
log-normal distribution (median ``crowd_leverage_median``, capped at 125x) and a size
drawn around ``crowd_position_qty``. Its liquidation price is where its margin, net of the
maintenance margin (``crowd_mmr``), is gone. When the mark crosses it, the position is
closed by a market order through the book (the same path as the synthetic takers): it
consumes liquidity and moves the price; the index follows the moved price (its venues
quote the perp's mid less the premium at their next refresh), so the mark reaches the
next traders' levels: a cascade over seconds, as on Binance, where the mark (not the last
print) triggers liquidations. Liquidated traders reopen at the current price after a
while (mean ``crowd_reopen_s``), so the population persists. Every crowd liquidation is recorded
(``/__sim/state`` ``crowd_liquidations``); the crowd's open longs count in ``openInterest``.

The insurance fund stands behind them as behind the accounts: a liquidation that fills
past the trader's bankruptcy price is a loss the fund pays, one that fills before it leaves
the rest of the margin to the fund (Binance's rule), and a loss the fund cannot pay is
auto-deleveraged: the accounts' opposite positions, best-ranked first (liquidation.py),
are closed at the bankruptcy price for the share of the position the fund does not cover
(the crowd's own winners are not in the queue); without a counterparty the fund goes
negative. The market order itself is the same either way, so a large fund (the default)
leaves the cascade as it was.

Off by default (``crowd_traders = 0``): existing seeded tests and paper runs keep their
market; stress tests switch it on.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from perpbot.sim import trading
from perpbot.sim.engine import Engine
from perpbot.sim.liquidation import deleverage

MAX_LEVERAGE = 125.0
MAX_CASCADE_ROUNDS = 50


@dataclass(slots=True)
class CrowdTrader:
    symbol: str
    side: str  # BUY (long) | SELL (short)
    qty: int  # steps
    entry: float
    leverage: float
    liq_price: float
    reopen_at: int = 0  # 0 while the position is open


def attach(engine: Engine) -> None:
    cfg = engine.cfg.market
    if cfg.crowd_traders <= 0:
        return
    rng = random.Random(engine.cfg.seed ^ 0xC20D)
    traders: list[CrowdTrader] = []
    for symbol, mkt in engine.markets.items():
        for _ in range(cfg.crowd_traders):
            traders.append(_open(engine, rng, symbol, mkt.mark))
    engine.step_hooks.append(lambda symbol, t: check(engine, rng, traders, symbol, t))
    engine.crowd_long = lambda symbol: sum(
        tr.qty for tr in traders if tr.symbol == symbol and tr.side == "BUY" and not tr.reopen_at
    )


def _open(engine: Engine, rng: random.Random, symbol: str, price: float) -> CrowdTrader:
    cfg = engine.cfg.market
    spec = engine.specs[symbol]
    drawn = rng.lognormvariate(math.log(cfg.crowd_leverage_median), 0.6)
    lev = min(MAX_LEVERAGE, max(1.0, drawn))
    side = "BUY" if rng.random() < 0.5 else "SELL"
    size = cfg.crowd_position_qty * rng.lognormvariate(0.0, 0.8)
    qty = max(spec.min_qty, int(size / spec.step_f))
    entry = price * (1.0 + rng.gauss(0.0, 0.002))
    cushion = 1.0 / lev - cfg.crowd_mmr
    liq = entry * (1.0 - cushion) if side == "BUY" else entry * (1.0 + cushion)
    return CrowdTrader(symbol, side, qty, entry, lev, liq)


def check(
    engine: Engine, rng: random.Random, traders: list[CrowdTrader], symbol: str, t: int
) -> None:
    """Liquidate every crowd trader of ``symbol`` whose level the mark has crossed, again
    and again while the liquidations themselves move the price (a cascade)."""
    mkt = engine.markets[symbol]
    for trader in traders:
        if trader.symbol == symbol and trader.reopen_at and trader.reopen_at <= t:
            fresh = _open(engine, rng, symbol, mkt.mark)
            trader.side, trader.qty, trader.entry = fresh.side, fresh.qty, fresh.entry
            trader.leverage, trader.liq_price, trader.reopen_at = (
                fresh.leverage, fresh.liq_price, 0
            )  # fmt: skip
    for _ in range(MAX_CASCADE_ROUNDS):
        mark = mkt.mark
        hit = [
            tr
            for tr in traders
            if tr.symbol == symbol
            and not tr.reopen_at
            and (mark <= tr.liq_price if tr.side == "BUY" else mark >= tr.liq_price)
        ]
        if not hit:
            return
        for tr in hit:
            close_side = "SELL" if tr.side == "BUY" else "BUY"
            before = mkt.mid
            seq = mkt.trade_seq
            trading.synthetic_take(engine, symbol, close_side, tr.qty, t, walk=True)
            fill = _average_fill(mkt, seq)
            settled = _settle(engine, tr, close_side, fill, t)
            wait_s = rng.expovariate(1.0 / engine.cfg.market.crowd_reopen_s)
            tr.reopen_at = t + int(wait_s * 1000) + 1
            record: dict[str, Any] = {
                "symbol": symbol,
                "time": t,
                "side": close_side,
                "qty": engine.specs[symbol].fmt_qty(tr.qty),
                "leverage": round(tr.leverage, 2),
                "liqPrice": round(tr.liq_price, 8),
                "mark": round(mark, 8),
                "midBefore": round(before, 8),
                "midAfter": round(mkt.mid, 8),
                **settled,
            }
            engine.crowd_liquidations.append(record)


def _average_fill(mkt: Any, since_seq: int) -> float | None:
    """The average price of the prints after trade ``since_seq`` (the tape's last 1000)."""
    n = mkt.trade_seq - since_seq
    prints = list(mkt.tape)[-n:] if n > 0 else []
    qty = sum(p[2] for p in prints)
    if not qty:
        return None
    return mkt.spec.px(1) * sum(p[1] * p[2] for p in prints) / qty


def _settle(
    engine: Engine, tr: CrowdTrader, side: str, fill: float | None, t: int
) -> dict[str, Any]:
    """The insurance fund's side of a crowd liquidation, as Binance's: a fill better than
    the bankruptcy price leaves the rest of the margin to the fund, a worse one is a loss
    the fund pays; what the fund cannot pay is auto-deleveraged: the accounts' opposite
    positions, best-ranked first, are closed at the bankruptcy price for the share of the
    position whose loss is not covered (the crowd's own winners are not in the queue)."""
    spec = engine.specs[tr.symbol]
    cushion = 1.0 / tr.leverage
    bankrupt = tr.entry * (1.0 - cushion) if tr.side == "BUY" else tr.entry * (1.0 + cushion)
    out: dict[str, Any] = {"bankruptcyPrice": round(bankrupt, 8), "fill": None, "loss": 0.0,
                           "autoDeleveraged": spec.fmt_qty(0)}  # fmt: skip
    if fill is None:
        return out
    past = (bankrupt - fill) if tr.side == "BUY" else (fill - bankrupt)
    loss = past * spec.qty(tr.qty)
    out.update(fill=round(fill, 8), loss=round(loss, 8))
    if loss <= 0 or engine.insurance_fund >= loss:
        engine.insurance_fund -= loss
    else:
        uncovered = loss - max(0.0, engine.insurance_fund)
        engine.insurance_fund = min(engine.insurance_fund, 0.0)
        share = math.ceil(tr.qty * uncovered / loss)
        ticks = bankrupt / spec.tick_f
        price = max(1, math.ceil(ticks - 1e-9) if tr.side == "BUY" else math.floor(ticks + 1e-9))
        done = deleverage(engine, tr.symbol, side, share, price, t)
        engine.insurance_fund -= uncovered * (1.0 - done / share)  # no counterparty: the fund
        out["autoDeleveraged"] = spec.fmt_qty(done)
    out["insuranceFund"] = round(engine.insurance_fund, 8)
    return out
