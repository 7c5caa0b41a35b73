"""The run panel's extras are one readable line per concern, never a raw dict."""

from __future__ import annotations

from perpbot.cli.status_view import budget_line
from perpbot.engine.output import extras_lines, summary_lines


def test_extras_lines_are_readable() -> None:
    extras = {
        "rate": {
            "weight_used": 192,
            "weight_limit": 2280,
            "weight_nominal": 2400,
            "weight_window": "1m",
            "banned_for_s": 0.0,
            "blocked_for_s": 12.4,
            "last_change": "weight budget cut 2400 -> 1200/min after 429",
        },
        "risk": {
            "index": {"BTC/USDT:USDT": {"price": 60001.5, "healthy": False, "good": 1, "total": 3}},
            "liquidation": {"BTC/USDT:USDT": {"distance_pct": 12.345}},
            "alerts": [{"code": "MONITOR_CANCEL_BURST"}],
        },
        "note": "hello",
        "nested": {"ignored": True},
    }
    lines = dict(extras_lines(extras))
    assert lines["rate"] == "weight 192/2280 per 1m (exchange 2400)  waiting 12 s"
    assert lines["last limit"].startswith("weight budget cut")
    assert lines["index BTC/USDT:USDT"] == "60001.5 (UNHEALTHY, 1/3 sources)"
    assert lines["liq BTC/USDT:USDT"] == "12.3% away"
    assert lines["alerts"] == "MONITOR_CANCEL_BURST"
    assert lines["note"] == "hello" and "nested" not in lines
    assert all("{" not in v for v in lines.values())


def test_summary_lines_name_the_essentials() -> None:
    text = "\n".join(
        summary_lines(
            {
                "run_id": "r1",
                "end_reason": "duration",
                "runtime_s": 20.0,
                "orders": {"placed": 7, "filled": 2, "cancelled": 5, "rejected": 1, "expired": 0},
                "fills": 2,
                "volume": 360.0,
                "fees": 0.07,
                "funding": 0.01,
                "realized_pnl": 0.1,
                "unrealized_pnl": -0.02,
                "net_pnl": 0.02,
                "final_positions": {},
                "rejections": {"RISK_MAX_NOTIONAL": 1},
                "run_dir": "/x",
            }
        )
    )
    for needle in (
        "placed 7",
        "filled 2",
        "cancelled 5",
        "rejected 1",
        "funding",
        "realised +0.1000",
        "final position: flat",
        "RISK_MAX_NOTIONAL",
    ):
        assert needle in text


def test_an_orders_only_block_is_said_as_such() -> None:
    """A 429 about the order count (-1015) holds new orders only: the run panel and
    `perpbot status` say that, not that every request waits."""
    rate = {
        "weight_used": 10,
        "weight_limit": 2280,
        "weight_nominal": 2400,
        "weight_window": "1m",
        "banned_for_s": 0.0,
        "blocked_for_s": 0.0,
        "orders_blocked_for_s": 7.2,
    }
    line = dict(extras_lines({"rate": rate}))["rate"]
    assert line.endswith("new orders waiting 7 s (order count)")
    status = budget_line({"rate": rate})
    assert "new orders held back 7s" in status and " held back 7s" not in status.replace(
        "new orders held back", ""
    )
