"""A profile's grant: which scopes each command may use, and the profile's limits.

Stored as JSON next to the key in the keyring entry. A new profile may only read. A
command with no entry may do nothing (deny by default). Grants are immutable values:
editing returns a new grant, so the CLI can compare before and after (to ask before
widening) and the store can write the whole profile in one step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from perpbot.keys.scopes import COMMANDS, FORBIDDEN, GRANTABLE, READ, SCOPES

GRANT_VERSION = 1


class GrantError(ValueError):
    """A stored grant that cannot be read (names the field, never a secret)."""


def _sorted(scopes: Iterable[str]) -> list[str]:
    return sorted(set(scopes), key=SCOPES.index)


@dataclass(frozen=True)
class Limits:
    """Profile-wide limits, checked by the ScopeGate on every order and leverage change.

    ``symbols``: the only symbols that may be traded (None: any). ``max_notional``: the
    largest order (amount x price) that is not reduce-only. ``max_leverage``: the highest
    leverage ``set_leverage`` may set.
    """

    symbols: tuple[str, ...] | None = None
    max_notional: float | None = None
    max_leverage: float | None = None

    def is_empty(self) -> bool:
        return self.symbols is None and self.max_notional is None and self.max_leverage is None

    def to_json(self) -> dict[str, Any]:
        return {
            "symbols": list(self.symbols) if self.symbols is not None else None,
            "max_notional": self.max_notional,
            "max_leverage": self.max_leverage,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Limits:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise GrantError("limits: expected an object")
        unknown = set(obj) - {"symbols", "max_notional", "max_leverage"}
        if unknown:
            raise GrantError(f"limits: unknown field(s) {', '.join(sorted(unknown))}")
        symbols = obj.get("symbols")
        if symbols is not None and (
            not isinstance(symbols, list) or not all(isinstance(s, str) and s for s in symbols)
        ):
            raise GrantError("limits.symbols: expected a list of symbols or null")
        return cls(
            symbols=tuple(symbols) if symbols is not None else None,
            max_notional=_positive(obj.get("max_notional"), "limits.max_notional"),
            max_leverage=_positive(obj.get("max_leverage"), "limits.max_leverage"),
        )


def _positive(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GrantError(f"{where}: expected a number or null")
    if not math.isfinite(value) or value <= 0:
        raise GrantError(f"{where}: expected a number > 0")
    return float(value)


@dataclass(frozen=True)
class Grant:
    """Per-command scopes plus profile-wide limits."""

    commands: Mapping[str, frozenset[str]] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def initial(cls) -> Grant:
        """A new profile: every command may read, nothing else."""
        return cls(commands={c: frozenset({READ}) for c in COMMANDS})

    def scopes_for(self, command: str) -> frozenset[str]:
        return self.commands.get(command, frozenset())

    def allow(self, command: str, scopes: Iterable[str]) -> Grant:
        scopes = frozenset(scopes)
        bad = scopes - GRANTABLE
        if bad:
            raise GrantError(f"not grantable: {', '.join(_sorted(bad))}")
        commands = dict(self.commands)
        commands[command] = self.scopes_for(command) | scopes
        return replace(self, commands=commands)

    def deny(self, command: str, scopes: Iterable[str]) -> Grant:
        commands = dict(self.commands)
        commands[command] = self.scopes_for(command) - frozenset(scopes)
        return replace(self, commands=commands)

    def with_limits(self, limits: Limits) -> Grant:
        return replace(self, limits=limits)

    def widened(self, before: Grant) -> dict[str, list[str]]:
        """Scopes this grant adds to ``before``, per command."""
        out: dict[str, list[str]] = {}
        for command, scopes in self.commands.items():
            added = scopes - before.scopes_for(command)
            if added:
                out[command] = _sorted(added)
        return out

    def all_scopes(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for scopes in self.commands.values():
            out |= scopes
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "version": GRANT_VERSION,
            "commands": {c: _sorted(s) for c, s in sorted(self.commands.items())},
            "limits": self.limits.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Grant:
        """Parse a stored grant; GrantError names what is wrong."""
        if not isinstance(obj, dict):
            raise GrantError("expected an object")
        if obj.get("version") != GRANT_VERSION:
            raise GrantError(f"version: got {obj.get('version')!r}, expected {GRANT_VERSION}")
        raw = obj.get("commands")
        if not isinstance(raw, dict):
            raise GrantError("commands: expected an object")
        commands: dict[str, frozenset[str]] = {}
        for command, scopes in raw.items():
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise GrantError(f"commands.{command}: expected a list of scopes")
            unknown = set(scopes) - set(SCOPES)
            if unknown:
                raise GrantError(f"commands.{command}: unknown scope(s) {sorted(unknown)}")
            if set(scopes) & FORBIDDEN:
                raise GrantError(f"commands.{command}: transfer/withdraw can never be granted")
            commands[str(command)] = frozenset(scopes)
        return cls(commands=commands, limits=Limits.from_json(obj.get("limits")))
