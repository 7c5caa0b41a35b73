"""Risk figures: the pre-trade pass per order and the index update, in microseconds.

    /work/venv/bin/python bench/risk.py [--n 20000]

Target: under 50 us per order for all checks together. Three passes are timed:
- ``checks``: ``pretrade.run_checks`` with every check switched on (a pass that accepts the
  order, so every row of the table runs), 2 symbols held, 20 open orders, margin with brackets;
- ``gate``: what the RiskGate adds per order: building the CheckInput from the AccountView,
  the index basket and the rate windows, then the checks;
- ``index``: one basket update (median, MAD outlier rejection, staleness, health) for 3
  sources (one 10 % off) and 7 sources (one 10 % off, one frozen).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from perpbot.client.account import AccountView
from perpbot.client.request import OrderSpec
from perpbot.client.setup import Credentials, Setup
from perpbot.config import ExchangeSection, IndexSection, RiskSection, StrategyFile
from perpbot.events import EventBus
from perpbot.risk.gate import RiskGate
from perpbot.risk.index import Quote, aggregate
from perpbot.risk.inputs import CheckInput, MarginInput, RateCounts
from perpbot.risk.margin import AccountMargin, Brackets, Holding
from perpbot.risk.pretrade import run_checks

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
TIERS = [
    {"minNotional": f, "maxNotional": c, "maintenanceMarginRate": r, "maxLeverage": lv,
     "info": {"cum": cum}}
    for lv, f, c, r, cum in (
        (125, 0, 50_000, 0.004, 0), (100, 50_000, 600_000, 0.005, 50),
        (75, 600_000, 3_000_000, 0.0065, 950), (50, 3_000_000, 12_000_000, 0.01, 11_450),
    )
]  # fmt: skip
RISK = {
    "max_order_notional": 50_000,
    "max_position_notional": 200_000,
    "max_leverage": 10,
    "max_open_orders": 100,
    "max_order_rate": 1000,
    "max_cancel_rate": 1000,
    "price_band_pct": 2.0,
    "max_decision_age_s": 5.0,
    "liquidation_band_pct": 5.0,
    "symbols": {BTC: {"max_position_notional": 100_000, "max_open_orders": 50}},
}


def time_us(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(median, best) microseconds per call over ``n`` calls, in 20 batches."""
    per_batch = max(1, n // 20)
    for _ in range(per_batch * 2):  # warm up: caches, branch predictors, CPU clock
        fn()
    samples = []
    for _ in range(20):
        t0 = time.perf_counter_ns()
        for _ in range(per_batch):
            fn()
        samples.append((time.perf_counter_ns() - t0) / per_batch / 1000.0)
    return statistics.median(samples), min(samples)


def account() -> AccountView:
    view = AccountView()
    view.set_positions(
        [
            {"symbol": BTC, "info": {"positionAmt": "0.5"}, "entryPrice": 59_000.0},
            {"symbol": ETH, "info": {"positionAmt": "-3"}, "entryPrice": 3_050.0},
        ]
    )
    for k in range(20):
        sym, side = (BTC, "buy") if k % 2 else (ETH, "sell")
        view.order_placed(
            {"id": str(k), "clientOrderId": f"pb-x-{k}", "symbol": sym, "side": side,
             "type": "limit", "amount": 0.01, "remaining": 0.01, "price": 59_000.0,
             "status": "open", "reduceOnly": k == 3}
        )  # fmt: skip
    view.equity = 25_000.0
    return view


def bench_checks(n: int) -> tuple[float, float]:
    cfg = RiskSection(**RISK)
    brackets = Brackets.from_tiers(TIERS)
    view = account()
    holdings = {
        BTC: Holding(0.5, 59_000.0, 60_000.0, 20.0, brackets),
        ETH: Holding(-3.0, 3_050.0, 3_000.0, 20.0, brackets),
    }
    bids = [[60_000.0 - 0.1 * i, 1.0] for i in range(50)]
    spec = OrderSpec(BTC, "buy", "limit", 0.05, 60_010.0, decided_price=60_000.0)
    margin = MarginInput(AccountMargin(25_000.0, holdings, 500.0), 60_000.0, 20.0, brackets, bids)
    orders = list(view.orders.values())

    def once() -> object:
        spec.decided_at = time.time()
        i = CheckInput(
            spec=spec,
            now=time.time(),
            position=0.5,
            positions=view.positions,
            prices={BTC: 60_000.0, ETH: 3_000.0},
            index=60_000.0,
            orders=orders,
            reduce_only_room=0.49,
            equity=25_000.0,
            rates=RateCounts(3, 5, 1, 2),
            margin=margin,
        )
        r = run_checks(i, cfg)
        assert r is None, r
        return r

    return time_us(once, n)


def bench_gate(n: int) -> tuple[float, float]:
    cfg = StrategyFile.model_validate(
        {"strategy": {"name": "b", "file": "b.py", "symbols": [BTC, ETH]}, "risk": RISK}
    )
    setup = Setup(
        exchange=ExchangeSection(),
        command="run",
        run_id="bench",
        bus=EventBus(),
        credentials=Credentials(api_key=None, secret=None),
        config=cfg,
        account=account(),
    )

    class Exchange:
        def market(self, symbol: str) -> dict[str, float]:
            return {"contractSize": 1.0}

    gate = RiskGate(setup, Exchange(), cfg)
    gate.state._marks = lambda: {BTC: 60_000.0, ETH: 3_000.0}
    gate.state.brackets = {BTC: Brackets.from_tiers(TIERS), ETH: Brackets.from_tiers(TIERS)}
    reading = aggregate(BTC, [Quote(s, 60_000.0, time.time(), time.time()) for s in "abc"],
                        time.time(), IndexSection())  # fmt: skip
    gate.state.index[BTC] = reading
    spec = OrderSpec(BTC, "buy", "limit", 0.05, 60_010.0, decided_price=60_000.0)

    def once() -> object:
        now = time.time()
        spec.decided_at = now
        r = run_checks(gate.check_input(spec, now), gate.cfg)
        assert r is None, r
        return r

    return time_us(once, n)


def bench_index(n: int, sources: int) -> tuple[float, float]:
    cfg = IndexSection(min_sources=2)
    now = time.time()
    broken = [Quote("off", 66_000.0, now, now)]  # one source 10 % off, and one frozen
    if sources > 3:
        broken.append(Quote("frozen", 60_000.0, now - 60.0, now))
    good = sources - len(broken)
    quotes = [Quote(f"s{k}", 60_000.0 + k * 1.5, now - 0.5, now) for k in range(good)] + broken

    def once() -> object:
        r = aggregate(BTC, quotes, now, cfg)
        assert r.healthy
        return r

    return time_us(once, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    n = ap.parse_args().n
    rows = [
        ("pre-trade checks, all on (per order)", bench_checks(n)),
        ("gate: build input + checks (per order)", bench_gate(n)),
        ("index update, 3 sources", bench_index(n, 3)),
        ("index update, 7 sources", bench_index(n, 7)),
    ]
    calib = time_us(lambda: sum(range(1000)), n)[1]
    print(f"perpbot risk bench ({n} calls each; median and best of 20 batches)")
    print(f"  machine: sum(range(1000)) takes {calib:.2f} us here (about 6 us on a quiet laptop)")
    for name, (med, best) in rows:
        print(f"  {name:<42} {med:8.2f} us   (best batch {best:.2f} us)")
    verdict = "met" if rows[0][1][0] < 50.0 else "NOT met"
    print(f"  target: all checks together under 50 us per order (median): {verdict}")


if __name__ == "__main__":
    main()
