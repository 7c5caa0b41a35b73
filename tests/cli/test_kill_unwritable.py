"""`perpbot kill` when the KILL file cannot be written still stops the bots, and says how.

The state dir is made unwritable for real where the platform lets a test do it: a file
where the state dir should be (always), a read-only directory (chmod for a normal user; a
read-only tmpfs for root, who ignores permissions) and a full tmpfs (root only); "disk
full" is also injected at the one function that writes files (perpbot.fsutil), so it runs
everywhere. The "bots" are real processes recorded in the state dir as a running bot
records itself; the truth is whether they received SIGTERM (they exit 0 on it).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from perpbot.fsutil import atomic_write_json
from perpbot.kill.sentinel import new_entry, read_sentinel, write_sentinel
from tests.conftest import ROOT, run_cli
from tests.integration.kill_strategies.support import open_orders_of, quiet_market, sim_env

# A stand-in bot: exits 0 on SIGTERM (as `perpbot run` does after its clean stop).
BOT = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


class FakeBot:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", BOT], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"
        self.started_at = time.time()

    def record(
        self, home: Path, run_id: str, *, profile: str | None, meta: bool = False, host: str = ""
    ) -> None:
        """What a running bot leaves in the state dir (status file, or only its run folder)."""
        doc = {"run_id": run_id, "state": "running", "pid": self.proc.pid, "strategy": "grid",
               "profile": profile, "started_at": self.started_at, "host": host or None}  # fmt: skip
        if meta:
            atomic_write_json(home / "runs" / run_id / "meta.json", doc)
        else:
            atomic_write_json(home / "bots" / f"{run_id}.json", doc)

    def exit_code(self, timeout: float = 10.0) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def fake_bots() -> Iterator[list[FakeBot]]:
    started: list[FakeBot] = []
    yield started
    for bot in started:
        bot.stop()


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def read_only(home: Path) -> Iterator[None]:
    """Make ``home`` read-only for this user, for real."""
    if os.geteuid() != 0:
        home.chmod(0o555)
        try:
            yield
        finally:
            home.chmod(0o755)
        return
    # root ignores permission bits: a tmpfs with the same contents, remounted read-only
    saved = home.with_name(home.name + ".saved")
    home.rename(saved)
    home.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(home)):
        home.rmdir()
        saved.rename(home)
        pytest.skip("running as root and cannot mount a tmpfs: no read-only dir to test with")
    try:
        subprocess.run(["cp", "-a", f"{saved}/.", str(home)], check=True)
        assert _mount("-o", "remount,ro", str(home))
        yield
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)
        home.rmdir()
        saved.rename(home)


def _check_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert "internal error" not in result.stderr


def test_read_only_state_dir_sigterms_covered_bots_and_exits_1(
    state_home: Path, fake_bots: list[FakeBot]
) -> None:
    covered, other = FakeBot(), FakeBot()
    fake_bots += [covered, other]
    covered.record(state_home, "r-main", profile="main")
    other.record(state_home, "r-other", profile="other")
    write_sentinel(new_entry("halt", "an older kill", scope="run:another-strategy"))
    with read_only(state_home):
        result = run_cli("kill", "--profile", "main", "--wait", "5")
        cleared = run_cli("kill", "--clear", "--yes")
    _check_no_traceback(result)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("kill switch NOT set: cannot write it (")
    assert "a bot started now would trade" in lines[0]
    pid = covered.proc.pid
    assert f"sent SIGTERM to bot r-main (grid, pid {pid}): its clean stop cancels" in result.stdout
    assert any(line.startswith(f"bot r-main (grid, pid {pid}) exited ") for line in lines)
    assert covered.exit_code() == 0  # it got SIGTERM
    assert other.proc.poll() is None  # not covered by --profile main: left alone
    assert "r-other" not in result.stdout
    # a kill naming a profile also acts on the exchange with it (here: no keyring, named)
    assert "acting on the exchange with profile main (--direct)" in lines
    assert "--direct failed: " in result.stdout
    assert "the kill switch could not be written" in result.stderr
    # clearing the switch there says it could not, in one line
    _check_no_traceback(cleared)
    assert cleared.returncode == 1
    (line,) = cleared.stderr.strip().splitlines()
    assert line.startswith("perpbot: error: the kill switch could not be cleared (")
    assert line.endswith("): it still stands")
    assert [e.scope for e in read_sentinel().entries] == ["run:another-strategy"]  # type: ignore[union-attr]


def test_read_only_state_dir_direct_still_cancels_on_the_exchange(
    state_home: Path, sim_factory: Any
) -> None:
    sim = sim_factory(market=quiet_market())
    key, secret = sim.create_account()
    ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    ex.load_markets()
    # 4 % from the market: inside PERCENT_PRICE (+-5 %), and they rest in a quiet market
    ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.002, 57600.0)
    ex.create_order("ETH/USDT:USDT", "limit", "sell", 0.05, 3120.0)
    assert len(open_orders_of(sim.state(), key)) == 2
    with read_only(state_home):
        result = run_cli(
            "kill", "--direct", "--url", sim.base_url, "--wait", "0", env=sim_env((key, secret))
        )
    _check_no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("kill switch NOT set: cannot write it (")
    assert "--direct's signed request log and rate budget are in " in result.stdout
    assert f"direct on {sim.base_url}: cancelled 2 order(s)" in result.stdout
    assert open_orders_of(sim.state(), key) == []


def test_a_file_where_the_state_dir_should_be(tmp_path: Path, fake_bots: list[FakeBot]) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("not a directory\n")
    result = run_cli("kill", "--reason", "drill", "--wait", "1", env={"PERPBOT_HOME": str(home)})
    _check_no_traceback(result)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"kill switch NOT set: cannot write it ({home}: File exists); running bots do not see "
        "it and a bot started now would trade",
        f"the state dir {home} is not a directory: no record of running bots",
        "nothing acted on the exchange: give --direct (with --profile, --url or --strategy) "
        "to cancel there",
    ]
    assert len(result.stderr.strip().splitlines()) == 1
    shown = run_cli("kill", "--show", env={"PERPBOT_HOME": str(home)})
    _check_no_traceback(shown)
    assert shown.stdout.startswith("kill switch: level cancel for all bots")
    assert f"the state dir {home} is not a directory" in shown.stdout
    cleared = run_cli("kill", "--clear", "--yes", env={"PERPBOT_HOME": str(home)})
    _check_no_traceback(cleared)
    assert cleared.returncode == 1
    (line,) = cleared.stderr.strip().splitlines()
    assert line.endswith("File exists): it still stands")
    # the same state dir, read by `perpbot run`: the switch cannot be known, so no start
    refused = run_cli(
        "run", str(ROOT / "strategies" / "grid.toml"), "--duration", "1",
        env={"PERPBOT_HOME": str(home)},
    )  # fmt: skip
    assert refused.returncode != 0


ENOSPC_KILL = """
import errno, sys
import perpbot.fsutil as fsutil

