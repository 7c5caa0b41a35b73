"""`perpbot alerts`: add, list, remove and test alert destinations (Apprise URLs).

The URL is read from a hidden prompt (or the first line of stdin when piped), never from the
command line: argv is visible to every user of the machine and lands in shell history.
"""

from __future__ import annotations

import socket
import sys
import time

import typer

from perpbot.errors import BadInput, RuntimeFailure

alerts_app = typer.Typer(
    name="alerts", help="Alert destinations (Apprise URLs in the keyring).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app)


def _read_url(name: str) -> str:
    if sys.stdin.isatty():
        # lazy: start-up speed of `perpbot --help` (getpass loads termios)
        import getpass

        return getpass.getpass(f"Apprise URL for {name} (hidden): ").strip()
    return sys.stdin.readline().strip()


@alerts_app.command("add")
def add(name: str = typer.Argument(..., help="A name for the destination, e.g. phone.")) -> None:
    """Store an Apprise URL (read from a hidden prompt or stdin) in the keyring."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.alerts.destinations import add_destination, check_name

    check_name(name)
    url = _read_url(name)
    if not url:
        raise BadInput(f"alert destination {name!r}: no URL given on the prompt or stdin")
    add_destination(name, url)
    print(f"alert destination {name!r} stored in the keyring (test it: perpbot alerts test)")


@alerts_app.command("list")
def list_cmd() -> None:
    """List destination names (never their URLs) and the global filters."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.alerts.destinations import config_path, load_global

    cfg = load_global()
    names = cfg.destinations or []
    if not names:
        print("no alert destinations (add one: perpbot alerts add NAME)")
        return
    for name in names:
        print(name)
    print(f"min_severity={cfg.min_severity} include={cfg.include} exclude={cfg.exclude}")
    print(f"(global config: {config_path()})")


@alerts_app.command("remove")
def remove(name: str = typer.Argument(..., help="The destination's name.")) -> None:
    """Remove a destination from the keyring and the global list."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.alerts.destinations import remove_destination

    remove_destination(name)
    print(f"alert destination {name!r} removed")


@alerts_app.command("test")
def test(
    destination: list[str] = typer.Option(
        None, "--destination", "-d", help="Only this destination (repeatable)."
    ),
) -> None:
    """Send a test message to every destination and print each result (exit 1 if any fail)."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.alerts.deliver import send
    from perpbot.alerts.destinations import list_names, load_urls
    from perpbot.alerts.rules import Alert

    names = list(destination) if destination else list_names()
    unknown = sorted(set(names) - set(list_names()))
    if unknown:
        raise BadInput(f"--destination {unknown[0]}: not found (see `perpbot alerts list`)")
    if not names:
        raise BadInput("no alert destinations to test (add one: perpbot alerts add NAME)")
    alert = Alert(
        code="ALERT_TEST",
        severity="info",
        sentence="perpbot alerts test: if you read this, alerts reach you.",
        key="ALERT_TEST",
        machine=socket.gethostname(),
        ts=time.time(),
    )
    failed = 0
    for name, url in load_urls(names).items():
        t0 = time.monotonic()
        ok, error = send(url, alert.title(), alert.body())
        took = time.monotonic() - t0
        if ok:
            print(f"{name}: ok ({took:.2f} s)")
        else:
            failed += 1
            print(f"{name}: FAILED ({took:.2f} s): {error}")
    if failed:
        raise RuntimeFailure(f"{failed} of {len(names)} alert destination(s) failed")


@alerts_app.command("notify")
def notify(
    code: str = typer.Argument(..., help="A reason code, e.g. RUN_CRASHED."),
    sentence: str = typer.Argument(..., help="What happened, in a sentence."),
    severity: str = typer.Option("critical", "--severity", help="info, warning or critical."),
    bot: str = typer.Option("", "--bot", help="The bot it is about."),
) -> None:
    """Send one alert to the global destinations now (for systemd OnFailure= and scripts)."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.alerts.destinations import list_names
    from perpbot.alerts.outbox import deliver_outbox, post
    from perpbot.alerts.rules import SEVERITIES

    if severity not in SEVERITIES:
        raise BadInput(f"--severity: got {severity!r}, expected one of {', '.join(SEVERITIES)}")
    if not list_names():
        raise BadInput("no alert destinations (add one: perpbot alerts add NAME)")
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.alerts.subscriber import failed_log_path

    post(code, severity, sentence, bot=bot, spawn=False)
    _handled, failed = deliver_outbox()
    if failed:
        raise RuntimeFailure(f"{failed} delivery(ies) of {code} failed; see {failed_log_path()}")
    print(f"alert {code} sent")
