"""A few seconds of exchange errors mid-run skip ticks; they do not end the run.

passivbot #570 and jesse #378: one RequestTimeout or ConnectionError killed the bot. At the
start that is retried (test_start_transient_faults.py); mid-run, on REST polling, each tick
reads the account, and once the retrier's attempts were spent on 503s the run ended with
exit 1 and a line of raw ccxt text (the request's URL with its signature, the 503's HTML).
Now the tick is skipped (no strategy tick, no heartbeat), said once, and the read tried
again at the next tick; once it works the run goes on trading. The simulator's fault
counter and orders are the truth.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    orders_of,
    start_bot,
    wait_until,
)

FAILED_READS = 9  # three ticks' worth: [retry] max_attempts = 3


def test_a_burst_of_503s_on_the_ticks_account_read_skips_ticks_and_the_run_goes_on(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "drip", "orders_per_symbol": 2},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.2},
        exchange={"streams": False},  # each tick reads the account over REST
        extra={"retry": {"max_attempts": 3, "base_delay_s": 0.05, "max_delay_s": 0.1}},
    )
    key = creds[0]
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(orders_of(sim.state(), key)) >= 4, timeout=30)

    fault = {"rate": 1.0, "count": FAILED_READS, "statuses": [503], "paths": ["/fapi/v3/account"]}
    sim.set_faults({"errors": fault})
    wait_until(lambda: sim.state()["counters"]["injected_errors"] == FAILED_READS, timeout=20)
    after_outage = len(orders_of(sim.state(), key))
    # the run is still there, and trades again (a drip order per tick)
    wait_until(lambda: len(orders_of(sim.state(), key)) >= after_outage + 3, timeout=20)
    assert bot.proc.poll() is None
    bot.signal(signal.SIGTERM)
    code, out, err = bot.finish(30)

    assert code == 0, err
    both = out + err
    assert "Traceback" not in both and "engine error" not in both
    failed = re.findall(r"reading the account failed: ExchangeNotAvailable[^\n]*", both)
    assert len(failed) == 1, both  # said once, not once per tick
    assert "the strategy's tick is skipped" in failed[0] and "said once" in failed[0]
    assert "signature=" not in both and "<html" not in both.lower()  # no raw ccxt text
    skipped = re.search(r"reading the account works again after (\d+) skipped tick", both)
    assert skipped is not None and int(skipped.group(1)) >= 2, both
