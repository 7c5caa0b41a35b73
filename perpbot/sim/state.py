"""What ``GET /__sim/state`` returns: the exchange's ground truth for tests to assert on.

It is the only way a test can tell what really happened at the exchange when the client
saw a timeout, so it includes every order ever accepted (and the post-only/FOK rejections,
flagged ``recorded: false`` as Binance does not record them), with its client order id,
status and ms timestamps including the cancel time, plus request counters. Secrets are
never included.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from perpbot.sim import payloads
from perpbot.sim.engine import Engine
from perpbot.sim.models import AlgoOrder, Order
from perpbot.sim.spec import fmt_float

LATENCY_SAMPLES = 200_000


@dataclass
class Stats:
    """Request counters kept by the server (control endpoints are not counted)."""

    requests: int = 0
    weight_used: int = 0
    http_429: int = 0
    http_418: int = 0
    injected_errors: int = 0
    dropped: int = 0
    lost_responses: int = 0
    delayed_responses: int = 0
    per_path: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    latency_us: list[float] = field(default_factory=list)

    def record_latency(self, seconds: float) -> None:
        if len(self.latency_us) >= LATENCY_SAMPLES:
            del self.latency_us[: LATENCY_SAMPLES // 2]
        self.latency_us.append(seconds * 1e6)

    def latency_summary(self) -> dict[str, float | int]:
        samples = sorted(self.latency_us)
        if not samples:
            return {"count": 0, "p50_us": 0.0, "p99_us": 0.0, "max_us": 0.0}

        def pct(q: float) -> float:
            return round(samples[min(len(samples) - 1, int(q * len(samples)))], 1)

        return {
            "count": len(samples),
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
            "max_us": round(samples[-1], 1),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "weight_used": self.weight_used,
            "http_429": self.http_429,
            "http_418": self.http_418,
            "injected_errors": self.injected_errors,
            "dropped": self.dropped,
            "lost_responses": self.lost_responses,
            "delayed_responses": self.delayed_responses,
            "per_path": dict(self.per_path),
            "rejects": dict(self.rejects),
            "latency": self.latency_summary(),
        }


def algo_record(engine: Engine, a: AlgoOrder) -> dict[str, Any]:
    """An algo order as Binance's query renders it, plus its account and reject reason."""
    return {
        "account": a.account,
        **payloads.algo_order(engine, a, query=True),
        "rejectReason": a.reject_reason,
    }


def order_record(engine: Engine, o: Order) -> dict[str, Any]:
    spec = engine.specs[o.symbol]
    return {
        "orderId": o.order_id,
        "account": o.account,
        "symbol": o.symbol,
        "clientOrderId": o.client_order_id,
        "side": o.side,
        "type": o.type,
        "origType": o.orig_type,
        "timeInForce": o.tif,
        "goodTillDate": o.good_till_date,
        "price": spec.fmt_px(o.price),
        "origQty": spec.fmt_qty(o.qty),
        "executedQty": spec.fmt_qty(o.executed),
        "cumQuote": f"{o.cum_quote:.{spec.pp + spec.qp}f}",
        "status": o.status,
        "reduceOnly": o.reduce_only,
        "positionSide": o.position_side,  # BOTH (one-way) | LONG | SHORT (hedge mode)
        "priceMatch": o.price_match,  # NONE, or the level that set "price" at entry
        "time": o.time,
        "updateTime": o.update_time,
        "cancelTime": o.cancel_time,
        "recorded": o.recorded,
        "rejectCode": o.reject_code,
        "queueAhead": spec.fmt_qty(o.queue_ahead),
    }


