"""Alert destinations: Apprise URLs in the OS keyring, names in the global config.

An Apprise URL holds a secret (a bot token, a webhook path, a mail password), so it is
stored like an API key: in the keyring (service ``perpbot-alerts``, user = the name), read
from a hidden prompt or stdin, never from argv, and never printed: every message names the
destination, not its URL.

The global config ``<state>/alerts.toml`` holds what is not secret, for runs without an
``[alerts]`` section and for commands such as ``perpbot kill``::

    destinations = ["phone", "ops-mail"]
    min_severity = "warning"
    include = []            # codes or patterns always sent (KILL_*)
    exclude = []            # codes or patterns never sent
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from perpbot.alerts.deliver import load_apprise
from perpbot.config import AlertsSection, format_validation_error, read_toml
from perpbot.errors import BadInput, RuntimeFailure
from perpbot.fsutil import atomic_write_text
from perpbot.keys.backend import usable_keyring
from perpbot.paths import state_dir

SERVICE = "perpbot-alerts"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CONFIG_NAME = "alerts.toml"


def config_path() -> Path:
    return state_dir() / CONFIG_NAME


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise BadInput(
            f"alert destination name {name!r}: expected 1-64 letters, digits, '_', '.' or '-'"
        )
    return name


def load_global() -> AlertsSection:
    """The global alert settings (defaults when the file does not exist)."""
    path = config_path()
    if not path.exists():
        return AlertsSection()
    data = read_toml(path)
    try:
        return AlertsSection.model_validate(data)
    except ValidationError as exc:
        raise BadInput(format_validation_error(str(path), exc, ("alerts",))) from None


def save_global(cfg: AlertsSection) -> None:
    doc: dict[str, Any] = cfg.model_dump(exclude_none=True, exclude_defaults=True)
    doc["destinations"] = sorted(set(cfg.destinations or []))
    atomic_write_text(config_path(), tomli_w.dumps(doc), mode=0o600)


def _keyring() -> Any:
    return usable_keyring()


def _failure(action: str, exc: BaseException) -> RuntimeFailure:
    # the keyring's own text is dropped: it could quote what was being stored
    return RuntimeFailure(f"keyring: cannot {action} ({type(exc).__name__})", code="ALERTS_KEYRING")


def validate_url(name: str, url: str) -> None:
    """Refuse a URL Apprise cannot use, without ever repeating it."""
    apprise = load_apprise()

    if not url or any(c.isspace() for c in url) or apprise.Apprise.instantiate(url) is None:
        raise BadInput(
            f"alert destination {name!r}: not an Apprise URL Apprise can use (the URL is not "
            "shown because it may hold a secret; see https://github.com/caronc/apprise/wiki)"
        )


def add_destination(name: str, url: str) -> None:
    check_name(name)
    validate_url(name, url)
    backend = _keyring()
    try:
        backend.set_password(SERVICE, name, url)
        if backend.get_password(SERVICE, name) != url:
            raise RuntimeFailure("keyring: the alert URL did not read back as written")
    except RuntimeFailure:
        raise
    except Exception as exc:
        raise _failure(f"store alert destination {name!r}", exc) from None
    cfg = load_global()
    names = set(cfg.destinations or [])
    names.add(name)
    cfg.destinations = sorted(names)
    save_global(cfg)


def remove_destination(name: str) -> None:
    check_name(name)
    cfg = load_global()
    if name not in (cfg.destinations or []):
        raise BadInput(f"alert destination {name!r}: not found (see `perpbot alerts list`)")
    backend = _keyring()
    try:
        backend.delete_password(SERVICE, name)
    except Exception as exc:
        if type(exc).__name__ != "PasswordDeleteError":
            raise _failure(f"remove alert destination {name!r}", exc) from None
    cfg.destinations = [n for n in cfg.destinations or [] if n != name]
    save_global(cfg)


def list_names() -> list[str]:
    return list(load_global().destinations or [])


def load_urls(names: list[str]) -> dict[str, str]:
    """name -> URL for each name; a name missing from the keyring is a one-line error."""
    backend = _keyring()
    out: dict[str, str] = {}
    for name in names:
        try:
            url = backend.get_password(SERVICE, name)
        except Exception as exc:
            raise _failure(f"read alert destination {name!r}", exc) from None
        if not url:
            raise BadInput(
                f"alert destination {name!r}: not in the keyring (add it with "
                f"`perpbot alerts add {name}`)"
            )
        out[name] = url
    return out


def effective(section: AlertsSection | None) -> AlertsSection:
    """A run's settings: its ``[alerts]`` section, with the global destinations when the
    section names none."""
    glob = load_global()
    if section is None:
        return glob
    if section.destinations is None:
        return section.model_copy(update={"destinations": list(glob.destinations or [])})
    return section
