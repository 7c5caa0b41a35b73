"""`perpbot keys`: key profiles in the OS keyring and what each command may do with them.

Keys and secrets are read from a hidden prompt, from stdin (``--stdin``: two lines) or from
PERPBOT_API_KEY / PERPBOT_API_SECRET, never from the command line (argv is visible to every
user of the machine and lands in shell history). Keys are shown masked to their last 4
characters; secrets are never shown.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import typer

from perpbot.errors import EXIT_FAIL, BadInput, RuntimeFailure
from perpbot.harden import no_core_dumps

if TYPE_CHECKING:
    from perpbot.keys.store import StoredProfile

ENV_KEY = "PERPBOT_API_KEY"
ENV_SECRET = "PERPBOT_API_SECRET"
MAX_SECRET_LEN = 1024

keys_app = typer.Typer(
    help="API key profiles in the OS keyring, scoped per command.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


@keys_app.callback()
def _harden() -> None:
    """Every keys command may hold a secret in memory: no core file may hold it."""
    no_core_dumps()


# -- reading secrets ------------------------------------------------------------------------
def _clean(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise BadInput(f"{what}: empty, expected the value from the exchange's API management")
    if len(value) > MAX_SECRET_LEN or any(c.isspace() or not c.isprintable() for c in value):
        raise BadInput(
            f"{what}: not a valid API credential (it contains spaces or control characters, "
            f"or is longer than {MAX_SECRET_LEN} characters); its value is not shown"
        )
    return value


def read_credentials(use_stdin: bool) -> tuple[str, str]:
    """(key, secret) from stdin, the environment or a hidden prompt, in that order."""
    if use_stdin:
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
        if len(lines) != 2:
            raise BadInput(
                f"--stdin: got {len(lines)} non-empty line(s), expected 2 (the API key, "
                "then the secret)"
            )
        return _clean(lines[0], "API key"), _clean(lines[1], "API secret")
    env_key, env_secret = os.environ.get(ENV_KEY), os.environ.get(ENV_SECRET)
    if env_key or env_secret:
        if not (env_key and env_secret):
            missing = ENV_SECRET if env_key else ENV_KEY
            raise BadInput(f"{missing}: missing, set both {ENV_KEY} and {ENV_SECRET}")
        return _clean(env_key, ENV_KEY), _clean(env_secret, ENV_SECRET)
    if not sys.stdin.isatty():
        raise BadInput(
            "no terminal to prompt on: pipe the key and secret as two lines with --stdin, "
            f"or set {ENV_KEY} and {ENV_SECRET}"
        )
    key = typer.prompt("API key", hide_input=True)
    secret = typer.prompt("API secret", hide_input=True)
    return _clean(key, "API key"), _clean(secret, "API secret")


def _check_exchange(exchange: str) -> str:
    if exchange == "sim":
        return exchange
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    import ccxt

    if exchange not in ccxt.exchanges:
        raise BadInput(
            f'--exchange: got {exchange!r}, expected "sim" or a ccxt exchange id (e.g. binanceusdm)'
        )
    return exchange


def _echo(text: str = "") -> None:
    typer.echo(text)


# -- commands -------------------------------------------------------------------------------
@keys_app.command(
    "add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def add(
    ctx: typer.Context,
    profile: str = typer.Argument(..., help="Profile name (letters, digits, . _ -)."),
    exchange: str = typer.Option(..., "--exchange", "-e", help='"sim" or a ccxt exchange id.'),
    use_stdin: bool = typer.Option(
        False, "--stdin", help="Read the key and secret from stdin (two lines)."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Rotate the key of an existing profile, keeping its grant."
    ),
) -> None:
    """Store a key: hidden prompt, --stdin, or PERPBOT_API_KEY/PERPBOT_API_SECRET.

    A new profile may only read; widen it with `perpbot keys scope`.
    """
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.keys import store

    if ctx.args:  # never echoed: it may be a key typed where it does not belong
        raise BadInput(
            f"keys add: got {len(ctx.args)} unexpected argument(s) (not shown); the key and "
            "secret are never read from the command line (other users can see it and shells "
            "keep it): use the hidden prompt, --stdin or PERPBOT_API_KEY/PERPBOT_API_SECRET. "
            "If that was a key, rotate it."
        )
    store.check_name(profile)
    exchange = _check_exchange(exchange)
    existing = store.load_profile(profile) if store.profile_exists(profile) else None
    if existing is not None and not replace:
        raise BadInput(
            f"profile {profile!r}: already exists; rotate its key with --replace, or "
            f"`perpbot keys remove {profile}` first"
        )
    if existing is None and replace:
        raise store.not_found(profile)
    key, secret = read_credentials(use_stdin)
    if existing is not None:
        if existing.exchange != exchange:
            raise BadInput(
                f"--exchange: got {exchange!r}, but profile {profile!r} is for "
                f"{existing.exchange!r}; remove it and add it again to change exchange"
            )
        store.save_profile(existing.updated_with(api_key=key, secret=secret))
        _echo(f"profile {profile}: key replaced ({store.mask(key)}), grant kept")
        return
    store.save_profile(store.new_profile(profile, key, secret, exchange))
    _echo(f"profile {profile}: stored key {store.mask(key)} for {exchange}; it may only read")
    _echo(
        f"grant more with e.g.: perpbot keys scope {profile} --command run "
        "--allow read,trade,cancel"
    )


@keys_app.command("list")
def list_(
    json_output: bool = typer.Option(False, "--json", help="One JSON array on stdout."),
) -> None:
    """List the stored profiles (keys masked)."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.keys import store

    found, missing = store.list_profiles()
    if json_output:
        _echo(json.dumps([_profile_json(p) for p in found], indent=2))
    elif not found:
        _echo("no key profiles (add one with `perpbot keys add NAME --exchange ID`)")
    else:
        width = max(len(p.name) for p in found)
        for p in found:
            _echo(f"{p.name:<{width}}  {p.exchange:<12} {p.masked_key}  updated {p.updated}")
    for name in missing:
        print(
            f"perpbot: warning: profile {name!r} is listed but its entry is gone", file=sys.stderr
        )


