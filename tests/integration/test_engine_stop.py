"""The stop path cancels this run's orders and leaves everyone else's alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, run_cli


def _strategy(tmp_path: Path, url: str) -> Path:
    text = (ROOT / "strategies" / "grid.toml").read_text()
    text = text.replace('id = "sim"', f'id = "sim"\nurl = "{url}"', 1)
    (tmp_path / "grid.py").write_text((ROOT / "strategies" / "grid.py").read_text())
    # the manual order stands on a symbol the grid trades: arm the dead-man over it anyway
    path = tmp_path / "grid.toml"
    path.write_text(text + '\n[kill]\nforeign_orders = "arm"\n')
    return path


async def test_stop_cancels_only_this_runs_orders(tmp_path: Path, sim: Any) -> None:
    import ccxt.async_support as ccxt_async

    from perpbot.client.loopback import configure_loopback

    key, secret = sim.create_account()
    ex = ccxt_async.binanceusdm(
        {
            "apiKey": key,
            "secret": secret,
            "enableRateLimit": False,
            "options": {"fetchCurrencies": False},
        }
    )
    configure_loopback(ex, sim.base_url)
    try:
        await ex.load_markets()
        foreign = await ex.create_order(
            "BTC/USDT:USDT",
            "limit",
            "buy",
            0.002,
            58000.0,  # inside PERCENT_PRICE (mark +- 5 %)
            {"clientOrderId": "someone-else-1"},
        )
    finally:
        await ex.close()
    result = run_cli(
        "run",
        str(_strategy(tmp_path, sim.base_url)),
        "--duration",
        "4",
        "--json",
        env={"PERPBOT_SIM_API_KEY": key, "PERPBOT_SIM_API_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["orders"]["placed"] > 0 and summary["orders"]["open"] == 0
    open_orders = [o for o in sim.state()["open_orders"] if o.get("clientOrderId")]
    assert [o["clientOrderId"] for o in open_orders] == [foreign["clientOrderId"]]


# -- the stop sequence against exchange faults (the simulator's state is the truth) -------


def _run_stop_strategy(
    tmp_path: Path, url: str, name: str, creds: tuple[str, str], *args: str, kill: str = ""
) -> Any:
    """`perpbot run` (2 s) of tests/integration/stop_strategies/<name>.py on ``url``."""
    here = Path(__file__).resolve().parent / "stop_strategies"
    toml = tmp_path / f"{name}.toml"
    toml.write_text(
        f'[strategy]\nname = "{name}"\nfile = "{here / (name + ".py")}"\n'
        'symbols = ["BTC/USDT:USDT"]\ntick_interval = 0.2\n'
        f'[exchange]\nid = "sim"\nurl = "{url}"\n' + (f"[kill]\n{kill}\n" if kill else "")
    )
    env = {"PERPBOT_SIM_API_KEY": creds[0], "PERPBOT_SIM_API_SECRET": creds[1]}
    return run_cli("run", str(toml), "--duration", "2", *args, env=env)


def _idle_bot(tmp_path: Path, url: str, **strategy: Any) -> Path:
    from tests.integration.kill_strategies.support import write_strategy

    return write_strategy(
        tmp_path,
        url,
        params={"mode": "idle", "orders_per_symbol": 3},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.2, **strategy},
        kill={"deadman_countdown_s": 60},
    )


def test_every_cancel_answered_5xx_leaves_the_countdown_armed_and_says_so(
    sim_factory: Any, tmp_path: Path
) -> None:
    import signal
    import time

    from tests.integration.kill_strategies.support import (
        account_of,
        open_orders_of,
        quiet_market,
        start_bot,
        wait_until,
    )

    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    bot = start_bot(_idle_bot(tmp_path, sim.base_url, stop_timeout_s=3.0), tmp_path, creds)
    try:
        wait_until(
            lambda: (
                len(open_orders_of(sim.state(), creds[0])) == 3
                and account_of(sim.state(), creds[0])["countdowns"]
            ),
            timeout=30,
        )
        sim.set_faults(
            {"errors": {"rate": 1.0, "statuses": [503], "body": "html", "methods": ["DELETE"]}}
        )
        began = time.monotonic()
        bot.signal(signal.SIGTERM)
        code, _out, err = bot.finish(timeout=30)
        took = time.monotonic() - began
    finally:
        bot.stop()
    state = sim.state()
    assert len(open_orders_of(state, creds[0])) == 3  # no cancel got through
    assert "BTCUSDT" in account_of(state, creds[0])["countdowns"], "the countdown was disarmed"
    assert code == 1, err
    assert "could not confirm this run's orders gone" in err
    assert "left to the exchange's countdown" in err and "BTC/USDT:USDT" in err
    assert took < 3.0 + 10.0, f"the stop took {took:.1f} s, bound 3 s"


def test_a_clean_stop_cancels_confirms_then_disarms(sim_factory: Any, tmp_path: Path) -> None:
    import signal

    from tests.integration.kill_strategies.support import (
        account_of,
        open_orders_of,
        quiet_market,
        start_bot,
        wait_until,
    )

    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    bot = start_bot(_idle_bot(tmp_path, sim.base_url), tmp_path, creds)
    try:
        wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 3, timeout=30)
        bot.signal(signal.SIGTERM)
        code, _out, err = bot.finish(timeout=30)
    finally:
        bot.stop()
    state = sim.state()
    assert code == 0, err
    assert open_orders_of(state, creds[0]) == []
    assert not account_of(state, creds[0])["countdowns"]


def test_a_refused_start_leaves_no_countdown_armed(sim_factory: Any, tmp_path: Path) -> None:
    from tests.integration.kill_strategies.support import account_of, start_bot

    sim = sim_factory()
    creds = sim.create_account()
    toml = _idle_bot(tmp_path, sim.base_url)
    toml.write_text(
        toml.read_text().replace('"BTC/USDT:USDT"', '"BTC/USDT:USDT", "BTCX/USDT:USDT"', 1)
    )
    bot = start_bot(toml, tmp_path, creds)
    try:
        code, _out, err = bot.finish(timeout=30)
    finally:
        bot.stop()
    assert code == 2, err
    assert "BTCX/USDT:USDT" in err and "Traceback" not in err
    assert not account_of(sim.state(), creds[0])["countdowns"]


async def test_cancel_all_leaves_a_manual_order_standing(tmp_path: Path, sim: Any) -> None:
    import ccxt.async_support as ccxt_async

    from perpbot.client.loopback import configure_loopback

    key, secret = sim.create_account()
    ex = ccxt_async.binanceusdm(
        {"apiKey": key, "secret": secret, "enableRateLimit": False,
         "options": {"fetchCurrencies": False}}
    )  # fmt: skip
    configure_loopback(ex, sim.base_url)
    try:
        await ex.load_markets()
        manual = await ex.create_order(
            "BTC/USDT:USDT",
            "limit",
            "sell",
            0.002,
            62400.0,  # 4 % over the mark: inside PERCENT_PRICE (+- 5 %), too far to fill
            {"clientOrderId": "manual-1"},
        )
    finally:
        await ex.close()
    result = _run_stop_strategy(
        tmp_path,
        sim.base_url,
        "cancel_all",
        (key, secret),
        "--plain",
        kill='foreign_orders = "arm"',
    )
    assert result.returncode == 0, result.stderr
    assert "own open after cancel_all: 0" in result.stdout + result.stderr
    state = sim.state()
    standing = [o["clientOrderId"] for o in state["open_orders"] if o["account"] == key]
    assert standing == [manual["clientOrderId"]]
    mine = [o for o in state["orders"] if o["account"] == key and o["clientOrderId"] != "manual-1"]
    assert mine and all(o["status"] == "CANCELED" for o in mine)


def test_a_failed_on_start_trades_nothing_and_disarms_what_it_armed(
    sim_factory: Any, tmp_path: Path
) -> None:
    from tests.integration.kill_strategies.support import account_of, orders_of

    sim = sim_factory()
    key, secret = sim.create_account()
    result = _run_stop_strategy(tmp_path, sim.base_url, "fails_on_start", (key, secret), "--json")
    assert result.returncode == 1, result.stderr
    assert "fails_on_start.py:11 in on_start: RuntimeError: cannot load my model" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["deadman"]["armed"] == ["BTC/USDT:USDT"] and summary["deadman"]["disarmed"]
    state = sim.state()
    assert orders_of(state, key) == []
    assert not account_of(state, key)["countdowns"]
