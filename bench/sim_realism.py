"""How Binance-like the simulated market is: funding, passive fills, impact, mark vs last.

Drives the engine directly (no HTTP) on a manual clock over one simulated hour — the same
engine time a 100x fast clock (``clock_speed = 100``) covers in 36 s of wall time, without
waiting for it — with a bot that keeps a post-only bid and ask at the touch and replaces
them when they fill. Prints, beside the Binance BTCUSDT figures that have a public source:

* funding events in the hour and their rate range (plus the estimated-rate range sampled
  every minute), for the default 8 h symbol and a 1 h one;
* the share of the bot's passive orders that filled in more than one print, and the mean
  queue wait (placement to first fill);
* the half-life of the ask touch's recovery after a 20 BTC market buy;
* mark-vs-last divergence percentiles (bps), sampled every second;
* a liquidation cascade: 500 leveraged crowd traders, a -2 % jump, the minute after.

    .venv/bin/python bench/sim_realism.py [--minutes 60] [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

from perpbot.sim.assemble import build_engine
from perpbot.sim.config import SimConfig, SymbolConfig
from perpbot.sim.models import Order
from perpbot.sim.trading import place_order

HOUR_MS = 3_600_000
BINANCE = {
    "funding": "every 8 h (some symbols 4 h/1 h); 0.0100 % whenever |premium| stays within "
    "the +-0.05 % clamp (Binance funding-rate FAQ); sign changes in bear phases",
    "partial": "n/a (no public source)",
    "queue": "n/a (no public source)",
    "half_life": "n/a (no public source)",
    "mark_last": "n/a (no public source; mark = median(index-based prices, last))",
}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _config(seed: int) -> SimConfig:
    start = 1_767_225_600_000 - HOUR_MS // 2  # 30 min before an 8 h boundary
    return SimConfig(
        seed=seed,
        clock="manual",
        start_time_ms=start,
        symbols=[
            SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0),
            SymbolConfig(
                symbol="ETHUSDT",
                base_asset="ETH",
                price=3000.0,
                tick_size="0.01",
                min_price="0.01",
                min_notional="20",
                crowd_level_step_ticks=5,
                crowd_level_qty=12.0,
                taker_qty=2.5,
                funding_interval_h=1,
            ),
        ],
    )


def run_market(minutes: int, seed: int) -> dict[str, object]:
    engine = build_engine(_config(seed))
    acct = engine.create_account(balance=10_000_000)
    mkt = engine.markets["BTCUSDT"]
    quotes: dict[str, Order | None] = {"BUY": None, "SELL": None}
    placed_at: dict[int, int] = {}
    estimates: dict[str, list[float]] = {"BTCUSDT": [], "ETHUSDT": []}
    divergence: list[float] = []
    end = engine.clock.now_ms() + minutes * 60_000
    while engine.clock.now_ms() < end:
        now = engine.clock.now_ms()
        for side in ("BUY", "SELL"):
            order = quotes[side]
            if order is None or not order.is_open:
                price = mkt.crowd_best_bid() if side == "BUY" else mkt.crowd_best_ask()
                params = {
                    "symbol": "BTCUSDT",
                    "side": side,
                    "type": "LIMIT",
                    "timeInForce": "GTX",
                    "quantity": "0.200",
                    "price": mkt.spec.fmt_px(price),
                }
                try:
                    quotes[side] = place_order(engine, acct, params)
                    placed_at[quotes[side].order_id] = now  # type: ignore[union-attr]
                except Exception:  # a post-only that would cross: try next second
                    quotes[side] = None
        if now % 60_000 < 1000:
            for sym, m in engine.markets.items():
                estimates[sym].append(m.pricing.last_rate)
        last = mkt.spec.px(mkt.last_trade_px)
        divergence.append(abs(mkt.mark - last) / last * 10_000)
        engine.clock.advance(1000)
        engine.sync()
    fills: dict[int, list[int]] = {}
    for trade in engine.trades_by_account[acct.api_key]:
        fills.setdefault(trade.order_id, []).append(trade.time)
    waits = [(times[0] - placed_at[oid]) / 1000 for oid, times in fills.items() if oid in placed_at]
    return {
        "funding": engine.funding_history,
        "estimates": estimates,
        "partial_share": sum(1 for t in fills.values() if len(t) > 1) / max(1, len(fills)),
        "filled_orders": len(fills),
        "queue_wait_s": statistics.mean(waits) if waits else float("nan"),
        "divergence": divergence,
    }


def recovery_half_life(seed: int) -> float:
    """Seconds until the ask touch has recovered half of a 20 BTC market buy's move."""
    cfg = _config(seed)
    cfg = cfg.model_copy(
        update={
            "market": cfg.market.model_copy(
                update={"volatility": 0.0, "jump_rate": 0.0, "taker_rate": 0.0}
            )
        }
    )
    engine = build_engine(cfg)
    acct = engine.create_account(balance=10_000_000)
    mkt = engine.markets["BTCUSDT"]
    before = mkt.crowd_best_ask()
    place_order(
        engine, acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "20"}
    )
    peak = mkt.crowd_best_ask()
    for step in range(1, 1200):
        engine.clock.advance(100)
        engine.sync()
        if mkt.crowd_best_ask() - before <= (peak - before) / 2:
            return step / 10
    return float("inf")


