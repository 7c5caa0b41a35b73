"""`perpbot status` as a user meets it: a subprocess reading what bots published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.fsutil import atomic_write_json
from tests.conftest import run_cli

BTC = "BTC/USDT:USDT"


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def bot_doc(run_id: str, pid: int, *, state: str = "running", **extra: Any) -> dict[str, Any]:
    now = time.time()
    risk = {
        "index": {
            BTC: {
                "symbol": BTC,
                "price": 60001.5,
                "healthy": False,
                "good": 1,
                "total": 3,
                "reason": "the BTC/USDT:USDT index has 1 good source of 3",
                "sources": [
                    {"name": "a", "price": 60001.5, "age_s": 0.2, "status": "good", "note": ""},
                    {"name": "b", "price": 60000.0, "age_s": 12.0, "status": "stale", "note": ""},
                    {"name": "c", "price": 66000.0, "age_s": 0.3, "status": "outlier", "note": ""},
                ],
                "ts": now,
            }
        },
        "reduce_only": {BTC: "the BTC/USDT:USDT index has 1 good source of 3"},
        "alerts": [
            {
                "key": "monitor:cancel_burst",
                "layer": "monitor",
                "code": "MONITOR_CANCEL_BURST",
                "sentence": "25 cancels in the last 10 s, far above the bot's own baseline",
                "since": now - 30,
                "last": now,
                "trip": False,
                "data": {},
            }
        ],
        "liquidation": {BTC: {"estimate": 52000.0, "brackets": "exchange"}},
        "budget": {
            "used_weight_1m": 321,
            "order_count_10s": 4,
            "last_limit_change": {
                "ts": now - 60,
                "layer": "ratelimit",
                "action": "tighten",
                "code": "RATE_TIGHTEN",
                "sentence": "a 429 from the exchange: budget cut to 50 %",
            },
        },
        "rejections": [{"ts": now, "code": "RISK_PRICE_BAND", "sentence": "limit buy too far"}],
        "orders": [
            {
                "symbol": BTC,
                "side": "sell",
                "type": "limit",
                "price": 60100.0,
                "remaining": 0.1,
                "reduce_only": True,
                "post_only": True,
                "client_order_id": "pb-x-1",
            }
        ],
        "checked": 12,
    }
    doc = {
        "run_id": run_id,
        "state": state,
        "pid": pid,
        "strategy": "grid",
        "exchange": "sim",
        "profile": None,
        "symbols": [BTC],
        "started_at": now - 125,
        "updated_at": now,
        "tick_interval": 1.0,
        "positions": {
            BTC: {
                "amount": 0.25,
                "entry_price": 60000.0,
                "mark_price": 60010.0,
                "unrealized_pnl": 2.5,
                "liquidation_price": None,
            }
        },
        "open_orders": 3,
        "snapshot": {
            "orders": {"placed": 10, "filled": 4, "open": 3, "cancelled": 3, "rejected": 1},
            "net_pnl": 1.25,
            "realized_pnl": 0.5,
            "unrealized_pnl": 2.5,
            "fees": 1.75,
            "equity": 10001.25,
            "marks": {BTC: 60010.0},
            "extras": {"risk": risk},
        },
    }
    doc.update(extra)
    return doc


@pytest.fixture
def bots(state_home: Path) -> dict[str, str]:
    d = state_home / "bots"
    runs = state_home / "runs"
    atomic_write_json(d / "run-live.json", bot_doc("run-live", os.getpid()))
    dead = bot_doc("run-dead", dead_pid())
    dead["snapshot"]["extras"]["rate"] = {  # what the rate limiter publishes, when it runs
        "weight_used": 900,
        "weight_limit": 1140,
        "weight_nominal": 2400,
        "weight_window": "1m",
        "factor": 0.5,
        "orders": {"10s": {"used": 7, "limit": 285}},
        "last_change": "a 429: the weight budget is cut to 50 %",
        "last_change_code": "RATE_TIGHTEN",
        "last_change_at": time.time() - 5,
        "blocked_for_s": 0.0,
        "banned_for_s": 0.0,
    }
    atomic_write_json(d / "run-dead.json", dead)
    atomic_write_json(
        d / "run-done.json", bot_doc("run-done", dead_pid(), state="stopping", strategy="old")
    )
    atomic_write_json(runs / "run-done" / "summary.json", {"end_reason": "duration"})
    (d / "torn.json").write_text('{"run_id": "x", ')  # a half-written file is skipped
    return {"live": "run-live", "dead": "run-dead", "done": "run-done"}


def test_json_for_scripts(bots: dict[str, str]) -> None:
    r = run_cli("status", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    states = {b["run_id"]: b["state"] for b in data["bots"]}
    assert states == {"run-live": "running", "run-dead": "dead"}  # stopped: only with --all
    live = next(b for b in data["bots"] if b["run_id"] == "run-live")
    (pos,) = live["positions"]
    assert pos["liquidation_price"] == 52000.0 and pos["liquidation_estimated"] is True
    assert pos["distance_pct"] == pytest.approx((60010 - 52000) / 60010 * 100, rel=1e-4)
    assert live["budget"]["used_weight_1m"] == 321
    assert live["alerts"][0]["code"] == "MONITOR_CANCEL_BURST"
    assert live["reduce_only"][BTC].startswith("the BTC/USDT:USDT index")
    assert data["kill"] is None and live["kill"] is None
    assert 120 < live["uptime_s"] < 200
    r = run_cli("status", "--json", "--all")
    done = next(b for b in json.loads(r.stdout)["bots"] if b["run_id"] == "run-done")
    assert done["state"] == "stopped" and done["end_reason"] == "duration"


def test_dashboard_at_a_glance(bots: dict[str, str]) -> None:
    r = run_cli("status", env={"COLUMNS": "160"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for words in (
        "kill switch: clear",
        "grid",
        "RUNNING",
        "DEAD",
        "BTC/USDT:USDT long 0.25 @ 60,000.00",
        "liq ~52,000.00 (13.3% away)",
        "open 3",
        "BTC/USDT:USDT sell 0.1 @ 60,100.00 reduce-only post-only",
        "net +1.2500",
        "weight 321/1m",
        "RATE_TIGHTEN: a 429 from the exchange",
        "UNHEALTHY 1/3",
        "b:stale",
        "c:outlier",
        "REDUCE-ONLY",
        "MONITOR_CANCEL_BURST",
        "RISK_PRICE_BAND",
        "weight 900/1140 per 1m",
        "cut to 50% of 2400",
        "orders 7/285 per 10s",
        "RATE_TIGHTEN: a 429: the weight budget",
    ):
        assert words in out, f"{words!r} not on the screen:\n{out}"
    assert "old" not in out  # the stopped bot is hidden without --all


def test_kill_switch_is_shown(bots: dict[str, str]) -> None:
    from perpbot.kill.sentinel import new_entry, write_sentinel

    write_sentinel(new_entry("cancel", "drawdown too deep", scope="all"))
    r = run_cli("status", env={"COLUMNS": "160"})
    assert "KILL SWITCH CANCEL" in r.stdout and "drawdown too deep" in r.stdout
    data = json.loads(run_cli("status", "--json").stdout)
    assert data["kill"]["level"] == "cancel"
    assert all(b["kill"]["level"] == "cancel" for b in data["bots"])


def test_no_bots(state_home: Path) -> None:
    r = run_cli("status")
    assert r.returncode == 0 and "no running bots" in r.stdout
    assert json.loads(run_cli("status", "--json").stdout)["bots"] == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--interval", "0"], "--interval: got 0"),
        (["--url", "http://127.0.0.1:1"], "--url: only meaningful with --live"),
    ],
)
def test_bad_usage_is_one_line_exit_2(state_home: Path, args: list[str], words: str) -> None:
    r = run_cli("status", *args)
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr


def test_status_starts_without_ccxt(bots: dict[str, str]) -> None:
    for args in (["status", "--json"], ["status"]):
        r = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "perpbot", *args],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=60,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()}
        assert not {"ccxt", "aiohttp"} & imported, sorted({"ccxt", "aiohttp"} & imported)
        assert ("rich" in imported) is (args == ["status"])