def build_state(engine: Engine, stats: Stats) -> dict[str, Any]:
    accounts = []
    for acct in engine.accounts.values():
        view = engine.view(acct)
        positions = [
            {
                "symbol": pv.spec.symbol,
                "positionSide": pv.pos.side,
                "positionAmt": pv.spec.fmt_qty(pv.pos.amt),
                "entryPrice": fmt_float(pv.pos.entry),
                "markPrice": fmt_float(pv.mark),
                "unrealizedProfit": fmt_float(pv.upnl),
                "leverage": pv.leverage,
                "marginType": "ISOLATED" if pv.isolated else "CROSSED",
                "isolatedWallet": fmt_float(pv.pos.isolated_wallet),
                "liquidationPrice": fmt_float(pv.liq_price),
            }
            for pv in view.positions
        ]
        accounts.append(
            {
                "api_key": acct.api_key,
                "permissions": dict(acct.permissions),
                "dual_side_position": acct.dual_side,  # hedge mode
                "create_time": acct.create_time,
                "balances": {
                    "USDT": {
                        "wallet": fmt_float(view.wallet),
                        "margin_balance": fmt_float(view.margin_balance),
                        "available": fmt_float(view.available),
                        "unrealized": fmt_float(view.upnl),
                    }
                },
                "positions": positions,
                "leverage": {
                    s: acct.leverage.get(s, engine.cfg.default_leverage) for s in engine.specs
                },
                "margin_type": {s: acct.margin_type.get(s, "CROSSED") for s in engine.specs},
                "countdowns": {
                    sym: deadline
                    for (key, sym), deadline in engine.countdowns.items()
                    if key == acct.api_key
                },
                "income_count": len(acct.income),
            }
        )
    markets = {}
    for symbol, mkt in engine.markets.items():
        spec = mkt.spec
        markets[symbol] = {
            "mid": fmt_float(mkt.mid),
            "mark": fmt_float(mkt.mark),
            "index": fmt_float(mkt.index),
            "premium": mkt.pricing.premium,
            "basis_avg": mkt.pricing.basis_avg,
            "premium_index": mkt.pricing.premium_index(),
            "funding_rate": mkt.pricing.last_rate,
            "funding_interval_ms": mkt.funding_interval_ms,
            "next_funding_time": mkt.next_funding_ms,
            "venues": mkt.pricing.venue_state(mkt.data_time_ms),
            "crowd_best_bid": spec.fmt_px(mkt.crowd_best_bid()),
            "crowd_best_ask": spec.fmt_px(mkt.crowd_best_ask()),
            "last_price": spec.fmt_px(mkt.last_trade_px),
            "frozen": engine.faults.frozen(symbol),
            "step": mkt.tick_index,
        }
    return {
        "server_time": engine.clock.now_ms(),
        "clock": engine.clock.mode,
        "clock_skew_ms": engine.clock.skew_ms,
        "next_funding_time": engine.next_funding_ms,
        "funding_rate": engine.funding_rate(),
        "funding_history": engine.funding_history,
        "insurance_fund": round(engine.insurance_fund, 8),
        "crowd_liquidations": engine.crowd_liquidations,
        "algo_orders": [algo_record(engine, a) for a in engine.algo_orders.values()],
        "markets": markets,
        "accounts": accounts,
        "open_orders": [order_record(engine, o) for o in engine.orders.values() if o.is_open],
        "orders": [order_record(engine, o) for o in engine.orders.values()],
        "trades": [
            {
                "id": t.trade_id,
                "orderId": t.order_id,
                "account": t.account,
                "symbol": t.symbol,
                "side": t.side,
                "price": engine.specs[t.symbol].fmt_px(t.price),
                "qty": engine.specs[t.symbol].fmt_qty(t.qty),
                "maker": t.maker,
                "commission": fmt_float(t.commission),
                "realizedPnl": fmt_float(t.realized_pnl),
                "time": t.time,
            }
            for t in engine.trades
        ],
        "liquidations": list(engine.liquidations),
        "faults": engine.faults.plan.model_dump(),
        "maintenance": engine.maintenance.snapshot(engine.clock.now_ms()),
        "countdown_log": list(engine.countdown_log),
        "limits": engine.limits.snapshot(),
        "counters": stats.as_dict(),
    }
