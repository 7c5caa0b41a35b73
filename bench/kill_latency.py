"""Kill-switch latency: from `perpbot kill` starting to the last order cancelled at the exchange.

Each trial starts a `perpbot run` bot (paper trading on a loopback simulator run by this
script) with ``--orders`` resting orders on each of 2 symbols, waits until they all rest,
then runs `perpbot kill --wait 0` and reads the simulator's cancel timestamps. Trials run
with a healthy strategy (``idle``: returns at once every tick) and a hung one (``sleep``:
on_tick never returns); ``--modes idle,sleep,loop`` adds a strategy spinning in a busy loop.
``locked`` is ``idle`` with the run's SQLite rate-limit store write-locked (``BEGIN
EXCLUSIVE``) by another process for 5 s from just before the kill (on a simulator with
one-second weight windows, so that the bot's leased budget is void and its cancels need the
locked store): the row "store write-locked by another process", same target as e2e.

Figures (median and max over ``--trials``):
  e2e         `perpbot kill` starting -> the last order cancelled at the simulator
  write->1st  the sentinel written -> the first cancel arriving at the simulator
  write->last the sentinel written -> the last cancel arriving at the simulator
  cli         wall time of `perpbot kill --wait 0` itself (start to exit)
and, measured in the same run, the wall time of `perpbot kill` (writing the sentinel, no bot
running) against `python -c "import ccxt"`.

Targets: e2e median < 500 ms (locked too); write->1st < 150 ms;
`perpbot kill` <= 20% of `import ccxt`. perpbot runs with its bytecode cached, as pip installs
it (bench/support/bytecode.py).
Usage: python bench/kill_latency.py [--trials 10] [--orders 12] [--modes idle,sleep,locked]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.bytecode import installed_env, note
from bench.support.storelock import hold_write_lock, store_path
from perpbot.sim import SimConfig, start_in_thread
from perpbot.sim.config import MarketConfig

ROOT = Path(__file__).resolve().parents[1]
HANG = ROOT / "tests" / "integration" / "kill_strategies"
PY = sys.executable
LOCK_S = 5.0
LABELS = {"locked": "store write-locked by another process"}


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"bench: timed out waiting for {what}")


def _strategy(home: Path, url: str, mode: str, orders: int) -> Path:
    doc = tomllib.loads((HANG / "hang.toml").read_text())
    doc["strategy"]["file"] = str(HANG / "hang.py")
    doc["strategy"]["params"].update(mode=mode, orders_per_symbol=orders)
    doc["exchange"]["url"] = url
    path = home / "bench.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def trial(sim: Any, mode: str, orders: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="perpbot-killbench-"))
    key, secret = sim.create_account()
    env = installed_env(
        PERPBOT_HOME=str(home), PERPBOT_SIM_API_KEY=key, PERPBOT_SIM_API_SECRET=secret
    )
    toml = _strategy(home, sim.base_url, "idle" if mode == "locked" else mode, orders)
    holder: subprocess.Popen[str] | None = None
    bot = subprocess.Popen(
        [PY, "-m", "perpbot", "run", str(toml), "--plain"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=str(ROOT),
    )  # fmt: skip
    try:
        n = 2 * orders

        def resting() -> bool:
            st = sim.state()
            return sum(1 for o in st["open_orders"] if o["account"] == key) == n

        _wait(resting, 90, f"{n} resting orders")
        time.sleep(0.3)
        if mode == "locked":
            holder = _hold_store_lock(home, sim.base_url)
        t0 = time.time()
        subprocess.run(
            [PY, "-m", "perpbot", "kill", "--wait", "0", "--reason", "bench"],
            stdout=subprocess.DEVNULL, env=env, cwd=str(ROOT), check=True,
        )  # fmt: skip
        cli = time.time() - t0

        def cancelled() -> list[dict[str, Any]] | None:
            mine = [o for o in sim.state()["orders"] if o["account"] == key]
            return mine if all(o["cancelTime"] for o in mine) else None

        done = _wait(cancelled, 30, "every order cancelled")
        if holder is not None and holder.poll() is not None:
            raise SystemExit("bench: the store lock was released before every order was cancelled")
        written = json.loads((home / "KILL").read_text())["time"]
        first = min(o["cancelTime"] for o in done) / 1000.0
        last = max(o["cancelTime"] for o in done) / 1000.0
        code = bot.wait(60)
        if code != 4:
            raise SystemExit(f"bench: the bot exited {code}, expected 4")
        return {
            "e2e": last - t0,
            "write_first": first - written,
            "write_last": last - written,
            "cli": cli,
        }
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait(10)
        if holder is not None:
            holder.kill()
            holder.wait(10)
        shutil.rmtree(home, ignore_errors=True)


def _hold_store_lock(home: Path, base_url: str) -> subprocess.Popen[str]:
    """Another process takes the bot's budget store write lock for LOCK_S; returns once it
    holds it and the next one-second weight window has begun (the bot's leases are void)."""
    holder, _ = hold_write_lock(store_path(home, base_url), LOCK_S)
    time.sleep(1.0 - time.time() % 1.0 + 0.05)
    return holder


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        home = tempfile.mkdtemp(prefix="perpbot-killbench-")
        env = installed_env(PERPBOT_HOME=home)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(home, ignore_errors=True)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--orders", type=int, default=12, help="resting orders per symbol")
    ap.add_argument("--modes", default="idle,sleep,locked")
    ap.add_argument("--cli-runs", type=int, default=15)
    args = ap.parse_args()
    kill_cmd = [PY, "-m", "perpbot", "kill", "--wait", "0", "--reason", "bench"]
    for cmd in ([PY, "-c", "import ccxt"], kill_cmd):  # warm the .pyc caches
        median_wall(cmd, 1)

    market = MarketConfig(volatility=0.0, jump_rate=0.0, taker_rate=0.0, history_minutes=30)
    sim = start_in_thread(SimConfig(seed=11, market=market), host="127.0.0.1", port=0)
    # one-second weight windows: a lease taken before the lock is void after it
    short = {"weight_per_window": 2400, "weight_window_s": 1}
    locked_sim = start_in_thread(
        SimConfig(seed=11, market=market, limits=short), host="127.0.0.1", port=0
    )
    print(f"kill latency: {args.trials} trials per mode, {2 * args.orders} orders on 2 symbols")
    print(note())
    print(f"{'mode':<6} {'figure':<12} {'median ms':>10} {'max ms':>10}")
    try:
        for mode in args.modes.split(","):
            on = locked_sim if mode == "locked" else sim
            results = [trial(on, mode, args.orders) for _ in range(args.trials)]
            if mode in LABELS:
                print(f"{mode}: {LABELS[mode]} ({LOCK_S:g} s, from just before the kill)")
            for name, label in (
                ("e2e", "e2e"),
                ("write_first", "write->1st"),
                ("write_last", "write->last"),
                ("cli", "cli"),
            ):
                values = [r[name] * 1000.0 for r in results]
                print(
                    f"{mode:<6} {label:<12} {statistics.median(values):10.1f} {max(values):10.1f}"
                )
    finally:
        sim.stop()
        locked_sim.stop()

    script = Path(PY).with_name("perpbot")
    ccxt = median_wall([PY, "-c", "import ccxt"], args.cli_runs)
    kill = median_wall(kill_cmd, args.cli_runs)
    print(f"python -c 'import ccxt':        {ccxt * 1000:7.1f} ms (median of {args.cli_runs})")
    print(f"python -m perpbot kill:         {kill * 1000:7.1f} ms  ({kill / ccxt:.1%} of it)")
    if script.exists():
        console = median_wall([str(script), *kill_cmd[3:]], args.cli_runs)
        print(f"perpbot kill (console script):  {console * 1000:7.1f} ms  ({console / ccxt:.1%})")
    print(
        "targets: e2e median < 500 ms (locked: the same); write->1st < 150 ms; "
        "perpbot kill <= 20% of import ccxt"
    )


if __name__ == "__main__":
    main()