def cascade(seed: int) -> tuple[int, float, float]:
    """A -2 % jump with 500 leveraged crowd traders per symbol: (liquidations, seconds the
    cascade lasted, extra move in bps beyond the jump) over the following minute."""
    cfg = _config(seed)
    market = cfg.market.model_copy(
        update={"volatility": 0.0, "jump_rate": 0.0, "taker_rate": 0.0, "crowd_traders": 500,
                "crowd_leverage_median": 20.0, "crowd_position_qty": 1.0}
    )  # fmt: skip
    engine = build_engine(cfg.model_copy(update={"market": market}))
    mkt = engine.markets["BTCUSDT"]
    engine.jump("BTCUSDT", -2.0)
    after_jump = mkt.mid
    for _ in range(60):
        engine.clock.advance(1000)
        engine.sync()
    hits = [r for r in engine.crowd_liquidations if r["symbol"] == "BTCUSDT"]
    span = (max(r["time"] for r in hits) - min(r["time"] for r in hits)) / 1000 if hits else 0.0
    return len(hits), span, (after_jump - mkt.mid) / after_jump * 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    res = run_market(args.minutes, args.seed)
    half = recovery_half_life(args.seed)
    n_liq, cascade_s, extra = cascade(args.seed)
    took = time.perf_counter() - started
    print(f"simulated {args.minutes} min (seed {args.seed}) in {took:.1f} s of wall time")
    for sym in ("BTCUSDT", "ETHUSDT"):
        events = [e for e in res["funding"] if e["symbol"] == sym]  # type: ignore[attr-defined]
        rates = [e["rate"] * 100 for e in events]
        est = [r * 100 for r in res["estimates"][sym]]  # type: ignore[index]
        span = f"{min(rates):+.4f}..{max(rates):+.4f} %" if rates else "-"
        print(
            f"funding {sym}: {len(events)} event(s), rate {span}; estimate range "
            f"{min(est):+.4f}..{max(est):+.4f} %   | Binance: {BINANCE['funding']}"
        )
    print(
        f"passive fills: {res['filled_orders']} orders filled, "
        f"{res['partial_share'] * 100:.0f} % in more than one print   | Binance: "
        f"{BINANCE['partial']}"
    )
    print(f"mean queue wait: {res['queue_wait_s']:.1f} s   | Binance: {BINANCE['queue']}")
    print(
        f"book recovery half-life after a 20 BTC sweep: {half:.1f} s   | Binance: "
        f"{BINANCE['half_life']}"
    )
    print(
        f"cascade (500 leveraged crowd traders, -2 % jump): {n_liq} liquidations over "
        f"{cascade_s:.0f} s, a further {extra:.2f} bps down   | Binance: n/a (no public source)"
    )
    div = res["divergence"]
    print(
        f"mark vs last (bps): p50 {_pct(div, 0.5):.2f}  p90 {_pct(div, 0.9):.2f}  "  # type: ignore[arg-type]
        f"p99 {_pct(div, 0.99):.2f}   | Binance: {BINANCE['mark_last']}"  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
