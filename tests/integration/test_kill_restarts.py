"""Restarts and shared accounts never leave risk behind (the simulator's state is the truth).

- a bot SIGKILLed with resting orders and started again cancels (or adopts) what the dead
  run left, before it arms anything; if it cannot, it refuses to start and leaves the dead
  run's countdown as it was;
- orders the bot did not place on a symbol it trades: refused by default; traded without
  the dead-man on request;
- two bots on one (account, symbol): refused by default; side by side on request, where the
  first one out leaves the shared countdown armed for the other, and nobody disarms it
  under a dead run's orders.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from tests.integration.kill_strategies.support import (
    Bot,
    account_of,
    open_orders_of,
    orders_of,
    quiet_market,
    start_bot,
    wait_until,
    write_strategy,
)

BTC = "BTC/USDT:USDT"


def _bot_toml(
    tmp_path: Path,
    url: str,
    *,
    orders: int = 3,
    name: str = "hang",
    strategy: dict[str, Any] | None = None,
    kill: dict[str, Any] | None = None,
) -> Path:
    return write_strategy(
        tmp_path,
        url,
        params={"mode": "idle", "orders_per_symbol": orders},
        strategy={"name": name, "symbols": [BTC], "tick_interval": 0.2, **(strategy or {})},
        kill={"deadman_countdown_s": 30, **(kill or {})},
        name=f"{name}-{orders}-{len(strategy or {})}{len(kill or {})}.toml",
    )


def _open_cids(sim: Any, key: str) -> set[str]:
    return {o["clientOrderId"] for o in open_orders_of(sim.state(), key)}


def _countdown(sim: Any, key: str) -> Any:
    return account_of(sim.state(), key)["countdowns"].get("BTCUSDT")


def _running_with(sim: Any, key: str, n: int) -> bool:
    return len(open_orders_of(sim.state(), key)) == n and _countdown(sim, key) is not None


def _start(bots: list[Bot], *args: Any, tag: str) -> Bot:
    bot = start_bot(*args, tag=tag)
    bots.append(bot)
    return bot


def _sigkilled_run(sim: Any, tmp_path: Path, creds: tuple[str, str], bots: list[Bot]) -> set[str]:
    """A bot with 3 resting orders and an armed countdown, SIGKILLed: its orders stand."""
    first = _start(bots, _bot_toml(tmp_path, sim.base_url), tmp_path, creds, tag="first")
    wait_until(lambda: _running_with(sim, creds[0], 3), timeout=30)
    left = _open_cids(sim, creds[0])
    first.signal(signal.SIGKILL)
    first.proc.wait(10)
    assert _open_cids(sim, creds[0]) == left
    return left


def test_a_restarted_bot_cancels_what_the_killed_run_left_before_arming(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    left = _sigkilled_run(sim, tmp_path, creds, bots)

    again = _start(bots, _bot_toml(tmp_path, sim.base_url), tmp_path, creds, tag="again")
    wait_until(lambda: len(_open_cids(sim, creds[0]) - left) == 3, timeout=30)
    by_cid = {o["clientOrderId"]: o for o in orders_of(sim.state(), creds[0])}
    assert all(by_cid[c]["status"] == "CANCELED" for c in left)
    assert not (_open_cids(sim, creds[0]) & left)
    # `perpbot status` says what the start found (the dashboard and --json)
    from tests.conftest import run_cli

    status = json.loads(run_cli("status", "--json").stdout)
    said = [s for b in status["bots"] if b["state"] == "running" for s in b["start"]]
    assert [s["code"] for s in said] == ["START_LEFTOVERS_CANCELLED"]
    assert all(c in said[0]["sentence"] for c in left)
    assert "START_LEFTOVERS_CANCELLED" in run_cli("status").stdout
    again.signal(signal.SIGTERM)
    code, out, err = again.finish(30)
    assert code == 0, err
    assert "START_LEFTOVERS_CANCELLED" in out and all(c in out for c in left)
    state = sim.state()
    assert not open_orders_of(state, creds[0])
    assert not account_of(state, creds[0])["countdowns"]  # the last one out disarmed
    assert "Traceback" not in err


def test_a_restart_that_cannot_cancel_the_leftovers_refuses_and_leaves_the_countdown(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    left = _sigkilled_run(sim, tmp_path, creds, bots)
    fires_at = _countdown(sim, creds[0])
    sim.set_faults(
        {"errors": {"rate": 1.0, "statuses": [503], "body": "html", "methods": ["DELETE"]}}
    )
    again = _start(bots, _bot_toml(tmp_path, sim.base_url), tmp_path, creds, tag="again")
    code, _out, err = again.finish(60)
    sim.set_faults({})
    assert code == 1, err
    assert "refusing to start" in err and "earlier run" in err and "Traceback" not in err
    # the dead run's orders stand, under its countdown: neither disarmed nor pushed back
    assert _open_cids(sim, creds[0]) == left
    assert _countdown(sim, creds[0]) == fires_at


def test_a_restarted_bot_can_adopt_and_then_cancels_them_at_its_stop(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    left = _sigkilled_run(sim, tmp_path, creds, bots)
    toml = _bot_toml(tmp_path, sim.base_url, orders=0, strategy={"leftover_orders": "adopt"})
    again = _start(bots, toml, tmp_path, creds, tag="again")
    wait_until(lambda: "START_LEFTOVERS_ADOPTED" in again.out.read_text(), timeout=30)
    assert _open_cids(sim, creds[0]) == left  # adopted, not cancelled
    again.signal(signal.SIGTERM)
    code, _out, err = again.finish(30)
    assert code == 0, err
    state = sim.state()
    assert not open_orders_of(state, creds[0])  # its stop cancelled them as its own
    assert not account_of(state, creds[0])["countdowns"]


def _manual_order(sim: Any, creds: tuple[str, str]) -> str:
    ex = ccxt.binanceusdm({"apiKey": creds[0], "secret": creds[1], "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    ex.load_markets()
    mark = float(ex.fetch_funding_rate(BTC)["markPrice"])
    ex.create_order(
        BTC, "limit", "buy", 0.002, round(mark * 0.97, 1), {"newClientOrderId": "hand-1"}
    )
    return "hand-1"


def test_orders_the_bot_did_not_place_are_refused_by_default(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    manual = _manual_order(sim, creds)
    bot = _start(bots, _bot_toml(tmp_path, sim.base_url), tmp_path, creds, tag="bot")
    code, _out, err = bot.finish(30)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and manual in lines[0] and "foreign_orders" in lines[0]
    state = sim.state()
    assert not account_of(state, creds[0])["countdowns"]  # nothing armed
    assert [o["clientOrderId"] for o in orders_of(state, creds[0])] == [manual]


def test_no_deadman_on_a_symbol_with_manual_orders_keeps_them_out_of_any_countdown(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    manual = _manual_order(sim, creds)
    toml = _bot_toml(tmp_path, sim.base_url, kill={"foreign_orders": "no_deadman"})
    bot = _start(bots, toml, tmp_path, creds, tag="bot")
    wait_until(lambda: len(_open_cids(sim, creds[0])) == 4, timeout=30)
    assert _countdown(sim, creds[0]) is None
    bot.signal(signal.SIGTERM)
    code, out, err = bot.finish(30)
    assert code == 0, err
    assert "START_FOREIGN_NO_DEADMAN" in out
    assert _open_cids(sim, creds[0]) == {manual}


def test_a_second_bot_on_the_same_account_and_symbol_is_refused_by_default(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    _start(bots, _bot_toml(tmp_path, sim.base_url), tmp_path, creds, tag="a")
    wait_until(lambda: _running_with(sim, creds[0], 3), timeout=30)
    fires_at = _countdown(sim, creds[0])
    cases = (("other", {}), ("hang", {"share_symbols": True}), ("third", {"share_symbols": True}))
    for name, opt_in in cases:
        toml = _bot_toml(tmp_path, sim.base_url, orders=2, name=name, strategy=opt_in)
        b = _start(bots, toml, tmp_path, creds, tag=f"b-{name}")
        code, _out, err = b.finish(30)
        assert code == 2, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and "refusing to start" in lines[0] and "already trades" in lines[0]
    assert "share_symbols = true" in (tmp_path / "b-other.err").read_text()
    assert "cannot be told apart" in (tmp_path / "b-hang.err").read_text()
    assert "without [strategy] share_symbols = true" in (tmp_path / "b-third.err").read_text()
    assert len(open_orders_of(sim.state(), creds[0])) == 3  # refusals placed nothing
    assert _countdown(sim, creds[0]) >= fires_at  # and disarmed nothing


def test_two_bots_opted_in_the_first_out_leaves_the_shared_countdown_armed(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    toml = _bot_toml(tmp_path, sim.base_url, strategy={"share_symbols": True})
    a = _start(bots, toml, tmp_path, creds, tag="a")
    wait_until(lambda: _running_with(sim, creds[0], 3), timeout=30)
    a_cids = _open_cids(sim, creds[0])
    toml = _bot_toml(
        tmp_path, sim.base_url, orders=2, name="other", strategy={"share_symbols": True}
    )
    b = _start(bots, toml, tmp_path, creds, tag="b")
    wait_until(lambda: len(_open_cids(sim, creds[0])) == 5, timeout=30)
    b_cids = _open_cids(sim, creds[0]) - a_cids

    a.signal(signal.SIGTERM)
    code, out, err = a.finish(30)
    assert code == 0, err
    assert "KILL_DEADMAN_SHARED" in out
    assert _open_cids(sim, creds[0]) == b_cids  # a cancelled its own, not b's
    assert _countdown(sim, creds[0]) is not None  # b's orders stay under the countdown

    b.signal(signal.SIGTERM)
    code, out, err = b.finish(30)
    assert code == 0, err
    state = sim.state()
    assert not open_orders_of(state, creds[0]) and not account_of(state, creds[0])["countdowns"]


def test_nobody_disarms_under_a_dead_runs_orders(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    """Strategy A is SIGKILLed with orders; B (another strategy, arming over them on
    purpose) starts and stops: its stop leaves the countdown armed, and it fires."""
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    dead = _sigkilled_run(sim, tmp_path, creds, bots)
    toml = _bot_toml(
        tmp_path,
        sim.base_url,
        orders=1,
        name="other",
        kill={"foreign_orders": "arm", "deadman_countdown_s": 2, "deadman_refresh_s": 0.5},
    )
    b = _start(bots, toml, tmp_path, creds, tag="b")
    wait_until(lambda: len(_open_cids(sim, creds[0])) == 4, timeout=30)
    b.signal(signal.SIGTERM)
    code, out, err = b.finish(30)
    assert code == 0, err
    assert "START_FOREIGN_UNDER_DEADMAN" in out and "KILL_DEADMAN_SHARED" in out
    # b's stop cancels only its own order; nobody else cancels the dead run's: only the
    # countdown b left armed (unrefreshed, 2 s) can, and does
    wait_until(lambda: not open_orders_of(sim.state(), creds[0]), timeout=15)
    by_cid = {o["clientOrderId"]: o for o in orders_of(sim.state(), creds[0])}
    assert all(by_cid[c]["status"] == "CANCELED" for c in dead)


def test_bots_sharing_a_symbol_each_see_their_own_position(
    sim_factory: Any, tmp_path: Path, state_home: Path, bots: list[Bot]
) -> None:
    """The account holds 0.014 BTC long; bot a bought 0.01 and bot b 0.004: each reports
    its own (from its fills), not the account's."""
    import json

    from tests.integration.kill_strategies.support import position_of

    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()

    def own_position(tag: str) -> Any:
        for path in (state_home / "bots").glob("*.json"):
            doc = json.loads(path.read_text())
            if doc["strategy"] == tag and doc["state"] == "running":
                return (doc["positions"].get(BTC) or {}).get("amount")
        return None

    def start(name: str, amount: float) -> Bot:
        toml = write_strategy(
            tmp_path,
            sim.base_url,
            params={"mode": "idle", "orders_per_symbol": 0, "open_position": amount},
            strategy={"name": name, "symbols": [BTC], "tick_interval": 0.2, "share_symbols": True},
            name=f"{name}.toml",
        )
        return _start(bots, toml, tmp_path, creds, tag=name)

    a = start("a", 0.01)
    wait_until(lambda: own_position("a"), timeout=30)
    b = start("b", 0.004)
    wait_until(lambda: own_position("b") and own_position("a"), timeout=30)
    assert position_of(sim.state(), creds[0], "BTCUSDT") == pytest.approx(0.014)
    wait_until(lambda: own_position("a") == pytest.approx(0.01), timeout=10)
    assert own_position("b") == pytest.approx(0.004)
    for bot in (a, b):
        bot.signal(signal.SIGTERM)
        code, _out, err = bot.finish(30)
        assert code == 0, err


