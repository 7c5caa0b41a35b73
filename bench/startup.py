"""Start-up cost of the CLI against `import ccxt`, same run.

`perpbot --help` and `perpbot kill` must stay cheap: in an emergency nobody should wait for
ccxt to import. Prints the median wall time of each over N runs (default 15) and the ratio.
Targets: `perpbot --help` at most 22% and `perpbot kill` (setting the switch in a scratch
state dir, not waiting for bots) at most 20% of `python -c "import ccxt"`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time


def median_wall(cmd: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    env = dict(os.environ, PERPBOT_HOME=tempfile.mkdtemp(prefix="perpbot-bench-"))
    py = sys.executable
    # warm the .pyc caches first
    for cmd in ([py, "-c", "import ccxt"], [py, "-m", "perpbot", "--help"]):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = median_wall([py, "-c", "pass"], runs, env)
    ccxt = median_wall([py, "-c", "import ccxt"], runs, env)
    helps = median_wall([py, "-m", "perpbot", "--help"], runs, env)
    version = median_wall([py, "-m", "perpbot", "--version"], runs, env)
    kill = median_wall([py, "-m", "perpbot", "kill", "--wait", "0", "-r", "bench"], runs, env)
    print(f"runs per command:            {runs}")
    print(f"python -c pass:              {base * 1000:7.1f} ms")
    print(f"python -c 'import ccxt':     {ccxt * 1000:7.1f} ms")
    print(
        f"perpbot --help:              {helps * 1000:7.1f} ms  ({helps / ccxt:.1%} of import ccxt)"
    )
    share = version / ccxt
    print(f"perpbot --version:           {version * 1000:7.1f} ms  ({share:.1%} of import ccxt)")
    print(f"perpbot kill --wait 0:       {kill * 1000:7.1f} ms  ({kill / ccxt:.1%} of import ccxt)")
    print("targets: perpbot --help <= 22%, perpbot kill <= 20% of import ccxt")


if __name__ == "__main__":
    main()
