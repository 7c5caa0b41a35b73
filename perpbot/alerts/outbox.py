"""Alerts from short-lived commands (``perpbot kill``, a refused run), sent by a detached
process so that the command never waits for a phone.

``post`` is standard library only (``perpbot kill`` must stay fast and must not import
apprise): it writes the alert as one JSON file under ``<state>/alerts/outbox/`` (atomically)
and starts ``python -m perpbot.alerts.outbox`` in its own session, then returns. That
process takes a lock (one sender at a time), sends every file in the outbox to the global
destinations (``<state>/alerts.toml``) with the same filters, retries and redaction as a
run, removes each file once handled and appends failures to ``alerts/failed.jsonl``.

Call from a command, after its real work is done::

    from perpbot.alerts.outbox import post
    post("KILL_SET", "critical", "kill switch set to cancel for all by alice: manual")
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from perpbot.paths import state_dir


def outbox_dir() -> Path:
    path = state_dir() / "alerts" / "outbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def post(
    code: str,
    severity: str,
    sentence: str,
    *,
    bot: str = "",
    run_id: str = "",
    spawn: bool = True,
) -> Path | None:
    """Queue one alert and start the sender; never raises (an alert must not fail a kill).
    Without a global alert config (no `perpbot alerts add` yet) it costs one stat."""
    try:
        if not (state_dir() / "alerts.toml").exists():
            return None
        # lazy: start-up speed of `perpbot kill` (only with alert destinations configured)
        import subprocess
        import uuid

        folder = outbox_dir()
        record = {
            "code": code,
            "severity": severity,
            "sentence": sentence,
            "bot": bot,
            "run_id": run_id,
            "ts": time.time(),
        }
        name = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        tmp = folder / f".{name}.tmp"
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, folder / name)
        if spawn:
            subprocess.Popen(
                [sys.executable, "-m", "perpbot.alerts.outbox"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        return folder / name
    except Exception:
        return None


def deliver_outbox(**overrides: Any) -> tuple[int, int]:
    """Send every queued alert (one sender at a time): (files handled, failed deliveries)."""
    # lazy: start-up speed of `perpbot kill` (it posts alerts; pydantic, socket load only to
    # deliver)
    import socket

    from perpbot.alerts.destinations import load_global, load_urls
    from perpbot.alerts.rules import Alert, Filters
    from perpbot.alerts.subscriber import build_dispatcher, record_failure

    folder = outbox_dir()
    with open(folder.parent / "outbox.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0, 0  # another sender is at work: it loops until the outbox is empty
        cfg = load_global()
        names = list(cfg.destinations or [])
        urls = load_urls(names) if names else {}
        filters = Filters(cfg.min_severity, tuple(cfg.include), tuple(cfg.exclude))

        failed = 0

        def on_result(alert: Alert, result: Any) -> None:
            nonlocal failed
            if not result.ok:
                failed += 1
                record_failure(alert, result)

        handled = 0
        while True:
            files = sorted(p for p in folder.glob("*.json"))
            if not files:
                return handled, failed
            params = {"coalesce_s": 0.0, "queue_size": len(files) + 8, **overrides}
            dispatcher = build_dispatcher(cfg, on_result, urls, **params)
            dispatcher.start()
            for path in files:
                try:
                    rec = json.loads(path.read_text(encoding="utf-8"))
                    code, severity = str(rec["code"]), str(rec["severity"])
                except (OSError, ValueError, KeyError):
                    path.unlink(missing_ok=True)
                    continue
                if urls and filters.wants(code, severity):
                    dispatcher.submit(
                        Alert(
                            code=code,
                            severity=severity,
                            sentence=str(rec.get("sentence", "")),
                            key=f"{code}:{path.name}",  # each queued alert is its own message
                            bot=str(rec.get("bot", "")),
                            run_id=str(rec.get("run_id", "")),
                            machine=socket.gethostname(),
                            ts=float(rec.get("ts") or time.time()),
                        )
                    )
                handled += 1
            dispatcher.close(timeout=600)
            for path in files:
                path.unlink(missing_ok=True)


if __name__ == "__main__":
    deliver_outbox()
