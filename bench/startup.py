"""Start-up cost of the CLI against `import ccxt`, same run.

`perpbot --help` and `perpbot kill` must stay cheap: in an emergency nobody should wait for
ccxt to import. Prints the median wall time of each over N runs (default 15) and the ratio.
Targets: `perpbot --help` at most 22% and `perpbot kill` (setting the switch in a fresh
scratch state dir each run, not waiting for bots) at most 20% of `python -c "import ccxt"`.
perpbot runs with its bytecode cached, as pip installs it (bench/support/bytecode.py).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.bytecode import installed_env, note


def median_wall(
    cmd: list[str], runs: int, env: dict[str, str], *, fresh_home: bool = False
) -> float:
    """Median wall time of ``cmd``; with ``fresh_home`` each run gets its own empty state dir
    (a kill into a dir whose switch is already set takes a shorter path)."""
    times = []
    for _ in range(runs):
        if fresh_home:
            env = dict(env, PERPBOT_HOME=tempfile.mkdtemp(prefix="perpbot-bench-"))
        t0 = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    env = installed_env(PERPBOT_HOME=tempfile.mkdtemp(prefix="perpbot-bench-"))
    py = sys.executable
    # warm the .pyc caches first
    kill = [py, "-m", "perpbot", "kill", "--wait", "0", "-r", "bench"]
    for cmd in ([py, "-c", "import ccxt"], [py, "-m", "perpbot", "--help"], kill):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = median_wall([py, "-c", "pass"], runs, env)
    ccxt = median_wall([py, "-c", "import ccxt"], runs, env)
    helps = median_wall([py, "-m", "perpbot", "--help"], runs, env)
    version = median_wall([py, "-m", "perpbot", "--version"], runs, env)
    kill_s = median_wall(kill, runs, env, fresh_home=True)
    print(f"runs per command:            {runs}; {note()}")
    print(f"python -c pass:              {base * 1000:7.1f} ms")
    print(f"python -c 'import ccxt':     {ccxt * 1000:7.1f} ms")
    print(
        f"perpbot --help:              {helps * 1000:7.1f} ms  ({helps / ccxt:.1%} of import ccxt)"
    )
    share = version / ccxt
    print(f"perpbot --version:           {version * 1000:7.1f} ms  ({share:.1%} of import ccxt)")
    share = kill_s / ccxt
    print(f"perpbot kill --wait 0:       {kill_s * 1000:7.1f} ms  ({share:.1%} of import ccxt)")
    print("targets: perpbot --help <= 22%, perpbot kill <= 20% of import ccxt")


if __name__ == "__main__":
    main()
