"""The scope model: what a key may be used for, per exchange method and per CLI command.

Deny by default: a method with no scope is not callable, a command with no grant entry may
do nothing, and ``transfer`` and ``withdraw`` exist only so that they can be refused (no
perpbot command ever moves funds off the futures account).

Commands written elsewhere check a profile before they connect with :func:`require`, e.g.
``require(profile.grant, "kill", needed_scopes("kill", flatten=True), profile="main")``;
once connected, the ScopeGate judges every request by its ``Request.command``.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from perpbot.client.request import METHOD_CLASS
from perpbot.errors import PermissionDenied
from perpbot.events import Decision

if TYPE_CHECKING:
    from perpbot.events import EventBus

READ, TRADE, REDUCE, CANCEL, LEVERAGE, STOP, TRANSFER, WITHDRAW = (
    "read",
    "trade",
    "reduce",
    "cancel",
    "leverage",
    "stop",
    "transfer",
    "withdraw",
)
SCOPES: tuple[str, ...] = (READ, TRADE, REDUCE, CANCEL, LEVERAGE, STOP, TRANSFER, WITHDRAW)
#: Scopes perpbot refuses to grant at all: it never transfers or withdraws.
FORBIDDEN: frozenset[str] = frozenset({TRANSFER, WITHDRAW})
GRANTABLE: frozenset[str] = frozenset(SCOPES) - FORBIDDEN
#: What the paper account (embedded simulator, no profile) may do: everything grantable.
PAPER_SCOPES: frozenset[str] = GRANTABLE

SCOPE_HELP: dict[str, str] = {
    READ: "market data, balances, positions, orders",
    TRADE: "open or increase positions (any order)",
    REDUCE: "reduce-only orders",
    CANCEL: "cancel orders, arm the exchange's dead-man switch",
    LEVERAGE: "set leverage and margin mode",
    STOP: "conditional orders: stop, take-profit, trailing stop (Algo Order API)",
    TRANSFER: "move funds between accounts (never granted)",
    WITHDRAW: "withdraw funds (never granted)",
}

#: The scope of every exchange method the client may call. ``create_order`` is judged per
#: order (``trade``, or ``reduce`` for a reduce-only order); see :func:`method_scope`.
METHOD_SCOPE: dict[str, str] = {
    "load_markets": READ,
    "fetch_time": READ,
    "fetch_ticker": READ,
    "fetch_tickers": READ,
    "fetch_order_book": READ,
    "fetch_open_interest": READ,
    "fetch_ohlcv": READ,
    "fetch_funding_rate": READ,
    "fetch_mark_price": READ,
    "fetch_balance": READ,
    "fetch_positions": READ,
    "fetch_order": READ,
    "fetch_open_orders": READ,
    "fetch_my_trades": READ,
    "fetch_funding_history": READ,
    "fetch_leverage_tiers": READ,
    "fetch_margin_mode": READ,
    "fetch_position_mode": READ,
    "fapipublic_get_constituents": READ,
    "sapi_get_account_apirestrictions": READ,
    "create_order": TRADE,
    "cancel_order": CANCEL,
    "cancel_all_orders": CANCEL,
    "fapiprivate_post_countdowncancelall": CANCEL,
    "set_leverage": LEVERAGE,
    "set_margin_mode": LEVERAGE,
    "fapiprivate_post_algoorder": STOP,
    "fapiprivate_get_openalgoorders": READ,
    "fapiprivate_get_algoorder": READ,
    "fapiprivate_delete_algoorder": CANCEL,
    "fapiprivate_delete_algoopenorders": CANCEL,
    "fapiprivate_get_forceorders": READ,
}

# Method classes (perpbot.client.request.METHOD_CLASS) whose scope follows from the class
# alone, for methods registered there after this table was written. Orders and account
# changes never fall back: they must be listed above.
_CLASS_FALLBACK: dict[str, str] = {"read": READ, "cancel": CANCEL}


def method_scope(method: str) -> str | None:
    """The scope a method needs, or None when it is unmapped (and therefore denied)."""
    scope = METHOD_SCOPE.get(method)
    if scope is not None:
        return scope

    return _CLASS_FALLBACK.get(METHOD_CLASS.get(method, "other"))


@dataclass(frozen=True)
class CommandScopes:
    """The scopes a CLI command declares.

    ``needs``: always required. ``optional``: used only when the run does it (a strategy
    that sets leverage). ``options``: extra needs of a flag (``kill --flatten``).
    ``substitutes``: a scope that may stand in for a needed one (a wind-down ``run``
    holding ``reduce`` instead of ``trade`` may place reduce-only orders only).
    """

    needs: frozenset[str]
    optional: frozenset[str] = frozenset()
    options: Mapping[str, frozenset[str]] = field(default_factory=dict)
    substitutes: Mapping[str, str] = field(default_factory=dict)

    def uses(self) -> frozenset[str]:
        """Every scope the command may ever use (what a grant for it may hold)."""
        extra: set[str] = set(self.optional) | set(self.substitutes.values())
        for scopes in self.options.values():
            extra |= scopes
        return self.needs | extra


COMMANDS: dict[str, CommandScopes] = {
    "run": CommandScopes(
        needs=frozenset({READ, TRADE, CANCEL}),
        optional=frozenset({LEVERAGE, STOP}),
        substitutes={TRADE: REDUCE},
    ),
    "status": CommandScopes(needs=frozenset({READ})),
    "kill": CommandScopes(
        needs=frozenset({CANCEL}),
        optional=frozenset({READ}),
        options={"flatten": frozenset({REDUCE})},
    ),
    "keys audit": CommandScopes(needs=frozenset({READ})),
}


def normalize_command(name: str) -> str:
    """``keys-audit`` and ``keys_audit`` are ``keys audit``."""
    return " ".join(name.replace("-", " ").replace("_", " ").split())


def needed_scopes(command: str, **options: bool) -> frozenset[str]:
    """What ``command`` needs with the given flags (``needed_scopes("kill", flatten=True)``)."""
    spec = COMMANDS.get(command)
    if spec is None:
        raise KeyError(f"unknown command {command!r}")
    needs = set(spec.needs)
    for flag, on in options.items():
        if on:
            needs |= spec.options.get(flag, frozenset())
    return frozenset(needs)


def covers(allowed: Iterable[str], scope: str) -> bool:
    """Whether ``allowed`` covers ``scope``: a key that may trade may also reduce."""
    allowed = frozenset(allowed)
    return scope in allowed or (scope == REDUCE and TRADE in allowed)


def missing_scopes(command: str, allowed: Iterable[str], needed: Iterable[str]) -> list[str]:
    """The needed scopes that ``allowed`` does not cover, honouring substitutes."""
    allowed = frozenset(allowed)
    spec = COMMANDS.get(command)
    subs = spec.substitutes if spec else {}
    out: list[str] = []
    for scope in sorted(needed, key=SCOPES.index):
        if covers(allowed, scope):
            continue
        if scope in subs and covers(allowed, subs[scope]):
            continue
        out.append(scope)
    return out


def grant_hint(profile: str | None, command: str, scopes: Iterable[str]) -> str:
    """The exact command that would grant ``scopes`` to ``command``."""
    names = ",".join(sorted(set(scopes), key=SCOPES.index))
    return (
        f"perpbot keys scope {shlex.quote(profile or 'PROFILE')} "
        f"--command {shlex.quote(command)} --allow {names}"
    )


class GrantLike(Protocol):
    def scopes_for(self, command: str) -> frozenset[str]: ...


def denial(
    code: str,
    sentence: str,
    *,
    bus: EventBus | None = None,
    data: Mapping[str, Any] | None = None,
) -> PermissionDenied:
    """Publish the explained denial (when there is a bus) and return the error to raise."""
    if bus is not None:
        bus.publish(Decision("scope", "deny", code, sentence, dict(data or {})))
    return PermissionDenied(sentence, code=code)


def require(
    grant: GrantLike | None,
    command: str,
    scopes: Iterable[str] | None = None,
    *,
    profile: str | None = None,
    bus: EventBus | None = None,
    **options: bool,
) -> None:
    """Raise PermissionDenied (exit 3) unless ``grant`` lets ``command`` use ``scopes``.

    ``scopes`` defaults to what the command declares with ``options`` (e.g.
    ``flatten=True``). A None grant is the paper account: anything but transfer/withdraw.
    """
    needed = frozenset(scopes) if scopes is not None else needed_scopes(command, **options)
    forbidden = sorted(needed & FORBIDDEN)
    if forbidden:
        raise denial(
            "SCOPE_FORBIDDEN",
            f"command {command!r} asked for {', '.join(forbidden)}: perpbot never "
            "transfers or withdraws funds, and no grant can allow it",
            bus=bus,
            data={"profile": profile, "command": command, "scopes": forbidden},
        )
    allowed = PAPER_SCOPES if grant is None else grant.scopes_for(command)
    missing = missing_scopes(command, allowed, needed)
    if not missing:
        return
    have = ",".join(sorted(allowed, key=SCOPES.index)) or "nothing"
    sentence = (
        f"profile {profile!r} may not use scope {', '.join(missing)} for command "
        f"{command!r} (its grant for {command} allows: {have}); to grant it: "
        f"{grant_hint(profile, command, missing)}"
    )
    raise denial(
        "SCOPE_MISSING",
        sentence,
        bus=bus,
        data={"profile": profile, "command": command, "missing": missing, "allowed": have},
    )
