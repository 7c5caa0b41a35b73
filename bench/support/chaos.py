"""A seeded random fault campaign: real bots against the simulator, invariants after each.

An *episode* (one fresh account on a shared in-thread simulator, its own state dir):

1. a bot (`perpbot run` subprocess, tests/integration/kill_strategies/hang.py, idle) lays
   1..4 post-only orders on 1..2 symbols and arms a short dead-man countdown; in 30% of the
   episodes it is bench/support/overreach.py instead, under a key profile whose grant is
   narrower than what it tries every tick (bench/support/chaos_grant.py);
2. a random fault plan is installed: 5xx on random methods, dropped connections, lost
   responses, latency, a 429 storm (the order/weight limits cut to a trickle);
3. a random ending: SIGTERM; SIGKILL and a restart (which must cancel what the dead run
   left) then SIGTERM; `perpbot kill` at halt, cancel or flatten, then SIGTERM; a corrupt
   KILL file (garbage, empty, dangling symlink, symlink loop, FIFO, directory, oversize,
   deep JSON: the bot fails closed, a standing cancel), then SIGTERM; SIGKILL and a restart
   that adopts the dead run's orders (its stop cancels them); a second strategy beside the
   first, both with ``share_symbols``, each then SIGTERMed; or the state dir's disk (a
   16 MB tmpfs, root only) filled up, the bot left to stop by itself or `perpbot kill`ed
   (the sentinel cannot be written) (bench/support/chaos_disk.py);
4. the faults are cleared, the bots must exit within a bound.

Invariants, with the simulator's own state as the truth:

- **covered**: every order of the account still open when the bots have exited stands on a
  symbol whose countdown is armed, and a bot that exited (or `perpbot kill`) said so, in a
  line naming the exchange's countdown and that symbol, unless the order is a SIGKILLed
  run's; then, once the countdown has lapsed, none is open at all;
- **restart**: a restart that ran met the dead run's orders (cancelled or adopted them);
- **no duplicate**: no client order id was accepted twice;
- **grant**: no request outside the key's grant reached the exchange (the simulator's
  request counters and its record of every order the account sent);
- **log**: `perpbot log verify --accept-unanchored` exits 0, or 1 naming the damage (a
  SIGKILLed run's or a full disk's torn tail), never anything else;
- **no traceback** in any output.

`bench/chaos.py` runs a campaign and prints the figures; tests/chaos runs a short subset.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from bench.support import chaos_disk, chaos_grant
from perpbot.client.orders import run_prefix

ROOT = Path(__file__).resolve().parents[2]
HANG = ROOT / "tests" / "integration" / "kill_strategies"
SYMBOLS = {"BTC/USDT:USDT": "BTCUSDT", "ETH/USDT:USDT": "ETHUSDT"}
ENDINGS = (
    "sigterm",
    "sigkill_restart",
    "kill_halt",
    "kill_cancel",
    "kill_flatten",
    "sentinel_corrupt",
    "sigkill_adopt",
    "shared_pair",
    "disk_full",
    "disk_full_kill",
)
GRANT_SHARE = 0.3  # the share of episodes run by the overreaching strategy under a narrow grant
COUNTDOWN_S = 3.0
# after a SIGKILL the restart must meet the dead run's orders: a countdown longer than a
# restart takes (else the exchange has cancelled them before the restart looks)
RESTART_COUNTDOWN_S = 30.0
# on a loaded machine a restart can still come up after that: its sweep then finds nothing
# (the exchange cancelled the dead run's orders), which says nothing about the sweep; the
# restart check applies only when it was running this long before the countdown could lapse
RESTART_MARGIN_S = 1.0
EXIT_WITHIN_S = 45.0


@dataclass(slots=True)
class Episode:
    seed: int
    ending: str = ""
    faults: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    note: str = ""


def _plan(rng: random.Random) -> tuple[dict[str, Any], list[str]]:
    """A random fault plan and the names of what it injects (at least one)."""
    kinds = rng.sample(["5xx", "drop", "lost", "latency", "429"], k=rng.randint(1, 3))
    plan: dict[str, Any] = {}
    if "5xx" in kinds:
        plan["errors"] = {
            "rate": rng.choice([0.3, 0.6, 1.0]),
            "statuses": [rng.choice([500, 502, 503, 504])],
            "methods": rng.choice([["DELETE"], ["GET"], ["DELETE", "GET"], []]),
            "body": rng.choice(["html", "json"]),
        }
    if "drop" in kinds:
        plan["drop"] = {"rate": rng.choice([0.2, 0.5]), "methods": rng.choice([["DELETE"], []])}
    if "lost" in kinds:
        plan["lost_response"] = {
            "rate": 0.5,
            "paths": ["/fapi/v1/order"],
            "methods": ["DELETE", "POST"],
        }
    if "latency" in kinds:
        plan["latency"] = {"fixed_ms": rng.choice([50, 200, 600]), "jitter_ms": 100}
    if "429" in kinds:
        plan["limits"] = {"weight_per_window": rng.choice([5, 20]), "weight_window_s": 5}
    return plan, kinds


def quiet_sim(seed: int) -> Any:
    """A simulator of its own for one episode (faults are per simulator): resting orders
    stay resting (no drift, no jumps, no synthetic takers)."""
    from perpbot.sim.config import MarketConfig, SimConfig
    from perpbot.sim.handle import start_in_thread

    quiet = MarketConfig(volatility=0.0, jump_rate=0.0, taker_rate=0.0, history_minutes=30)
    return start_in_thread(SimConfig(seed=seed, market=quiet))


def _run_prefix(out: Path) -> str | None:
    """The client-id prefix of the run whose output is ``out`` (its first line names it)."""
    m = re.search(r"^perpbot run (\S+): (\S+) on ", out.read_text(), re.MULTILINE)
    return run_prefix(m.group(1), m.group(2)) if m else None


def said_covered(said: str, symbol_id: str) -> bool:
    """Whether ``said`` (what the bots and `perpbot kill` printed) names the exchange's
    countdown on this symbol in one line (the word itself, not a setting such as
    ``deadman_countdown_s``)."""
    symbol = re.escape(next((u for u, i in SYMBOLS.items() if i == symbol_id), symbol_id))
    word = r"(?<![\w])countdown(?![\w])"
    return re.search(rf"{word}[^\n]*{symbol}|{symbol}[^\n]*{word}", said) is not None


def _running(home: Path, n: int) -> bool:
    """Whether ``n`` runs have written a "running" status in the state dir."""
    seen = 0
    for path in (home / "bots").glob("*.json"):
        try:
            seen += json.loads(path.read_text()).get("state") == "running"
        except (OSError, ValueError):
            continue
    return seen >= n


class Campaign:
    def __init__(
        self,
        workdir: Path,
        *,
        new_sim: Callable[[int], Any] = quiet_sim,
        python: str = sys.executable,
    ) -> None:
        self.workdir = workdir
        self.new_sim = new_sim
        self.python = python
        self.sim: Any = None
        self.grant = False  # this episode runs bench/support/overreach.py under a narrow grant
        self.tiny_disk = False  # this episode's state dir is a small tmpfs

    # -- processes ----------------------------------------------------------------------------
    def _env(self, home: Path, creds: tuple[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env["PERPBOT_HOME"] = str(home)
        env["PERPBOT_SIM_API_KEY"], env["PERPBOT_SIM_API_SECRET"] = creds
        return env

    def _toml(
        self,
        where: Path,
        symbols: list[str],
        orders: int,
        tag: str = "bot",
        countdown_s: float = COUNTDOWN_S,
        **strategy: Any,
    ) -> Path:
        doc = tomllib.loads((HANG / "hang.toml").read_text())
        doc["strategy"].update({"file": str(HANG / "hang.py"), "symbols": symbols, **strategy})
        doc["strategy"]["tick_interval"] = 0.2
        doc["strategy"]["stop_timeout_s"] = 8.0
        doc["strategy"]["params"].update({"mode": "idle", "orders_per_symbol": orders})
        if self.grant:  # the overreaching strategy, under the narrow grant
            doc["strategy"]["file"] = str(chaos_grant.STRATEGY)
            doc["strategy"]["params"] = {
                "orders_per_symbol": orders,
                "outside_symbol": chaos_grant.OUTSIDE_SYMBOL,
                "max_notional": chaos_grant.MAX_NOTIONAL,
            }
            doc["exchange"]["profile"] = chaos_grant.GRANT_PROFILE
        doc["exchange"]["url"] = self.sim.base_url
        doc["kill"].update({"deadman_countdown_s": countdown_s, "deadman_refresh_s": 0.5})
        doc["kill"]["flatten_timeout_s"] = 5.0
        if self.tiny_disk:  # the disk trip would halt at once on a tiny disk: meet a full one
            doc["disk"] = {"halt_free_mb": 0, "halt_free_pct": 0, "warn_free_pct": 0}
        path = where / f"{tag}.toml"
        path.write_text(tomli_w.dumps(doc))
        return path

    def _start(self, toml: Path, env: dict[str, str], tag: str) -> subprocess.Popen[str]:
        out = (toml.parent / f"{tag}.out").open("w")
        err = (toml.parent / f"{tag}.err").open("w")
        return subprocess.Popen(
            [self.python, "-m", "perpbot", "run", str(toml), "--plain"],
            stdout=out,
            stderr=err,
            env=env,
            cwd=str(ROOT),
            text=True,
        )

    def _cli(
        self, env: dict[str, str], *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-m", "perpbot", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=str(ROOT),
            timeout=120,
        )

    # -- the simulator's truth ----------------------------------------------------------------
    def _orders(self, key: str, open_only: bool = False) -> list[dict[str, Any]]:
        state = self.sim.state()
        return [o for o in state["open_orders" if open_only else "orders"] if o["account"] == key]

    def _countdowns(self, key: str) -> dict[str, Any]:
        acct = next(a for a in self.sim.state()["accounts"] if a["api_key"] == key)
        return dict(acct["countdowns"])

    @staticmethod
    def _wait(pred: Callable[[], Any], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.1)
        return bool(pred())

    # -- one episode ----------------------------------------------------------------------------
    def episode(self, seed: int) -> Episode:
        """One episode on a simulator of its own (stopped at the end)."""
        sub = Campaign(self.workdir, new_sim=self.new_sim, python=self.python)
        sub.sim = self.new_sim(seed)
        try:
            return sub._episode(seed)
        finally:
            sub.sim.stop()

    def _episode(self, seed: int) -> Episode:
        rng = random.Random(seed)
        ep = Episode(seed=seed, ending=rng.choice(ENDINGS))
        self.grant = rng.random() < GRANT_SHARE
        where = Path(tempfile.mkdtemp(prefix=f"ep{seed}-", dir=self.workdir))
        home = where / "home"
        home.mkdir()
        if ep.ending.startswith("disk_full"):
            self.tiny_disk = chaos_disk.mount_tmpfs(home)
            if not self.tiny_disk:
                ep.note = "no tmpfs could be mounted (root only): ended like sigterm"
                ep.ending = "sigterm"
        creds = self.sim.create_account()
        key = creds[0]
        env = self._env(home, creds)
        symbols = rng.sample(list(SYMBOLS), k=rng.randint(1, 2))
        if self.grant:
            symbols = [chaos_grant.GRANT_SYMBOL]
            env.update(chaos_grant.keyring_env(where))
            failed = chaos_grant.add_profile(self._cli, env, creds)
            if failed:
                ep.violations.append(f"could not set up the grant: {failed}")
        orders = rng.randint(1, 4)
        shared = {"share_symbols": True} if ep.ending == "shared_pair" else {}
        countdown_s = RESTART_COUNTDOWN_S if ep.ending.startswith("sigkill") else COUNTDOWN_S
        toml = self._toml(where, symbols, orders, countdown_s=countdown_s, **shared)
        procs: list[tuple[str, subprocess.Popen[str]]] = []
        sigkilled: set[str] = set()
        try:
            bot = self._start(toml, env, "bot")
            procs.append(("bot", bot))
            want = orders * len(symbols)
            if not self._wait(lambda: len(self._orders(key, True)) >= want, 40):
                ep.note = "the bot did not lay its orders in 40 s"
            plan, kinds = _plan(rng)
            ep.faults = kinds + (["grant"] if self.grant else [])
            self.sim.set_faults(plan)
            time.sleep(rng.uniform(0.2, 1.5))
            if self.grant:  # let it try every overreach at least once (one a tick)
                time.sleep(1.5)
            self._end(ep, rng, env, procs, sigkilled, toml)
            self.sim.set_faults({})
            for tag, p in procs:
                if tag in sigkilled:
                    continue
                try:
                    p.wait(EXIT_WITHIN_S)
                except subprocess.TimeoutExpired:
                    ep.violations.append(f"{tag} did not exit within {EXIT_WITHIN_S:g} s")
            chaos_disk.unfill(home)
            self._check(ep, key, env, where, procs, sigkilled, countdown_s)
        finally:
            self.sim.set_faults({})
            for _tag, p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
            chaos_disk.remove_sentinel(home)  # a FIFO left there would block the copy below
            if ep.violations:  # keep what the bots wrote, for whoever investigates
                kept = Path(tempfile.gettempdir()) / "perpbot-chaos-kept" / where.name
                shutil.copytree(where, kept, dirs_exist_ok=True, ignore_dangling_symlinks=True)
                ep.note = (ep.note + f"; kept in {kept}").lstrip("; ")
            if self.tiny_disk:
                chaos_disk.unmount(home)
        return ep

    def _end(
        self,
        ep: Episode,
        rng: random.Random,
        env: dict[str, str],
        procs: list[tuple[str, subprocess.Popen[str]]],
        sigkilled: set[str],
        toml: Path,
    ) -> None:
        _tag, bot = procs[0]
        if ep.ending == "sigterm":
            bot.send_signal(signal.SIGTERM)
        elif ep.ending in ("sigkill_restart", "sigkill_adopt"):
            bot.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            bot.wait(10)
            sigkilled.add("bot")
            if ep.ending == "sigkill_adopt":  # takes the dead run's orders over, adds none
                symbols = tomllib.loads(toml.read_text())["strategy"]["symbols"]
                toml = self._toml(
                    toml.parent, symbols, 0, "again", RESTART_COUNTDOWN_S, leftover_orders="adopt"
                )
            again = self._start(toml, env, "again")
            procs.append(("again", again))
            # SIGTERM once it runs (before its signal handlers exist the OS default ends it,
            # which says nothing about perpbot), or let it refuse to start on its own
            home = Path(env["PERPBOT_HOME"])
            self._wait(lambda: again.poll() is not None or _running(home, 2), 60)
            up_after_s = time.monotonic() - killed_at
            if up_after_s > RESTART_COUNTDOWN_S - RESTART_MARGIN_S:
                ep.note = (
                    f"late restart: up {up_after_s:.0f} s after the SIGKILL, when the dead "
                    f"run's {RESTART_COUNTDOWN_S:g} s countdown could have lapsed (machine "
                    "load): the restart check is skipped, the countdown checks still apply"
                )
            time.sleep(rng.uniform(0.0, 2.0))
            again.send_signal(signal.SIGTERM)
        elif ep.ending == "shared_pair":  # a second strategy beside it, both opted in
            symbols = tomllib.loads(toml.read_text())["strategy"]["symbols"]
            other_toml = self._toml(
                toml.parent, symbols, 1, "other", name="other", share_symbols=True
            )
            other = self._start(other_toml, env, "other")
            procs.append(("other", other))
            home = Path(env["PERPBOT_HOME"])
            self._wait(lambda: other.poll() is not None or _running(home, 2), 60)
            bot.send_signal(signal.SIGTERM)  # the first one out leaves the countdown armed
            time.sleep(rng.uniform(0.0, 2.0))
            other.send_signal(signal.SIGTERM)  # the last one out disarms it
        elif ep.ending == "sentinel_corrupt":  # a corrupt KILL file: the bots fail closed
            kind = rng.choice(chaos_disk.SENTINEL_KINDS)
            ep.faults.append(f"sentinel_{kind}")
            chaos_disk.corrupt_sentinel(Path(env["PERPBOT_HOME"]), kind)
            time.sleep(1.0)
            bot.send_signal(signal.SIGTERM)
        elif ep.ending.startswith("disk_full"):  # the state dir's disk fills up
            ep.faults.append("disk_full")
            chaos_disk.fill(Path(env["PERPBOT_HOME"]))
            if ep.ending == "disk_full_kill":  # the sentinel cannot be written: it says so
                self._kill(ep, env, toml, "cancel")
            else:  # the bot must stop by itself: it cannot log what it sends
                try:
                    bot.wait(EXIT_WITHIN_S)
                except subprocess.TimeoutExpired:
                    ep.violations.append(f"the bot ran on for {EXIT_WITHIN_S:g} s on a full disk")
            if bot.poll() is None:
                bot.send_signal(signal.SIGTERM)
        else:
            self._kill(ep, env, toml, ep.ending.removeprefix("kill_"))
            bot.send_signal(signal.SIGTERM)  # halt keeps the bot alive: stop it too

    def _kill(self, ep: Episode, env: dict[str, str], toml: Path, level: str) -> None:
        kill = self._cli(env, "kill", "--level", level, "--reason", "chaos", "--wait", "15")
        (toml.parent / "kill.err").write_text(kill.stdout + kill.stderr)
        if "Traceback" in kill.stdout + kill.stderr:
            ep.violations.append(f"perpbot kill printed a traceback: {kill.stderr[-500:]}")
        if kill.returncode not in (0, 1):
            ep.violations.append(f"perpbot kill exited {kill.returncode}: {kill.stderr}")

    def _check(
        self,
        ep: Episode,
        key: str,
        env: dict[str, str],
        where: Path,
        procs: list[tuple[str, subprocess.Popen[str]]],
        sigkilled: set[str],
        countdown_s: float,
    ) -> None:
        said = ""
        for tag, p in procs:
            err = (where / f"{tag}.err").read_text()
            out = (where / f"{tag}.out").read_text()
            if "Traceback" in err + out:
                ep.violations.append(f"{tag}: traceback: {err[-800:]}")
            if tag not in sigkilled:
                said += err
                if p.returncode not in (0, 1, 4):
                    ep.violations.append(f"{tag} exited {p.returncode}: {err[-500:]}")
        again = dict(procs).get("again")
        if again is not None and again.returncode == 0 and not ep.note:
            out = (where / "again.out").read_text()
            if "START_LEFTOVERS_CANCELLED" not in out and "START_LEFTOVERS_ADOPTED" not in out:
                ep.violations.append("the restart did not meet the dead run's orders")
        if (where / "kill.err").exists():
            said += (where / "kill.err").read_text()
        if self.grant:
            for what in chaos_grant.outside_grant(self.sim.state(), key):
                ep.violations.append(f"outside the grant: {what}")
        cids = [o["clientOrderId"] for o in self._orders(key)]
        dupes = {c for c in cids if cids.count(c) > 1}
        if dupes:
            ep.violations.append(f"duplicate client order ids accepted: {sorted(dupes)}")
        left = self._orders(key, True)
        if left:
            armed = self._countdowns(key)
            naked = [o["clientOrderId"] for o in left if o["symbol"] not in armed]
            if naked:
                ep.violations.append(f"open with no countdown armed: {naked}")
            # a SIGKILLed run cannot say anything: its orders only need the countdown
            dead = {_run_prefix(where / f"{tag}.out") for tag in sigkilled} - {None}
            unsaid = [
                o["clientOrderId"]
                for o in left
                if not any(str(o["clientOrderId"]).startswith(p) for p in dead)
                and not said_covered(said, o["symbol"])
            ]
            if unsaid:
                ep.violations.append(
                    f"open orders left and nobody named the countdown covering them: {unsaid}"
                )
            if not self._wait(lambda: not self._orders(key, True), countdown_s + 6.0):
                still = [o["clientOrderId"] for o in self._orders(key, True)]
                ep.violations.append(f"still open after the countdown lapsed: {still}")
        verify = self._cli(env, "log", "verify", "--accept-unanchored")
        text = verify.stdout + verify.stderr
        if "Traceback" in text:
            ep.violations.append(f"log verify traceback: {text[-800:]}")
        elif verify.returncode not in (0, 1) or (verify.returncode == 1 and not text.strip()):
            ep.violations.append(f"log verify exited {verify.returncode}: {text[-500:]}")
        elif verify.returncode == 1 and not sigkilled and not self.tiny_disk:
            # a SIGKILL or a full disk may tear the log's tail (named by verify); else nothing
            ep.violations.append(f"log damaged without a SIGKILL or a full disk: {text[-500:]}")
