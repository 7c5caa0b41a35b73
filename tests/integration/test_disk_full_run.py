"""The disk fills while a bot runs (a real full tmpfs as its state dir, root only).

The bot cannot record requests in its signed log any more, so it must stop: one line that
says what could not be written, exit 1, no traceback. Its risk-reducing requests still
leave (the stop's listings and cancels of its own orders, the dead-man countdown), held in
memory and written later as a signed gap record; its orders must not outlive it, and the
line says which it cancelled and which it left to the exchange's countdown (and when that
fires). The simulator's own orders and countdowns are the truth.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    account_of,
    open_orders_of,
    orders_of,
    start_bot,
    wait_until,
)

LONG_COUNTDOWN_S = 60.0  # far longer than the test: only the bot's own cancels explain a cancel
SHORT_COUNTDOWN_S = 15.0  # outlives the stop (a 3 s bound), then cancels what it left
# how long the simulator holds the placement's answer: the log meets the full disk up to ~1 s
# after it fills (its next record), and must before the answer arrives
HOLD_MS = 5000
NO_DISK_TRIP = {"disk": {"halt_free_mb": 0, "halt_free_pct": 0, "warn_free_pct": 0}}
CANCELS_FAIL = {
    "errors": {"rate": 1.0, "statuses": [503], "paths": ["/fapi/v1/order"], "methods": ["DELETE"]}
}


@pytest.fixture
def tiny_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    home = tmp_path / "tiny"
    home.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(home)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    monkeypatch.setenv("PERPBOT_HOME", str(home))
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def _fill(home: Path) -> None:
    with contextlib.suppress(OSError), open(home / "filler", "wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def _bot(
    bot_files: MakeBotFiles,
    tmp_path: Path,
    countdown: float,
    extra: dict[str, Any] | None = None,
    **kw: Any,
) -> tuple[Any, tuple[str, str], Bot]:
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": 2},
        kill={"deadman_countdown_s": countdown},
        # the disk trip would halt at once on a 16 MB disk: off, to meet a really full disk
        extra={**NO_DISK_TRIP, **(extra or {})},
        **kw,
    )
    bot = start_bot(toml, tmp_path, creds)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 4, timeout=60)
    # and the bot has every placement's answer (and its record) before the disk fills: an
    # answer still on its way is the next test's case
    wait_until(lambda: "laid 4 orders" in bot.out.read_text(), timeout=60)
    return sim, creds, bot


def _log(home: Path, run_id: str) -> list[dict[str, Any]]:
    return [
        json.loads(ln)
        for f in sorted((home / "logs" / run_id).glob("audit-*.jsonl"))
        for ln in f.read_text().splitlines()
    ]


def _gaps(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gap records (one, or more if space came back for a while in between)."""
    gaps = [r for r in records if r["kind"] == "gap"]
    assert gaps, [r["kind"] for r in records][-20:]
    for g in gaps:
        assert g["from_memory"] is True
    return gaps


def _said(out: str, err: str) -> str:
    """What the bot said (its stderr, then its decisions), for a failed assertion."""
    return f"stderr:\n{err[-3000:]}\nstdout:\n{out[-6000:]}"


def _error_line(code: int, err: str) -> str:
    assert code == 1, err[-2000:]
    assert "Traceback" not in err and "internal error" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("perpbot: error:")]
    assert len(errors) == 1, err[-2000:]
    assert "No space left on device" in errors[0] and "audit log" in errors[0]
    return errors[0]