def _profile_json(p: StoredProfile) -> dict[str, object]:
    return {
        "profile": p.name,
        "exchange": p.exchange,
        "api_key": p.masked_key,
        "grant": p.grant.to_json()["commands"],
        "limits": p.grant.limits.to_json(),
        "created": p.created,
        "updated": p.updated,
    }


@keys_app.command("show")
def show(
    profile: str = typer.Argument(..., help="Profile name."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Show a profile: masked key, exchange, grant per command, limits, dates."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.keys import store

    p = store.load_profile(profile)
    if json_output:
        _echo(json.dumps(_profile_json(p), indent=2))
        return
    _echo(f"profile   {p.name}")
    _echo(f"exchange  {p.exchange}")
    _echo(f"api key   {p.masked_key}")
    _echo("secret    (stored, never shown)")
    _echo(f"created   {p.created}")
    _echo(f"updated   {p.updated}")
    _echo("grant (scopes per command; anything not listed is denied)")
    _print_grant(p)
    _print_limits(p)


def _num(x: float | None) -> str:
    return "none" if x is None else f"{x:g}"


@keys_app.command("remove")
def remove(profile: str = typer.Argument(..., help="Profile name.")) -> None:
    """Delete a profile (key, secret and grant) from the keyring."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.keys import store

    store.remove_profile(profile)
    _echo(
        f"profile {profile}: removed from the keyring (the key still exists on the exchange: "
        "revoke it there if it is no longer needed)"
    )


@keys_app.command("scope")
def scope(
    profile: str = typer.Argument(..., help="Profile name."),
    command: str | None = typer.Option(
        None,
        "--command",
        "-c",
        help="run, status, kill or 'keys audit' (default: every command that uses the scope).",
    ),
    allow: str | None = typer.Option(None, "--allow", help="Scopes to add, comma-separated."),
    deny: str | None = typer.Option(None, "--deny", help="Scopes to remove, comma-separated."),
    symbols: str | None = typer.Option(
        None,
        "--symbols",
        help="The only symbols this profile may trade (comma-separated; 'any' lifts the limit).",
    ),
    max_notional: str | None = typer.Option(
        None, "--max-notional", help="Largest order notional (not reduce-only); 'none' lifts it."
    ),
    max_leverage: str | None = typer.Option(
        None, "--max-leverage", help="Highest leverage set_leverage may set; 'none' lifts it."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Do not ask before granting trade or leverage."
    ),
) -> None:
    """Restrict or widen what a profile may do, per command, and its limits.

    Scopes: read, trade, reduce, cancel, leverage. transfer and withdraw are refused.
    """
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.keys import store
    from perpbot.keys.edit import plan_scope_change

    change = plan_scope_change(
        store.load_profile(profile),
        command=command,
        allow=allow,
        deny=deny,
        symbols=symbols,
        max_notional=max_notional,
        max_leverage=max_leverage,
    )
    risky = change.needs_confirmation
    if risky and not yes:
        # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
        from perpbot.keys.scopes import SCOPE_HELP

        what = "; ".join(
            f"{c}: " + ", ".join(f"{s} ({SCOPE_HELP[s]})" for s in scopes)
            for c, scopes in risky.items()
        )
        try:
            ok = typer.confirm(f"profile {profile}: grant {what}?", default=False)
        except typer.Abort:
            raise BadInput(
                f"granting {what} needs confirmation: answer y at the prompt, or pass --yes"
            ) from None
        if not ok:
            raise RuntimeFailure(f"profile {profile}: nothing changed")
    if not change.changed:
        _echo(f"profile {profile}: no change (the grant already says that)")
        return
    store.save_profile(change.after)
    _echo(f"profile {profile}: grant updated")
    _print_grant(change.after, change.before)
    _print_limits(change.after)


def _print_grant(after: StoredProfile, before: StoredProfile | None = None) -> None:
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.keys.scopes import COMMANDS, SCOPES

    old = before.grant if before is not None else None
    grant = after.grant
    commands = list(COMMANDS) + sorted(set(grant.commands) - set(COMMANDS))
    width = max(len(c) for c in commands)
    for command in commands:
        scopes = sorted(grant.scopes_for(command), key=SCOPES.index)
        line = f"  {command:<{width}}  {', '.join(scopes) or '(nothing)'}"
        if old is not None and old.scopes_for(command) != grant.scopes_for(command):
            was = sorted(old.scopes_for(command), key=SCOPES.index)
            line += f"   (was: {', '.join(was) or 'nothing'})"
        _echo(line)


def _print_limits(after: StoredProfile) -> None:
    limits = after.grant.limits
    _echo("limits")
    _echo(f"  symbols       {', '.join(limits.symbols) if limits.symbols is not None else 'any'}")
    _echo(f"  max notional  {_num(limits.max_notional)}")
    _echo(f"  max leverage  {_num(limits.max_leverage)}")


@keys_app.command("audit")
def audit(
    profile: str = typer.Argument(..., help="Profile name."),
    url: str | None = typer.Option(
        None, "--url", help="Base URL of a running `perpbot sim serve` (needed for sim profiles)."
    ),
    sandbox: bool = typer.Option(False, "--sandbox", help="Use the exchange's testnet."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Ask the exchange what the key may do; exit 1 if it can withdraw, is not IP-restricted,
    or may do more than its perpbot grant needs."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.app.keys_audit import run_audit
    from perpbot.cli.verbose import attach_verbose

    observe = attach_verbose if os.environ.get("PERPBOT_VERBOSE") else None
    report = run_audit(profile, url=url, sandbox=sandbox, observe=observe)
    if json_output:
        _echo(json.dumps(report.to_json(), indent=2))
    else:
        verdict = "passed" if report.ok else "FAILED"
        _echo(f"profile {report.profile} ({report.exchange}, key {report.masked_key}): {verdict}")
        for f in report.findings:
            _echo(f"  {f.level.upper():<4}  {f.sentence}")
    if not report.ok:
        raise typer.Exit(EXIT_FAIL)
