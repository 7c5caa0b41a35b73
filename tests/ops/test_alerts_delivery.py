"""Alerts to real receivers on loopback: content, dedup, failures recorded, never blocking."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from perpbot.alerts.destinations import add_destination, list_names
from perpbot.alerts.subscriber import attach
from perpbot.config import AlertsSection
from perpbot.events import Decision, EventBus, ExchangeCall
from perpbot.identity import RunIdentity
from tests.ops.receivers import MailReceiver, WebhookReceiver, mail_text, wait_until

IDENTITY = RunIdentity.of(run_id="r-1", bot="grid", exchange="sim", url=None)


def _recorded(bus: EventBus) -> list[Decision]:
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    return seen


def _tick(bus: EventBus) -> None:
    """Any event: the subscriber publishes delivery outcomes on the publisher's thread."""
    bus.publish(ExchangeCall(1, "fetch_time", "GET", "/fapi/v1/time", {}, 200, True))


def test_kill_trip_reaches_webhook_and_mail_with_code_and_sentence(
    memory_keyring: Any, state_home: Path
) -> None:
    with WebhookReceiver() as hook, MailReceiver() as mail:
        add_destination("hook", hook.url())
        add_destination("mail", mail.url())
        assert list_names() == ["hook", "mail"]
        bus = EventBus()
        seen = _recorded(bus)
        sub = attach(bus, AlertsSection(), IDENTITY)
        assert sub is not None
        sentence = "equity fell 12.0% from its peak (limit 10%); kill switch set to cancel"
        bus.publish(Decision("kill", "trip", "KILL_DRAWDOWN", sentence, {"level": "cancel"}))
        bodies = hook.wait_for(1)
        wait_until(lambda: mail.messages)
        sub.close()

    assert len(bodies) == 1 and hook.paths == ["/hook"]
    assert bodies[0]["title"] == "perpbot [critical] grid: KILL_DRAWDOWN"
    assert sentence in bodies[0]["message"] and "code KILL_DRAWDOWN" in bodies[0]["message"]
    assert "run r-1" in bodies[0]["message"]
    msg = mail.messages[0]
    assert "KILL_DRAWDOWN" in str(msg["Subject"]) and msg["To"] == "ops@example.com"
    assert sentence in mail_text(msg)
    sent = [d for d in seen if d.code == "ALERT_SENT"]
    assert sorted(d.data["destination"] for d in sent) == ["hook", "mail"]


def test_a_storm_of_429_waits_is_one_alert_with_its_count(
    memory_keyring: Any, state_home: Path
) -> None:
    with WebhookReceiver() as hook:
        add_destination("hook", hook.url())
        bus = EventBus()
        sub = attach(bus, AlertsSection(dedup_window_s=30), IDENTITY, coalesce_s=0.5)
        assert sub is not None
        for i in range(200):
            bus.publish(
                Decision(
                    "ratelimit",
                    "wait",
                    "RATE_WAIT_RETRY_AFTER",
                    f"the exchange answered 429; waiting {i} ms",
                    {"symbol": "BTC/USDT:USDT"},
                )
            )
        bodies = hook.wait_for(1)
        time.sleep(0.8)  # anything else would have been sent by now
        assert len(hook.bodies) == 1
        # a budget wait (not an alert) and an info decision below min_severity: nothing sent
        bus.publish(Decision("ratelimit", "wait", "RATE_WAIT_BUDGET", "waiting for budget"))
        bus.publish(Decision("retry", "retry", "RETRY_TRANSIENT", "retrying"))
        # the window is still open: 5 more 429s are held, then sent as one at close
        for _ in range(5):
            bus.publish(Decision("ratelimit", "wait", "RATE_WAIT_RETRY_AFTER", "429 again", {}))
        sub.close()
    assert "seen 200 times" in bodies[0]["message"]
    assert "waiting 199 ms" in bodies[0]["message"]  # the latest words
    assert len(hook.bodies) == 2
    assert "seen 5 times" in hook.bodies[1]["message"] and "429 again" in hook.bodies[1]["message"]


def test_filters_include_and_exclude(memory_keyring: Any, state_home: Path) -> None:
    with WebhookReceiver() as hook:
        add_destination("hook", hook.url())
        bus = EventBus()
        section = AlertsSection(
            min_severity="critical", include=["KILL_CLEARED"], exclude=["KILL_BAN"]
        )
        sub = attach(bus, section, IDENTITY, coalesce_s=0.0)
        assert sub is not None
        bus.publish(Decision("kill", "trip", "KILL_BAN", "banned"))  # excluded
        bus.publish(Decision("ratelimit", "tighten", "RATE_TIGHTEN", "cut"))  # warning < critical
        bus.publish(Decision("kill", "info", "KILL_CLEARED", "cleared"))  # included
        bus.publish(Decision("monitor", "alert", "MONITOR_CANCEL_BURST", "burst", {"trip": True}))
        sub.close()
    codes = sorted(b["title"].rsplit(" ", 1)[-1] for b in hook.bodies)
    assert codes == ["KILL_CLEARED", "MONITOR_CANCEL_BURST"]


