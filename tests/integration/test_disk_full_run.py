"""The disk fills while a bot runs (a real full tmpfs as its state dir, root only).

The bot cannot record requests in its signed log any more, so it must stop: one line that
says what could not be written, exit 1, no traceback; and its orders must not outlive it at
the exchange (the dead-man countdown it armed, and did not disarm, cancels them there). The
simulator's own open orders are the truth.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kill_strategies.support import (
    Bot,
    open_orders_of,
    quiet_market,
    start_bot,
    wait_until,
    write_strategy,
)

COUNTDOWN_S = 5.0


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


def test_a_disk_full_mid_run_stops_the_bot_in_one_line_and_no_order_outlives_it(
    sim_factory: Any, tmp_path: Path, tiny_home: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 2},
        kill={"deadman_countdown_s": COUNTDOWN_S},
        # the disk trip would halt at once on a 16 MB disk: off, to meet a really full disk
        extra={"disk": {"halt_free_mb": 0, "halt_free_pct": 0, "warn_free_pct": 0}},
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 4, timeout=60)
    _fill(tiny_home)
    code, _out, err = bot.finish(timeout=90)
    assert code == 1, err[-2000:]
    assert "Traceback" not in err and "internal error" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("perpbot: error:")]
    assert len(errors) == 1, err[-2000:]
    assert "No space left on device" in errors[0] and "audit log" in errors[0]
    # what it could not cancel itself, the exchange's countdown cancels
    wait_until(lambda: open_orders_of(sim.state(), creds[0]) == [], timeout=COUNTDOWN_S + 20)
