"""Many single-symbol grid bots on one IP: do they stay inside Binance's per-IP limits?

Starts one ``perpbot sim serve`` (its own process) and ``--bots`` copies of the example grid
bot (strategies/grid.py, tick_interval 1), each a ``perpbot run`` subprocess with its own
simulator account and strategy name, all sharing one PERPBOT_HOME (so one shared rate
limiter, as bots on one machine do). Bots start ``--stagger`` seconds apart. After
``--warmup`` seconds it measures for ``--seconds``: the simulator's own counters, which
are per IP (everything here is 127.0.0.1): HTTP 429s and 418s, weight per minute against
the 2,400 budget, and WebSocket handshakes refused. 429s during the start-up are printed
separately. Every bot's exit code is printed too (a bot that died is not a bot that ran).
Target (issue 16): >= 40 bots for 3 minutes with 0 429s.

    python bench/many_bots.py [--bots 40] [--seconds 180] [--polling] [--no-deadman]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.gridrun import ROOT, counters, simulator

BUDGET = 2400


def ws_counters(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/__sim/ws", timeout=10) as resp:
        return json.loads(resp.read())["counters"]


def bot_toml(folder: Path, url: str, n: int, args: argparse.Namespace) -> Path:
    doc = tomllib.loads((ROOT / "strategies" / "grid.toml").read_text())
    doc["strategy"]["file"] = str(ROOT / "strategies" / "grid.py")
    doc["strategy"]["name"] = f"grid-{n:03d}"
    doc["exchange"] = {"id": "sim", "url": url, "streams": not args.polling}
    doc["kill"] = {"deadman": not args.no_deadman}
    doc.pop("sim", None)
    path = folder / f"grid-{n:03d}.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def main(args: argparse.Namespace) -> int:
    home = tempfile.mkdtemp(prefix="perpbot-bench-many-")
    env = {**os.environ, "PERPBOT_HOME": home}
    folder = Path(tempfile.mkdtemp(prefix="perpbot-bench-many-toml-"))
    procs: list[subprocess.Popen[bytes]] = []
    with simulator(args.seed) as url:
        c_start, w_start = counters(url), ws_counters(url)
        duration = args.bots * args.stagger + args.warmup + args.seconds + 20.0
        try:
            for n in range(args.bots):
                cmd = [sys.executable, "-m", "perpbot", "run", str(bot_toml(folder, url, n, args))]
                cmd += ["--duration", f"{duration:.0f}", "--json"]
                log = (folder / f"bot-{n:03d}.err").open("wb")
                procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log))
                time.sleep(args.stagger)
            time.sleep(args.warmup)
            c0, w0 = counters(url), ws_counters(url)
            t0 = time.monotonic()
            time.sleep(args.seconds)
            c1, w1 = counters(url), ws_counters(url)
            elapsed = time.monotonic() - t0
            alive = sum(1 for p in procs if p.poll() is None)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(2)  # SIGINT: a clean stop (cancels orders)
            for p in procs:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
    weight = (c1["weight_used"] - c0["weight_used"]) / elapsed * 60.0
    mode = "polling" if args.polling else "streams"
    print(
        f"{args.bots} grid bots ({mode}, dead-man {'off' if args.no_deadman else 'on'}, "
        f"tick_interval 1) on one IP, measured {elapsed:.0f} s after {args.warmup:g} s warm-up"
    )
    print(f"alive at the end of the window: {alive}/{args.bots}")
    print(
        f"window: 429s {c1['http_429'] - c0['http_429']}, 418s {c1['http_418'] - c0['http_418']}, "
        f"weight {weight:.0f}/min ({weight / BUDGET:.1%} of {BUDGET}), "
        f"ws handshakes refused {w1['refused'] - w0['refused']}"
    )
    print(
        f"start-up (bots launching): 429s {c0['http_429'] - c_start['http_429']}, "
        f"ws refused {w0['refused'] - w_start['refused']}"
    )
    codes = Counter(p.returncode for p in procs)
    print(f"exit codes: {dict(codes)} (bot stderr in {folder})")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--bots", type=int, default=40)
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--warmup", type=float, default=20.0)
    p.add_argument("--stagger", type=float, default=0.5)
    p.add_argument("--polling", action="store_true")
    p.add_argument("--no-deadman", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    sys.exit(main(p.parse_args()))