def test_a_run_scoped_direct_kill_cancels_the_strategys_leftovers_and_nothing_else(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    """The run is gone (SIGKILLed); `perpbot kill --direct --run hang` cancels what it left
    and leaves a trader's manual order on the same symbol alone."""
    from tests.conftest import run_cli
    from tests.integration.kill_strategies.support import sim_env

    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    left = _sigkilled_run(sim, tmp_path, creds, bots)
    manual = _manual_order(sim, creds)
    result = run_cli(
        "kill", "--direct", "--run", "hang", "--url", sim.base_url, "--wait", "0",
        env=sim_env(creds),
    )  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
    assert _open_cids(sim, creds[0]) == {manual}
    by_cid = {o["clientOrderId"]: o for o in orders_of(sim.state(), creds[0])}
    assert all(by_cid[c]["status"] == "CANCELED" for c in left)


def test_a_start_that_cannot_list_the_open_orders_refuses_and_arms_nothing(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    sim.set_faults({"errors": {"rate": 1.0, "statuses": [502], "paths": ["/fapi/v1/openOrders"]}})
    bot = _start(bots, _bot_toml(tmp_path, sim.base_url), tmp_path, creds, tag="bot")
    code, _out, err = bot.finish(60)
    sim.set_faults({})
    assert code == 1, err
    assert "could not list the open orders on BTC/USDT:USDT" in err and "Traceback" not in err
    state = sim.state()
    assert not orders_of(state, creds[0]) and not account_of(state, creds[0])["countdowns"]


def test_a_start_whose_listing_outlasts_the_sweeps_bound_refuses_and_arms_nothing(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    """The listing hangs (each answer 30 s late): the sweep's own bound (10 s) ends it, with
    the same refusal as a failed listing, and nothing is armed."""
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    sim.set_faults({"latency": {"fixed_ms": 30000, "paths": ["/fapi/v1/openOrders"]}})
    bot = _start(bots, _bot_toml(tmp_path, sim.base_url), tmp_path, creds, tag="bot")
    code, _out, err = bot.finish(60)
    sim.set_faults({})
    assert code == 1, err
    assert "could not list the open orders on BTC/USDT:USDT within 10 s" in err, err
    assert "nothing was armed" in err and "Traceback" not in err
    state = sim.state()
    assert not orders_of(state, creds[0]) and not account_of(state, creds[0])["countdowns"]
