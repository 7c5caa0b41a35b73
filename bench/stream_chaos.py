"""Forced disconnects, stalls and listenKey expiries during a busy run on streams.

The example grid bot (strategies/grid.py, tick_interval 1, streams on) trades against its
own simulator (its own process; a busier market than the default: 3x the volatility and
4 synthetic takers a second, so the grid keeps filling). The bench then
forces ``--events`` stream faults in turn through the simulator's controls, each once the
previous one has recovered and ``--gap`` seconds later:

- disconnect: every connection closed abruptly (1006, ``/__sim/ws/close``)
- stall: market streams open but silent (the ``streams.stall`` fault, scope market) until
  the bot declares the mark stream stale (or 15 s), then lifted
- expiry: the account's listenKey expires (``/__sim/ws/expire_listen_keys``)
- user stall: the user data stream open but silent (``streams.stall``, scope user) until
  the bot finds it from the book's evidence (STREAM_USER_SILENT: a resting grid order the
  book shows gone, no ORDER_TRADE_UPDATE within 1 s), or 20 s, then lifted
- drop, duplicate, reorder: for ``--fault-s`` seconds every stream (market and user) loses
  (``drop_rate`` 0.3), doubles (``duplicate_rate`` 0.3) or holds back behind the next one
  (``reorder_rate`` 0.3) its events, then they are lifted

and prints, against the simulator's own trade list for the bot's account (the truth): fills
missed (on the simulator, never a FillEvent) and duplicated (a trade id published twice),
user-stream losses and how many were followed by a REST backfill, stalls detected and the
detection delay (from the fault to STREAM_STALE) against 2x the mark stream's 1 s cadence,
user stalls detected and how long the book had shown the order gone at detection against
2x the user stream's 1 s grace (its cadence once an event is owed), and the events the
simulator dropped, duplicated and reordered.
``[exchange] stream_stale_s`` is ``--stale-s`` (1.5: the silence after which a 1 s stream
is stale). The simulator's per-IP new-connection cap (300 per 5 min, Binance's) is raised:
100 faults in a few minutes reconnect far more often than an IP may on Binance.

    python bench/stream_chaos.py [--events 105] [--gap 1.0] [--stale-s 1.5] [--fault-s 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
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

from bench.support.gridrun import grid_toml, simulator, throwaway_home
from perpbot.streams.evidence import OWED_GRACE_S

KINDS = ("disconnect", "stall", "expiry", "user stall", "drop", "duplicate", "reorder")
EVENT_FAULTS = {
    "drop": {"drop_rate": 0.3},
    "duplicate": {"duplicate_rate": 0.3},
    "reorder": {"reorder_rate": 0.3},
}
MARK_CADENCE_S = 1.0
SIM_TOML = """
[market]
volatility = 0.0005
taker_rate = 4
[ws]
max_connections_per_window = 100000
"""


def control(url: str, path: str, body: Any) -> Any:
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return False


async def sim_trade_ids(url: str, api_key: str, secret: str, symbols: list[str]) -> list[str]:
    import ccxt.async_support as ccxt_async

    from perpbot.client.loopback import configure_loopback

    ex = ccxt_async.binanceusdm({"apiKey": api_key, "secret": secret})
    configure_loopback(ex, url)
    try:
        await ex.load_markets()
        ids: list[str] = []
        for symbol in symbols:
            since: int | None = None
            while True:  # page by time: the simulator caps a page at 1000 like Binance
                page = await ex.fetch_my_trades(symbol, since=since, limit=1000)
                fresh = [str(t["id"]) for t in page if str(t["id"]) not in ids]
                ids += fresh
                if len(page) < 1000 or not fresh:
                    break
                since = int(page[-1]["timestamp"])
        return ids
    finally:
        await ex.close()


async def run(args: argparse.Namespace) -> int:
    from perpbot.app import plugins
    from perpbot.app.lifecycle import Runner
    from perpbot.config import load_strategy
    from perpbot.engine.events import FillEvent
    from perpbot.engine.loader import instantiate
    from perpbot.engine.output import RunOutput
    from perpbot.events import Decision

    with simulator(args.seed, SIM_TOML) as url:
        folder = Path(tempfile.mkdtemp(prefix="perpbot-bench-chaos-"))
        path = grid_toml(folder, url, streams=True, deadman=False)
        doc = tomllib.loads(path.read_text())
        doc["exchange"]["stream_stale_s"] = args.stale_s
        path.write_text(tomli_w.dumps(doc))
        loaded = load_strategy(path)
        runner = Runner(
            loaded, instantiate(loaded), output=RunOutput("plain", io.StringIO(), io.StringIO())
        )
        plugins.attach(runner)
        fills: list[FillEvent] = []
        decisions: list[Decision] = []
        runner.engine_events.subscribe(
            lambda e: fills.append(e) if isinstance(e, FillEvent) else None
        )
        runner.bus.subscribe(
            lambda e: (
                decisions.append(e) if isinstance(e, Decision) and e.layer == "streams" else None
            )
        )
        task = asyncio.create_task(runner.run())

        def codes(code: str, since: int = 0) -> list[Decision]:
            return [d for d in decisions[since:] if d.code == code]

        def healthy() -> bool:
            feed = runner.feed
            return bool(
                feed is not None
                and feed.user_stream_up
                and feed.health
                and all(h.down_since is None and not h.stale for h in feed.health.values())
            )

        started = time.monotonic()
        if not await until(
            lambda: (
                runner.feed is not None and runner.feed.counters["reconciles"] >= 1 and healthy()
            ),
            60,
        ):
            print("the bot's streams never came up")
            return 1
        losses = backfilled = stalls = detected = unrecovered = 0
        delays: list[float] = []
        silences: list[float] = []
        stall_windows: list[tuple[float, float]] = []
        event_windows: list[tuple[float, float]] = []  # drop, duplicate, reorder
        user_stalls = user_detected = user_backfilled = 0
        owed: list[float] = []
        user_delays: list[float] = []
        per_kind: Counter[str] = Counter()
        for n in range(args.events):
            if task.done():
                print(f"the run ended early: {runner.end_reason}")
                break
            kind = KINDS[n % len(KINDS)]
            per_kind[kind] += 1
            mark = len(decisions)
            t0 = time.time()
            if kind == "disconnect":
                control(url, "/__sim/ws/close", {"code": 1006, "scope": "all"})
            elif kind == "expiry":
                control(url, "/__sim/ws/expire_listen_keys", {})
            elif kind in EVENT_FAULTS:
                control(url, "/__sim/faults", {"streams": {"scope": "all", **EVENT_FAULTS[kind]}})
                await asyncio.sleep(args.fault_s)
                control(url, "/__sim/faults", {})
                event_windows.append((t0, time.time()))
            elif kind == "user stall":
                control(url, "/__sim/faults", {"streams": {"stall": True, "scope": "user"}})
                user_stalls += 1
                seen = await until(lambda m=mark: codes("STREAM_USER_SILENT", m), 20.0)
                if seen:
                    user_detected += 1
                    first = codes("STREAM_USER_SILENT", mark)[0]
                    owed.append(float(first.data["owed_s"]))
                    user_delays.append(first.ts - t0)
                    if await until(lambda m=mark: codes("STREAM_BACKFILL", m), 30.0):
                        user_backfilled += 1
                control(url, "/__sim/faults", {})
            else:
                control(url, "/__sim/faults", {"streams": {"stall": True, "scope": "market"}})
                stalls += 1
                seen = await until(lambda m=mark: codes("STREAM_STALE", m), 15.0)
                control(url, "/__sim/faults", {})
                stall_windows.append((t0, time.time()))
                if seen:
                    detected += 1
                    first = codes("STREAM_STALE", mark)[0]
                    delays.append(first.ts - t0)
                    silences.append(float(first.data.get("silent_s", 0.0)))
            if kind in ("disconnect", "expiry"):
                losses += 1
                if await until(lambda m=mark: codes("STREAM_BACKFILL", m), 30.0):
                    backfilled += 1
            if not await until(lambda: healthy(), 30.0):
                unrecovered += 1
            await asyncio.sleep(args.gap)
        chaos_s = time.monotonic() - started
        await asyncio.sleep(3.0)  # the last fills' events
        before_final = len(fills)
        await runner.reconcile()  # the REST safety net's last word (as the periodic one)
        final_found = len(fills) - before_final
        creds = runner.credentials
        symbols = list(runner.state.symbols)
        runner.request_stop("bench over")
        await asyncio.wait_for(task, 60)
        truth = await sim_trade_ids(url, creds.api_key, creds.secret, symbols)
        with urllib.request.urlopen(url + "/__sim/ws", timeout=10) as resp:
            ws_counts = json.loads(resp.read())["counters"]

    ids = [e.fill.trade_id for e in fills]
    seen_ids = Counter(ids)
    missed = [t for t in truth if t not in seen_ids]
    doubled = {t: c for t, c in seen_ids.items() if c > 1}
    sources = Counter(e.source for e in fills)
    stale_all = [d for d in decisions if d.code == "STREAM_STALE"]

    def inside(d: Decision, windows: list[tuple[float, float]]) -> bool:
        return any(a - 0.5 <= d.ts <= b + 2.0 for a, b in windows)

    in_events = [d for d in stale_all if inside(d, event_windows)]
    spurious = [d for d in stale_all if not inside(d, stall_windows + event_windows)]
    limit = 2 * MARK_CADENCE_S
    within = sum(1 for d in delays if d <= limit)
    print(
        f"{sum(per_kind.values())} stream faults in {chaos_s:.0f} s "
        f"({', '.join(f'{k} {v}' for k, v in per_kind.items())}); grid bot, tick_interval 1, "
        f"stream_stale_s {args.stale_s:g}"
    )
    print(
        f"fills: simulator {len(truth)}, engine {len(ids)} (stream {sources['stream']}, "
        f"rest {sources['rest']}; found only by the final reconcile: {final_found})"
    )
    print(f"fills missed: {len(missed)}   duplicated: {len(doubled)}")
    if missed or doubled:
        print(f"  missed trade ids: {missed[:20]}; duplicated: {list(doubled)[:20]}")
    by_backfill = runner.feed.counters["backfilled_fills"] if runner.feed else 0
    print(
        f"user-stream losses: {losses}, backfilled: {backfilled} "
        f"(fills recorded by backfills: {by_backfill})"
    )
    print(
        f"stalls: {stalls}, detected: {detected}; "
        f"fault -> STREAM_STALE p50 {pct(delays, 0.5):.2f} s "
        f"max {max(delays, default=float('nan')):.2f} s; within 2x cadence ({limit:g} s): "
        f"{within}/{stalls}; silence at detection p50 {pct(silences, 0.5):.2f} s"
    )
    owed_limit = 2 * OWED_GRACE_S
    owed_within = sum(1 for s in owed if s <= owed_limit)
    print(
        f"user stalls: {user_stalls}, detected: {user_detected}, backfilled: {user_backfilled}; "
        f"book showed the order gone for p50 {pct(owed, 0.5):.2f} s max "
        f"{max(owed, default=float('nan')):.2f} s at detection, within 2x the 1 s grace "
        f"({owed_limit:g} s): {owed_within}/{user_stalls}; fault -> STREAM_USER_SILENT p50 "
        f"{pct(user_delays, 0.5):.2f} s (waits for the market to reach a grid order)"
    )
    print(
        f"events the simulator dropped {ws_counts['events_dropped']}, duplicated "
        f"{ws_counts['events_duplicated']}, reordered {ws_counts['events_reordered']}; "
        f"gaps found by the periodic reconcile (STREAM_GAP): {len(codes('STREAM_GAP'))}, "
        f"STREAM_USER_SILENT in all: {len(codes('STREAM_USER_SILENT'))}"
    )
    print(
        f"STREAM_STALE in drop/duplicate/reorder windows (events lost or held back): "
        f"{len(in_events)}; spurious (outside any fault): {len(spurious)}; "
        f"not recovered in 30 s: {unrecovered}"
    )
    ok = (
        not missed
        and not doubled
        and backfilled == losses
        and within == stalls
        and owed_within == user_stalls == user_backfilled
    )
    verdict = "met" if ok else "NOT met"
    print(
        "target (0 missed, 0 duplicated, every gap backfilled, every stall and user stall "
        f"detected within 2x its cadence): {verdict}"
    )
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=105)
    p.add_argument("--gap", type=float, default=1.0, help="seconds between recovery and the next")
    p.add_argument("--stale-s", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fault-s", type=float, default=3.0, help="drop/duplicate/reorder window")
    throwaway_home()
    sys.exit(asyncio.run(run(p.parse_args())))