def test_a_hanging_receiver_never_slows_the_publisher_and_the_failure_is_recorded(
    memory_keyring: Any, state_home: Path
) -> None:
    with WebhookReceiver(hang=True) as dead, WebhookReceiver() as good:
        secret_path = "T0KEN-s3cr3t-path"
        add_destination("dead", dead.url(secret_path, rto="0.3", cto="0.3"))
        add_destination("good", good.url())
        bus = EventBus()
        seen = _recorded(bus)
        sub = attach(bus, AlertsSection(), IDENTITY, attempts=2, base_delay_s=0.05)
        assert sub is not None
        t0 = time.perf_counter()
        bus.publish(Decision("kill", "trip", "KILL_BAN", "the exchange banned this IP (418)"))
        first = time.perf_counter() - t0
        took = []
        for i in range(2000):  # the kill path keeps publishing while the sender hangs
            t = time.perf_counter()
            bus.publish(Decision("kill", "act", "KILL_SEEN", f"kill switch seen {i}"))
            took.append(time.perf_counter() - t)
        wait_until(lambda: dead.hits >= 2 and good.bodies, timeout=20)
        wait_until(lambda: (state_home / "alerts" / "failed.jsonl").exists(), timeout=20)
        _tick(bus)
        wait_until(lambda: [d for d in seen if d.code == "ALERT_DELIVERY_FAILED"] or _tick(bus))
        sub.close(timeout=10)

    # a publish that waited for the receiver would take its 0.3 s read timeout; any single
    # publish may be descheduled on a loaded machine, so the typical one is the figure
    typical = statistics.median(took)
    assert first < 0.25 and typical < 0.005, (first, typical, max(took))
    failed = [d for d in seen if d.code == "ALERT_DELIVERY_FAILED"]
    assert failed[0].data["destination"] == "dead" and failed[0].data["attempts"] == 2
    assert "after 2 attempts" in failed[0].sentence
    lines = (state_home / "alerts" / "failed.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    assert rec["destination"] == "dead" and rec["code"] == "KILL_BAN"
    everything = (state_home / "alerts" / "failed.jsonl").read_text() + "".join(
        d.sentence + json.dumps(d.data) for d in seen
    )
    assert secret_path not in everything
    # the failure itself was alerted to the destination that works
    assert any("ALERT_DELIVERY_FAILED" in b["title"] for b in good.bodies)


def test_a_full_queue_drops_and_says_so(memory_keyring: Any, state_home: Path) -> None:
    with WebhookReceiver(hang=True) as dead:
        add_destination("dead", dead.url(rto="5", cto="1"))
        bus = EventBus()
        seen = _recorded(bus)
        sub = attach(bus, AlertsSection(queue_size=8), IDENTITY, attempts=1)
        assert sub is not None
        for i in range(200):
            bus.publish(Decision("kill", "trip", f"KILL_T{i}", "trip"))

        def accounted() -> int:
            """Dropped by the dedup queue, or refused by the courier's queue behind it."""
            _tick(bus)
            dropped = sum(d.data["dropped"] for d in seen if d.code == "ALERT_QUEUE_FULL")
            full = [d for d in seen if d.code == "ALERT_DELIVERY_FAILED" and "queue" in d.sentence]
            assert all(d.data["destination"] == "dead" for d in full)
            return dropped + len(full)

        # all but the few held in the two queues (8 + 8) and in flight, none silently
        wait_until(lambda: accounted() >= 200 - 8 - 8 - 2, timeout=10)
        sub.close(timeout=0.2)


def test_fills_and_the_periodic_summary_when_asked_for(
    memory_keyring: Any, state_home: Path
) -> None:
    with WebhookReceiver() as hook:
        add_destination("hook", hook.url())
        bus = EventBus()
        section = AlertsSection(fills=True, summary_interval_s=60)
        sub = attach(bus, section, IDENTITY, coalesce_s=0.0)
        assert sub is not None
        sub.on_tick(0, 0.0, {})  # nothing new
        sub.on_tick(3, 1.25, {"BTC/USDT:USDT": 0.002})
        sub._last_summary -= 61  # an hour later, as far as the summary is concerned
        sub.on_tick(3, -2.5, {"BTC/USDT:USDT": 0.002, "ETH/USDT:USDT": 0.0})
        sub.close()
    by_code = {b["title"].rsplit(" ", 1)[-1]: b["message"] for b in hook.bodies}
    assert sorted(by_code) == ["RUN_FILL", "RUN_SUMMARY"]
    assert by_code["RUN_FILL"].startswith("3 new fill(s); 3 this run")
    assert "net PnL -2.50 USDT; 3 fills; positions: BTC/USDT:USDT 0.002" in by_code["RUN_SUMMARY"]


def test_a_hanging_destination_delays_no_other(memory_keyring: Any, state_home: Path) -> None:
    with WebhookReceiver(hang=True) as dead, WebhookReceiver() as good:
        add_destination("a-dead", dead.url())  # apprise's default timeouts: seconds each try
        add_destination("b-good", good.url())
        bus = EventBus()
        sub = attach(bus, AlertsSection(), IDENTITY)
        assert sub is not None
        t0 = time.monotonic()
        bus.publish(Decision("kill", "trip", "KILL_BAN", "banned (418)"))
        wait_until(lambda: dead.hits >= 1 and good.bodies, timeout=10)
        took = time.monotonic() - t0
        bus.publish(Decision("kill", "trip", "KILL_DRAWDOWN", "drawdown"))
        wait_until(lambda: len(good.bodies) >= 2, timeout=10)
        sub.close(timeout=0.5)
    assert took < 3.0, took
    assert [b["title"].rsplit(" ", 1)[-1] for b in good.bodies] == ["KILL_BAN", "KILL_DRAWDOWN"]