def test_a_disk_full_mid_run_cancels_the_bots_orders_and_says_so_in_one_line(
    bot_files: MakeBotFiles, tmp_path: Path, tiny_home: Path, bots: list[Bot]
) -> None:
    sim, creds, bot = _bot(bot_files, tmp_path, LONG_COUNTDOWN_S)
    bots.append(bot)
    placed = {o["clientOrderId"]: o for o in open_orders_of(sim.state(), creds[0])}
    filled_at_ms = time.time() * 1000
    _fill(tiny_home)
    code, out, err = bot.finish(timeout=90)
    line = _error_line(code, err)

    # the truth: the bot cancelled its own orders itself, long before its countdown could
    state = sim.state()
    assert open_orders_of(state, creds[0]) == [], err[-3000:]
    mine = {o["clientOrderId"]: o for o in orders_of(state, creds[0])}
    for cid in placed:
        assert mine[cid]["status"] == "CANCELED", mine[cid]
        assert mine[cid]["cancelTime"] < filled_at_ms + LONG_COUNTDOWN_S * 1000 / 2
    # ... confirmed them gone, so it disarmed the countdown (the exchange holds none)
    assert account_of(state, creds[0])["countdowns"] == {}, _said(out, err)

    # the one line: what could not be written, what went out unrecorded, what it cancelled
    m = re.search(r"; (\d+) request\(s\) went out unrecorded", line)
    assert m is not None, line
    sent = int(m.group(1))
    assert "gap record" in line
    for cid in placed:
        assert cid in line
    assert "no order of this run is left open" in line

    # space is back: the signed log says honestly what went out unrecorded
    (tiny_home / "filler").unlink()
    run_id = re.search(r"perpbot run (\S+):", out).group(1)  # type: ignore[union-attr]
    verify = run_cli("log", "verify", "--run", run_id, "--accept-unanchored")
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert f"GAP {run_id} seq " in verify.stdout
    said = re.findall(
        r"^GAP \S+ seq \d+: (\d+) request\(s\) went out unrecorded", verify.stdout, re.M
    )
    assert sum(int(n) for n in said) == sent, verify.stdout
    assert "has gaps" in verify.stderr
    ok = run_cli("log", "verify", "--run", run_id, "--accept-unanchored", "--accept-gaps")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"but {sent} request(s) were recorded late" in ok.stdout
    # the gap record holds each cancel the bot sent, as it remembers it
    records = _log(tiny_home, run_id)
    gaps = _gaps(records)
    assert sum(g["requests"] for g in gaps) == sent
    held = [r for g in gaps for r in g["records"] if r["kind"] == "exchange"]
    cancels = {r["params"].get("clientOrderId") for r in held if r["method"] == "cancel_order"}
    assert cancels == set(placed)
    assert all(r["method"] != "create_order" for r in held)
    # nothing ordinary left while the log could not record (the stop's final reconcile was
    # refused before it left), bar the one request whose record found the disk full
    reducing = {"cancel_order", "fetch_open_orders", "fapiprivate_post_countdowncancelall"}
    ordinary = [r["method"] for r in held if r["method"] not in reducing]
    assert len(ordinary) <= 1, ordinary
    assert re.search(r"final reconcile failed: LogCannotRecord: not sent: fetch_\w+", err), err
    assert records[-1]["kind"] == "close"


def test_a_stop_on_a_full_disk_as_the_rate_rules_fall_due_still_confirms_and_disarms(
    bot_files: MakeBotFiles, tmp_path: Path, tiny_home: Path, bots: list[Bot]
) -> None:
    """The rate rules' re-read falls due every second ([limits] refresh_s = 1) and can never
    happen (the full disk fails the shared store's writes): the stop's listings, cancels and
    disarming still leave. (Held for the re-read, whose own store transaction failed, every
    listing failed: the stop could not confirm its cancelled orders gone and left the
    countdown armed on every symbol; CI met it when a stop crossed a minute.)"""
    sim, creds, bot = _bot(
        bot_files, tmp_path, LONG_COUNTDOWN_S, extra={"limits": {"refresh_s": 1}}
    )
    bots.append(bot)
    placed = [o["clientOrderId"] for o in open_orders_of(sim.state(), creds[0])]
    _fill(tiny_home)
    code, out, err = bot.finish(timeout=90)
    line = _error_line(code, err)
    state = sim.state()
    assert open_orders_of(state, creds[0]) == [], _said(out, err)
    mine = {o["clientOrderId"]: o for o in orders_of(state, creds[0])}
    assert all(mine[cid]["status"] == "CANCELED" for cid in placed), mine
    assert account_of(state, creds[0])["countdowns"] == {}, _said(out, err)
    assert "no order of this run is left open (confirmed at the exchange)" in line, line


