"""One message to one destination through Apprise, and errors without secrets in them."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

MAX_DETAIL = 200


@dataclass(frozen=True, slots=True)
class Delivery:
    destination: str
    ok: bool
    attempts: int = 1
    error: str = ""


def secret_parts(url: str) -> list[str]:
    """Every piece of a URL that could be a secret (user, password, token, path, query
    values), longest first; the scheme and short words are left."""
    body = url.split("://", 1)[-1]
    parts = {p for p in re.split(r"[/:@?&=#,]+", body) if len(p) >= 4}
    return sorted(parts | {url, body}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    for part in secret_parts(url):
        text = text.replace(part, "***")
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def load_apprise() -> Any:
    """The apprise module, its logger kept off stderr: a plugin's log line may quote its URL.
    Imported lazily: apprise loads ~100 plugins; only commands that send or check need it."""
    # lazy: apprise scans its plugins (~0.3 s); it loads only when an alert is sent
    import apprise

    log = logging.getLogger("apprise")
    if log.propagate:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return apprise


def send(url: str, title: str, body: str) -> tuple[bool, str]:
    """Send once; (True, "") or (False, what went wrong, scrubbed of the URL's secrets)."""
    apprise = load_apprise()
    sender = apprise.Apprise()
    if not sender.add(url):
        return False, "not an Apprise URL Apprise can use"
    try:
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = bool(sender.notify(body=body, title=title))
            log = captured.getvalue()
    except Exception as exc:  # a plugin bug must not escape into the sender thread
        return False, scrub(f"{type(exc).__name__}: {exc}", url)
    if ok:
        return True, ""
    lines = [ln for ln in log.splitlines() if ln.strip()]
    return False, scrub(" / ".join(lines[-2:]) or "the destination refused the message", url)
