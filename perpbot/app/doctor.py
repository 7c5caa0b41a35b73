"""`perpbot doctor`: is this machine ready to run a bot live? One line per check, with the fix.

Checks: the keyring (usable, unlocked, not plaintext), the clock against the exchange (or
the simulator), the state dir's permissions, free disk space, core dumps (a crash must not
write the process's memory, API secrets included, to disk), the alert destinations
(reachable over TCP; `perpbot alerts test` sends a real message) and the key audit (the
exchange's own view of the key's permissions). A check fails, warns, passes or is skipped
(nothing to check); any failure makes the command exit 1.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import stat
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from perpbot.alerts.deliver import load_apprise
from perpbot.alerts.destinations import list_names, load_urls
from perpbot.config import DiskSection, LoadedStrategy
from perpbot.errors import PerpbotError
from perpbot.keys.backend import backend_name, usable_keyring
from perpbot.ops.disk import MB, DiskMonitor
from perpbot.paths import state_dir

MAX_CLOCK_OFFSET_MS = 1000.0  # Binance refuses beyond recvWindow (5 s); drift shows first
CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # "ok", "warn", "fail", "skip"
    detail: str
    fix: str = ""

    def line(self) -> str:
        tail = f"; fix: {self.fix}" if self.fix and self.status in ("fail", "warn") else ""
        return f"{self.status.upper():<5} {self.name:<13} {self.detail}{tail}"


def check_keyring() -> Check:
    try:
        backend = usable_keyring()
        backend.get_password("perpbot", "index")  # a locked keyring refuses here
    except PerpbotError as exc:
        return Check("keyring", "fail", exc.message, "see docs/service.md (headless keyring)")
    except Exception as exc:
        return Check(
            "keyring",
            "fail",
            f"the keyring refused a read ({type(exc).__name__}): locked?",
            "unlock it (docs/service.md: headless keyring)",
        )
    name = backend_name(backend)
    if name.startswith("keyrings.alt."):
        return Check(
            "keyring",
            "warn",
            f"{name}: keys in a file next to their key or password (chosen explicitly)",
            "a Secret Service, unlocked by a human after boot (docs/service.md)",
        )
    return Check("keyring", "ok", f"{name} usable and unlocked")


Reading = tuple[float, float, float]  # (local ms before, exchange ms, local ms after)


def _timed(read: Callable[[], float]) -> Reading:
    t0 = time.time() * 1000.0
    server = read()
    return t0, server, time.time() * 1000.0


def _http_time(url: str) -> Reading:
    def read() -> float:
        with urllib.request.urlopen(f"{url}/fapi/v1/time", timeout=10) as resp:
            return float(json.loads(resp.read())["serverTime"])

    return _timed(read)


def _time_of(loaded: LoadedStrategy) -> tuple[str, Callable[[], Reading]]:
    """Where the exchange clock is read, and how (timed around the request alone)."""
    ex = loaded.config.exchange
    if ex.url:
        url = ex.url
        return url, lambda: _http_time(url)
    if ex.id == "sim":

        def embedded() -> Reading:
            # lazy: the simulator (pydantic models, aiohttp server) loads only for an embedded sim
            from perpbot.sim import SimConfig, start_in_thread

            handle = start_in_thread(SimConfig(seed=loaded.config.sim.seed))
            try:
                return _http_time(handle.base_url)
            finally:
                handle.stop()

        return "the embedded simulator", embedded

    def ccxt_time() -> Reading:
        import ccxt  # lazy: ccxt costs a second of start-up; only this check needs it

        exchange = getattr(ccxt, ex.id)({"timeout": ex.timeout_ms})
        if ex.sandbox:
            exchange.set_sandbox_mode(True)
        exchange.fetch_time()  # the first call pays for DNS and TLS
        return _timed(lambda: float(exchange.fetch_time()))

    return ex.id, ccxt_time


def check_clock(loaded: LoadedStrategy | None) -> Check:
    if loaded is None:
        return Check("clock", "skip", "no strategy given (perpbot doctor STRATEGY.toml)")
    where, read = _time_of(loaded)
    try:
        t0, server, t1 = read()
    except Exception as exc:
        return Check(
            "clock",
            "fail",
            f"cannot read the clock of {where} ({type(exc).__name__})",
            "check the network and [exchange] in the strategy file",
        )
    offset = server - (t0 + t1) / 2.0
    detail = f"offset vs {where}: {offset:+.0f} ms (round trip {t1 - t0:.0f} ms)"
    if abs(offset) > MAX_CLOCK_OFFSET_MS:
        return Check(
            "clock",
            "fail",
            detail,
            "enable time sync: `timedatectl set-ntp true` (systemd-timesyncd or chrony)",
        )
    return Check("clock", "ok", detail)


def check_state_dir() -> Check:
    path = state_dir()
    st = path.stat()
    problems = []
    if st.st_uid != os.getuid():
        problems.append(f"owned by uid {st.st_uid}, not this user ({os.getuid()})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        problems.append(f"mode {stat.S_IMODE(st.st_mode):o} lets other users in")
    if not os.access(path, os.W_OK):
        problems.append("not writable")
    if problems:
        return Check("state-dir", "fail", f"{path}: " + "; ".join(problems), f"chmod 700 {path}")
    return Check("state-dir", "ok", f"{path} (mode 700, yours)")


def check_disk(section: DiskSection) -> Check:
    path = state_dir()
    usage = shutil.disk_usage(path)
    level = DiskMonitor.level_of(section, usage.free, usage.total)
    pct = 100.0 * usage.free / usage.total if usage.total else 100.0
    detail = f"{usage.free / MB:,.0f} MB free on {path} ({pct:.1f}%)"
    fix = "free space or prune: perpbot runs prune --keep 30d; perpbot log prune"
    if level == "halt":
        return Check("disk", "fail", detail + " - new orders would be halted", fix)
    if level == "warn":
        return Check("disk", "warn", detail + f" - below {section.warn_free_pct:g}%", fix)
    return Check("disk", "ok", detail)


def check_core_dumps() -> Check:
    soft, _hard = resource.getrlimit(resource.RLIMIT_CORE)
    if soft == 0:
        return Check("core-dumps", "ok", "off (RLIMIT_CORE = 0)")
    shown = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    return Check(
        "core-dumps",
        "fail",
        f"on (ulimit -c = {shown}): a crash would write memory, API secrets included, to disk",
        "`ulimit -c 0` before starting, or LimitCORE=0 in the unit (deploy/perpbot@.service)",
    )


def _endpoint(url: str) -> tuple[str, int] | None:
    """Where an Apprise URL delivers to (host, port), if it can be told."""
    apprise = load_apprise()

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return None
    secure = bool(getattr(plugin, "secure", False))
    smtp = getattr(plugin, "smtp_host", None)
    if smtp:
        return str(smtp), int(getattr(plugin, "port", None) or (465 if secure else 25))
    notify_url = getattr(plugin, "notify_url", None)
    if isinstance(notify_url, str) and notify_url.startswith("http"):
        parts = urlsplit(notify_url)
        if parts.hostname:
            return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    host = getattr(plugin, "host", None)
    if host:
        return str(host), int(getattr(plugin, "port", None) or (443 if secure else 80))
    return None


def check_alerts(names: list[str] | None = None) -> Check:
    try:
        names = list_names() if names is None else names
        if not names:
            return Check(
                "alerts",
                "warn",
                "no alert destinations: nothing leaves this machine when something goes wrong",
                "perpbot alerts add NAME (then perpbot alerts test)",
            )
        urls = load_urls(names)
    except PerpbotError as exc:
        return Check("alerts", "fail", exc.message, "perpbot alerts add NAME")
    bad: list[str] = []
    unknown: list[str] = []
    for name, url in urls.items():
        target = _endpoint(url)
        if target is None:
            unknown.append(name)
            continue
        try:
            with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
                pass
        except OSError as exc:
            bad.append(f"{name} ({exc.strerror or type(exc).__name__})")
    if bad:
        return Check(
            "alerts",
            "fail",
            f"unreachable: {', '.join(bad)}",
            "check the network/firewall; perpbot alerts test shows each result",
        )
    detail = f"{len(urls) - len(unknown)} of {len(urls)} destination(s) reachable over TCP"
    if unknown:
        detail += f" ({', '.join(unknown)}: not checkable here, use perpbot alerts test)"
    return Check("alerts", "ok", detail)


def check_key_audit(loaded: LoadedStrategy | None) -> Check:
    if loaded is None or not loaded.config.exchange.profile:
        return Check("key-audit", "skip", "no key profile (paper trading on the simulator)")
    ex = loaded.config.exchange
    # lazy: the exchange stack (ccxt, ~1 s) loads only when a key profile is audited
    from perpbot.app.keys_audit import run_audit

    try:
        report = run_audit(str(ex.profile), url=ex.url, sandbox=ex.sandbox)
    except PerpbotError as exc:
        return Check("key-audit", "fail", exc.message, f"perpbot keys audit {ex.profile}")
    if not report.ok:
        first = report.failures[0]
        return Check(
            "key-audit",
            "fail",
            f"{ex.profile}: {first.sentence}",
            "restrict the key on the exchange (docs/keys.md)",
        )
    return Check("key-audit", "ok", f"{ex.profile}: permissions match the grant")


def run_checks(loaded: LoadedStrategy | None) -> list[Check]:
    section = loaded.config.disk if loaded else DiskSection()
    alert_names = None
    if loaded is not None and loaded.config.alerts.destinations is not None:
        alert_names = list(loaded.config.alerts.destinations)
    checks: list[Callable[[], Check]] = [
        check_keyring,
        lambda: check_clock(loaded),
        check_state_dir,
        lambda: check_disk(section),
        check_core_dumps,
        lambda: check_alerts(alert_names),
        lambda: check_key_audit(loaded),
    ]
    out = []
    for check in checks:
        try:
            out.append(check())
        except Exception as exc:  # a check that breaks is a failed check, not a traceback
            name = getattr(check, "__name__", "check").removeprefix("check_").replace("_", "-")
            out.append(Check(name, "fail", f"the check itself failed ({type(exc).__name__})"))
    return out


def as_json(checks: list[Check]) -> str:
    return json.dumps([asdict(c) for c in checks], sort_keys=True)
