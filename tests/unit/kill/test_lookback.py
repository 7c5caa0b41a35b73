"""The restart's look back (perpbot.kill.lookback): from when the latest earlier run of this
strategy on this account last looked, less the margin, skewed to the exchange's clock; the
fills that run recorded are not said again; nothing to look back to, nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

from perpbot.engine.state import RunState
from perpbot.engine.unplaced import UnplacedFills
from perpbot.events import EventBus
from perpbot.kill.lookback import AT_MOST_S, MARGIN_MS, look_back

ACCOUNT = "sim|http://127.0.0.1:1|abc"


def _bot(home: Path, run_id: str, updated_at: float, **doc: object) -> None:
    bots = home / "bots"
    bots.mkdir(parents=True, exist_ok=True)
    body = {"run_id": run_id, "strategy": "s", "account": ACCOUNT, "updated_at": updated_at}
    (bots / f"{run_id}.json").write_text(json.dumps({**body, **doc}))


def _state(started: float, skew_ms: int = 0) -> RunState:
    state = RunState(run_id="now", strategy="s", symbols=["BTC/USDT:USDT"], started=started)
    state.exchange_start_ms = int(started * 1000) + skew_ms
    state.clock_skew_ms = skew_ms
    return state


def _unplaced() -> UnplacedFills:
    return UnplacedFills(bus=EventBus(), mine=lambda cid: False, strategy_tag="t")


def test_from_the_latest_earlier_runs_last_look_skewed_and_its_own_fills_not_said_again(
    state_home: Path,
) -> None:
    _bot(state_home, "old", 1000.0)
    _bot(state_home, "dead", 2000.0)
    _bot(state_home, "other", 2500.0, strategy="another")  # another strategy: not looked at
    _bot(state_home, "elsewhere", 2600.0, account="sim|x|y")  # another account: neither
    run = state_home / "runs" / "dead"
    run.mkdir(parents=True)
    lines = [json.dumps({"trade_id": "7"}), json.dumps({"trade_id": 8}), '{"trade_id": "9"']
    (run / "fills.jsonl").write_text("\n".join(lines))  # a torn last line (SIGKILL)
    unplaced = _unplaced()
    since = look_back(_state(3000.0, skew_ms=-500), unplaced, ACCOUNT, "now")
    assert since == int(2000.0 * 1000 - MARGIN_MS) - 500
    assert unplaced.said == {"7", "8"}
    assert unplaced.started_ms == 3000 * 1000 - 500


def test_no_earlier_run_no_look_back_and_at_most_seven_days(state_home: Path) -> None:
    unplaced = _unplaced()
    assert look_back(_state(3000.0), unplaced, ACCOUNT, "now") is None
    assert unplaced.started_ms is None and not unplaced.said
    _bot(state_home, "ancient", 1.0)
    started = 1.0 + AT_MOST_S + 3600.0
    assert look_back(_state(started), unplaced, ACCOUNT, "now") == int((started - AT_MOST_S) * 1000)
