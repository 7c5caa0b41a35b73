"""Planning a `perpbot keys scope` change: parse, validate, compute the new grant.

Pure: nothing is stored here, so the CLI can show what changes and ask before widening.
``--allow`` adds scopes and ``--deny`` removes them; without ``--command`` a scope is
added to every command that declares it (least privilege: ``--allow trade`` reaches
``run`` only) and removed from every command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from perpbot.errors import BadInput, PermissionDenied
from perpbot.keys.grant import Grant, Limits
from perpbot.keys.scopes import (
    COMMANDS,
    FORBIDDEN,
    LEVERAGE,
    SCOPES,
    TRADE,
    normalize_command,
)
from perpbot.keys.store import StoredProfile

#: Adding one of these asks for confirmation (``--yes`` for scripts).
CONFIRM_SCOPES = frozenset({TRADE, LEVERAGE})
_LIFT = {"none", "any", "*", ""}


def parse_scopes(text: str | None, option: str) -> frozenset[str]:
    if text is None:
        return frozenset()
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    if not names:
        raise BadInput(f"{option}: empty, expected scopes such as read,trade,cancel")
    unknown = sorted(set(names) - set(SCOPES))
    if unknown:
        raise BadInput(
            f"{option}: got {', '.join(unknown)}, expected scopes among {', '.join(SCOPES)}"
        )
    return frozenset(names)


def parse_command(text: str | None) -> str | None:
    if text is None:
        return None
    name = normalize_command(text)
    if name not in COMMANDS:
        raise BadInput(
            f"--command: got {text!r}, expected one of {', '.join(repr(c) for c in COMMANDS)}"
        )
    return name


def parse_symbols(text: str | None, current: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if text is None:
        return current
    if text.strip().lower() in _LIFT:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if any(c.isspace() for c in s)]
    if not names or bad:
        raise BadInput(
            f"--symbols: got {text!r}, expected comma-separated symbols such as "
            "BTC/USDT:USDT,ETH/USDT:USDT (or 'any')"
        )
    return tuple(dict.fromkeys(names))


def parse_limit(text: str | None, option: str, current: float | None) -> float | None:
    if text is None:
        return current
    if text.strip().lower() in _LIFT:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"{option}: got {text!r}, expected a number > 0 (or 'none')")
    return value


@dataclass
class ScopeChange:
    before: StoredProfile
    after: StoredProfile
    widened: dict[str, list[str]] = field(default_factory=dict)

    @property
    def needs_confirmation(self) -> dict[str, list[str]]:
        return {
            c: [s for s in v if s in CONFIRM_SCOPES]
            for c, v in self.widened.items()
            if CONFIRM_SCOPES & set(v)
        }

    @property
    def changed(self) -> bool:
        return self.before.grant != self.after.grant


def plan_scope_change(
    stored: StoredProfile,
    *,
    command: str | None,
    allow: str | None,
    deny: str | None,
    symbols: str | None = None,
    max_notional: str | None = None,
    max_leverage: str | None = None,
) -> ScopeChange:
    """The profile after the change (not stored). Refuses transfer/withdraw (exit 3)."""
    if all(v is None for v in (allow, deny, symbols, max_notional, max_leverage)):
        raise BadInput(
            "nothing to change: give --allow, --deny, --symbols, --max-notional or --max-leverage"
        )
    cmd = parse_command(command)
    adding = parse_scopes(allow, "--allow")
    removing = parse_scopes(deny, "--deny")
    forbidden = sorted(adding & FORBIDDEN)
    if forbidden:
        raise PermissionDenied(
            f"--allow {','.join(forbidden)}: refused; perpbot never transfers or withdraws "
            "funds, so no profile may be granted that (keep it off on the exchange too)",
            code="SCOPE_FORBIDDEN",
        )
    both = sorted(adding & removing)
    if both:
        raise BadInput(f"--allow and --deny both name {', '.join(both)}")
    grant: Grant = stored.grant
    for scope in sorted(adding, key=SCOPES.index):
        targets = [cmd] if cmd else [c for c, spec in COMMANDS.items() if scope in spec.uses()]
        for target in targets:
            uses = COMMANDS[target].uses()
            if scope not in uses:
                raise BadInput(
                    f"--allow {scope}: command {target!r} never uses it (it uses: "
                    f"{', '.join(sorted(uses, key=SCOPES.index))})"
                )
            grant = grant.allow(target, [scope])
    if removing:
        for target in [cmd] if cmd else sorted(set(grant.commands) | set(COMMANDS)):
            if target in grant.commands:
                grant = grant.deny(target, removing)
    limits = grant.limits
    grant = grant.with_limits(
        Limits(
            symbols=parse_symbols(symbols, limits.symbols),
            max_notional=parse_limit(max_notional, "--max-notional", limits.max_notional),
            max_leverage=parse_limit(max_leverage, "--max-leverage", limits.max_leverage),
        )
    )
    after = stored.updated_with(grant=grant)
    return ScopeChange(before=stored, after=after, widened=grant.widened(stored.grant))