def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

fsutil.atomic_write_bytes = full
from perpbot.cli.entry import main
main(["kill", *sys.argv[1:]])
"""


def test_disk_full_on_write_still_stops_the_bots_from_run_folders(
    state_home: Path, fake_bots: list[FakeBot]
) -> None:
    bot, remote = FakeBot(), FakeBot()
    fake_bots += [bot, remote]
    bot.record(state_home, "r-crashy", profile=None, meta=True)  # only its run folder
    remote.record(state_home, "r-remote", profile=None, meta=True, host="far-away")
    result = subprocess.run(
        [sys.executable, "-c", ENOSPC_KILL, "--reason", "disk full drill", "--wait", "5"],
        capture_output=True, text=True, cwd=str(ROOT), timeout=60,
    )  # fmt: skip
    _check_no_traceback(result)
    assert result.returncode == 1
    assert "kill switch NOT set: cannot write it (" in result.stdout
    assert "No space left on device" in result.stdout
    assert f"sent SIGTERM to bot r-crashy (grid, pid {bot.proc.pid})" in result.stdout
    assert bot.exit_code() == 0
    assert not (state_home / "KILL").exists()
    # a pid recorded on another host says nothing here: named, not signalled
    assert (
        f"bot r-remote (grid, pid {remote.proc.pid}) is recorded on host far-away: not "
        "signalled from here" in result.stdout
    )
    assert remote.proc.poll() is None


def test_a_full_tmpfs(tmp_path: Path, fake_bots: list[FakeBot]) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    home = tmp_path / "tiny"
    home.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(home)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        bot = FakeBot()
        fake_bots.append(bot)
        bot.record(home, "r-full", profile=None)
        (home / "kill").mkdir()
        (home / "KILL.lock").touch()
        with contextlib.suppress(OSError), open(home / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        result = run_cli("kill", "--wait", "5", "--json", env={"PERPBOT_HOME": str(home)})
        _check_no_traceback(result)
        assert result.returncode == 1
        doc = json.loads(result.stdout)
        assert doc["sentinel"] is None and "No space left on device" in doc["write_error"]
        assert doc["bots"] == ["r-full"]
        assert bot.exit_code() == 0
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)