def test_a_placement_answered_after_the_disk_filled_is_cancelled_and_named_in_the_line(
    bot_files: MakeBotFiles, tmp_path: Path, tiny_home: Path, bots: list[Bot]
) -> None:
    """The disk fills while a placement's answer is on its way (the simulator places the
    order, then holds the answer 5 s): the order is live at the exchange, but its record
    cannot be written and the ledger never learns it. The stop still finds it by client id
    and cancels it, and the line says a placement went out before the log broke."""
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": 2},
        kill={"deadman_countdown_s": LONG_COUNTDOWN_S},
        extra=NO_DISK_TRIP,
    )
    sim.set_faults({"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": HOLD_MS}})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 1, timeout=60)
    held = open_orders_of(sim.state(), creds[0])[0]["clientOrderId"]
    _fill(tiny_home)  # while the answer is held (the log finds the disk full within ~1 s)
    code, out, err = bot.finish(timeout=90)
    line = _error_line(code, err)
    state = sim.state()
    sim.set_faults({})
    assert state["counters"]["delayed_responses"] == 1
    # the truth: the order whose answer came late is cancelled, by the bot, and nothing else
    # of the bot's is open (its later placements were refused or never made)
    assert open_orders_of(state, creds[0]) == [], err[-3000:]
    mine = {o["clientOrderId"]: o for o in orders_of(state, creds[0])}
    assert mine[held]["status"] == "CANCELED", mine[held]
    assert account_of(state, creds[0])["countdowns"] == {}, _said(out, err)
    assert "sent before the log broke and answered after (create_order" in line, line
    assert held in line and "no order of this run is left open" in line, line


def test_a_disk_full_mid_run_whose_cancels_fail_names_the_countdown_that_cancels_them(
    bot_files: MakeBotFiles, tmp_path: Path, tiny_home: Path, bots: list[Bot]
) -> None:
    sim, creds, bot = _bot(bot_files, tmp_path, SHORT_COUNTDOWN_S, strategy={"stop_timeout_s": 3})
    bots.append(bot)
    placed = [o["clientOrderId"] for o in open_orders_of(sim.state(), creds[0])]
    sim.set_faults(CANCELS_FAIL)
    _fill(tiny_home)
    code, _out, err = bot.finish(timeout=90)
    line = _error_line(code, err)
    state = sim.state()
    left = open_orders_of(state, creds[0])
    countdowns = account_of(state, creds[0])["countdowns"]
    sim.set_faults({})
    # the truth: the orders stand, under the countdown the bot left armed
    assert sorted(o["clientOrderId"] for o in left) == sorted(placed)
    assert set(countdowns) == {"BTCUSDT", "ETHUSDT"}
    for cid in placed:
        assert cid in line
    m = re.search(r"left to the exchange's countdown, which cancels them at (\S+) UTC", line)
    assert m is not None, line
    said = time.strptime(m.group(1), "%H:%M:%S")
    said_s = said.tm_hour * 3600 + said.tm_min * 60 + said.tm_sec
    fires_s = int(max(countdowns.values()) / 1000) % 86400
    assert abs(said_s - fires_s) <= 2, (m.group(1), countdowns)
    # and the exchange's countdown does cancel them
    wait_until(lambda: open_orders_of(sim.state(), creds[0]) == [], timeout=SHORT_COUNTDOWN_S + 20)


def test_a_bot_placing_orders_on_a_full_disk_sends_no_new_one_and_logs_every_one_it_sent(
    bot_files: MakeBotFiles, tmp_path: Path, tiny_home: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "drip", "orders_per_symbol": 2},  # one more order every 0.2 s tick
        kill={"deadman_countdown_s": LONG_COUNTDOWN_S},
        extra=NO_DISK_TRIP,
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) >= 8, timeout=60)
    _fill(tiny_home)
    code, out, err = bot.finish(timeout=90)
    _error_line(code, err)
    state = sim.state()
    assert open_orders_of(state, creds[0]) == []  # every order of the bot cancelled, by it
    assert account_of(state, creds[0])["countdowns"] == {}, _said(out, err)
    (tiny_home / "filler").unlink()
    run_id = re.search(r"perpbot run (\S+):", out).group(1)  # type: ignore[union-attr]
    records = _log(tiny_home, run_id)
    gaps = _gaps(records)
    sent = [r for r in records if r["kind"] == "exchange"] + [
        r for g in gaps for r in g["records"] if r["kind"] == "exchange"
    ]
    created = {
        r["params"].get("clientOrderId") for r in sent if r["method"] == "create_order" and r["ok"]
    }
    # the truth: every order the exchange holds for the bot is in its log (as made or late)
    at_exchange = orders_of(state, creds[0])
    assert {o["clientOrderId"] for o in at_exchange} <= created
    # and none reached the exchange while the log could not record (ordinary: refused)
    late = [
        o
        for o in at_exchange
        if any(g["since"] * 1000 + 200 < o["time"] < g["ts"] * 1000 for g in gaps)
    ]
    assert late == [], late
