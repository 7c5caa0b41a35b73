"""The flatten and cancel procedures against a scripted in-memory exchange.

Integration tests run both against the simulator; here the exchange misbehaves in ways the
simulator does not on demand (a book too thin for the cap, failing requests).
"""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.client.request import OrderSpec
from perpbot.errors import describe_error
from perpbot.kill.cancel import cancel_open_orders
from perpbot.kill.flatten import FlattenPolicy, capped_price, flatten_positions
from perpbot.kill.ops import ExchangeOps

SYM = "BTC/USDT:USDT"


class Precision:
    def price_to_precision(self, symbol: str, price: float) -> str:
        return f"{round(price, 1)}"

    def amount_to_precision(self, symbol: str, amount: float) -> str:
        return f"{round(amount, 3)}"


class FakeExchange:
    """Positions, a book top, open orders; limit IOC orders fill only within ``depth_px``."""

    def __init__(self, position: float, *, bid: float = 60000.0, fill_limits: bool = True) -> None:
        self.position = position
        self.bid, self.ask = bid, bid + 0.1
        self.fill_limits = fill_limits
        self.placed: list[OrderSpec] = []
        self.open: list[dict[str, Any]] = []
        self.fail_fetch_open = 0
        self.exchange = Precision()
        self.calls: list[tuple[str, dict[str, Any]]] = []  # raw endpoint calls (algo cancels)

    def market(self, symbol: str) -> dict[str, Any]:
        return {"id": symbol.split("/")[0] + "USDT", "symbol": symbol}

    async def call(self, method: str, params: dict[str, Any], **_kw: Any) -> dict[str, Any]:
        self.calls.append((method, params))
        return {"code": 200}

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[dict[str, Any]]:
        return [{"symbol": SYM, "info": {"positionAmt": str(self.position)}}]

    async def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        return {"bids": [[self.bid, 1.0]], "asks": [[self.ask, 1.0]]}

    async def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        if self.fail_fetch_open:
            self.fail_fetch_open -= 1
            raise TimeoutError("GET http://127.0.0.1/fapi/v1/openOrders?signature=abc timed out")
        return list(self.open)

    async def place(self, spec: OrderSpec) -> dict[str, Any]:
        self.placed.append(spec)
        fills = spec.type == "market" or self.fill_limits
        if fills and spec.reduce_only:
            sign = -1 if spec.side == "sell" else 1
            self.position = round(self.position + sign * min(spec.amount, abs(self.position)), 8)
        return {"status": "closed" if fills else "expired", "filled": spec.amount if fills else 0}

    async def cancel_all(self, symbol: str) -> None:
        self.open.clear()

    async def cancel_one(self, order: dict[str, Any], symbol: str) -> None:
        self.open.remove(order)

    def ops(self) -> ExchangeOps:
        return ExchangeOps(
            client=self,  # type: ignore[arg-type]
            place=self.place,
            cancel_all=self.cancel_all,
            cancel_one=self.cancel_one,
        )


async def test_limit_orders_capped_at_the_slippage_limit_close_a_long() -> None:
    ex = FakeExchange(0.02)
    report = await flatten_positions(ex.ops(), [SYM], FlattenPolicy(slippage_pct=0.5))
    assert ex.position == 0 and report.errors == []
    (spec,) = ex.placed
    assert (spec.type, spec.side, spec.time_in_force, spec.reduce_only) == (
        "limit", "sell", "IOC", True
    )  # fmt: skip
    assert spec.price == pytest.approx(60000.0 * 0.995)
    assert report.closed == [
        {"symbol": SYM, "from": 0.02, "to": 0.0, "orders": report.closed[0]["orders"]}
    ]


async def test_falls_back_to_market_when_the_cap_cannot_be_met() -> None:
    ex = FakeExchange(-0.05, fill_limits=False)
    report = await flatten_positions(ex.ops(), [SYM], FlattenPolicy(limit_attempts=2))
    assert ex.position == 0 and report.errors == []
    assert [(s.type, s.side) for s in ex.placed] == [
        ("limit", "buy"), ("limit", "buy"), ("market", "buy")
    ]  # fmt: skip
    assert all(s.reduce_only for s in ex.placed)
    assert ex.placed[0].price == pytest.approx((60000.1) * 1.005, abs=0.1)


async def test_a_flat_symbol_places_nothing_and_a_stuck_one_reports_what_is_left() -> None:
    flat = FakeExchange(0.0)
    report = await flatten_positions(flat.ops(), [SYM], FlattenPolicy())
    assert flat.placed == [] and report.closed == [] and report.errors == []
    # flat: its conditional orders (stops) protect nothing and are cancelled
    assert flat.calls == [("fapiprivate_delete_algoopenorders", {"symbol": "BTCUSDT"})]
    assert report.stops_cancelled == [SYM]

    stuck = FakeExchange(0.01, fill_limits=False)

    async def refuse(spec: OrderSpec) -> dict[str, Any]:
        stuck.placed.append(spec)
        raise RuntimeError("exchange says no")

    ops = stuck.ops()
    ops.place = refuse
    report = await flatten_positions(ops, [SYM], FlattenPolicy(limit_attempts=1, timeout_s=0.5))
    assert report.errors and "position still +0.01" in report.errors[0]
    assert all(s.reduce_only for s in stuck.placed)
    assert report.closed[0]["orders"][0]["error"] == "RuntimeError: exchange says no"
    assert stuck.calls == [] and report.stops_cancelled == []  # not flat: the stop stays


def test_capped_price_moves_against_us_by_the_cap() -> None:
    ex = FakeExchange(0.0)
    assert capped_price(ex.ops(), SYM, "sell", 100.0, 1.0) == 99.0
    assert capped_price(ex.ops(), SYM, "buy", 100.0, 1.0) == 101.0


async def test_cancel_retries_after_a_failed_check_and_hides_the_signature() -> None:
    ex = FakeExchange(0.0)
    ex.open = [{"clientOrderId": f"pb-x-{i}", "id": str(i), "symbol": SYM} for i in range(3)]
    ex.fail_fetch_open = 2
    report = await cancel_open_orders(ex.ops(), [SYM], {SYM: list(ex.open)})
    assert ex.open == [] and report.errors == []
    assert [c["client_order_id"] for c in report.cancelled] == ["pb-x-0", "pb-x-1", "pb-x-2"]

    ex.fail_fetch_open = 10**6
    report = await cancel_open_orders(ex.ops(), [SYM], {}, deadline_s=0.3)
    assert report.errors and "signature" not in " ".join(report.errors)
    assert "checking open orders on BTC/USDT:USDT: TimeoutError" in report.errors[-1]


async def test_cancel_only_touches_the_orders_it_is_told_to() -> None:
    ex = FakeExchange(0.0)
    ours = {"clientOrderId": "pb-ours-1", "id": "1", "symbol": SYM}
    theirs = {"clientOrderId": "manual-7", "id": "2", "symbol": SYM}
    ex.open = [ours, theirs]
    report = await cancel_open_orders(
        ex.ops(), [SYM], {SYM: [ours]}, only=lambda o: o["clientOrderId"].startswith("pb-ours")
    )
    assert ex.open == [theirs]
    assert [c["client_order_id"] for c in report.cancelled] == ["pb-ours-1"]


def test_describe_error_cuts_query_strings() -> None:
    exc = RuntimeError("binanceusdm GET https://x.test/fapi/v1/order?symbol=A&signature=s3cr3t 503")
    text = describe_error(exc)
    assert "s3cr3t" not in text and "https://x.test/fapi/v1/order?..." in text
