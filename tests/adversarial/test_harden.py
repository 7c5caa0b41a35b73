"""No core dumps for the commands that hold an API secret: RLIMIT_CORE is 0 (soft and hard)
and the process is not dumpable. Checked in real subprocesses: the module on its own (what
the process itself sees) and `perpbot run` / `perpbot keys add` while they run (what the
kernel reports for them in /proc/PID/limits)."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.kill_strategies.support import quiet_market, start_bot, write_strategy

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux")


@pytest.fixture(autouse=True)
def cores_allowed() -> Iterator[None]:
    """Children start with core dumps allowed (soft limit 1 MiB), so a 0 proves the call."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else min(1 << 20, hard)
    resource.setrlimit(resource.RLIMIT_CORE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


PROBE = """
import ctypes, resource
from perpbot.harden import no_core_dumps
before = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
result = no_core_dumps()
after = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)
limits = [l for l in open("/proc/self/limits") if l.startswith("Max core file size")]
print(before, after, resource.getrlimit(resource.RLIMIT_CORE), result, limits[0].split()[4:6])
try:
    resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))
    print("raised")
except (ValueError, OSError):
    print("cannot raise")
"""


def test_the_module_forbids_core_dumps_in_its_process() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.splitlines()
    assert out[0].startswith("1 0 (0, 0) Hardening(core_limit_zero=True, not_dumpable=True)")
    assert out[0].endswith("['0', '0']")
    if os.geteuid() != 0:  # (root with CAP_SYS_RESOURCE could: hence the dumpable flag too)
        assert out[1] == "cannot raise", "the hard limit must hold"


def core_limit(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return line.split()[4:6]
    raise AssertionError("no core limit line")


def wait_for_core_limit(proc: subprocess.Popen[Any], timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        limit = core_limit(proc.pid)
        if limit == ["0", "0"]:
            return limit
        time.sleep(0.05)
    return core_limit(proc.pid) if proc.poll() is None else ["exited"]


def test_perpbot_run_runs_without_core_dumps(sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory(market=quiet_market())
    toml = write_strategy(tmp_path, sim.base_url)
    bot = start_bot(toml, tmp_path, sim.create_account())
    try:
        assert wait_for_core_limit(bot.proc) == ["0", "0"]
    finally:
        bot.stop()


def test_perpbot_keys_runs_without_core_dumps() -> None:
    proc = subprocess.Popen(  # waits on stdin for the key: the secret's way in
        [sys.executable, "-m", "perpbot", "keys", "add", "p1", "--exchange", "sim", "--stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        text=True,
    )
    try:
        assert wait_for_core_limit(proc) == ["0", "0"]
    finally:
        proc.kill()
        proc.wait(10)


def test_perpbot_kill_direct_runs_without_core_dumps(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts the connection, never answers: kill waits
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = dict(os.environ, PERPBOT_SIM_API_KEY="k" * 16, PERPBOT_SIM_API_SECRET="s" * 16)
        proc = subprocess.Popen(
            [sys.executable, "-m", "perpbot", "kill", "--direct", "--url", url, "--wait", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        try:
            assert wait_for_core_limit(proc) == ["0", "0"]
        finally:
            proc.kill()
            proc.wait(10)
