"""Grants: defaults, editing, JSON round trip, and refusing damaged or forbidden grants."""

from __future__ import annotations

import json

import pytest

from perpbot.keys.grant import Grant, GrantError, Limits
from perpbot.keys.scopes import COMMANDS


def test_new_grant_only_reads_and_unknown_commands_get_nothing() -> None:
    g = Grant.initial()
    assert {c: set(s) for c, s in g.commands.items()} == {c: {"read"} for c in COMMANDS}
    assert g.scopes_for("index") == frozenset()
    assert g.limits.is_empty()


def test_allow_deny_and_widened() -> None:
    g = Grant.initial()
    wider = g.allow("run", ["trade", "cancel"])
    assert wider.scopes_for("run") == {"read", "trade", "cancel"}
    assert wider.widened(g) == {"run": ["trade", "cancel"]}
    assert wider.deny("run", ["trade"]).scopes_for("run") == {"read", "cancel"}
    assert g.scopes_for("run") == {"read"}  # immutable
    with pytest.raises(GrantError):
        g.allow("run", ["withdraw"])


def test_json_round_trip() -> None:
    g = (
        Grant.initial()
        .allow("kill", ["cancel", "reduce"])
        .with_limits(Limits(symbols=("BTC/USDT:USDT",), max_notional=500.0, max_leverage=3.0))
    )
    text = json.dumps(g.to_json())
    assert Grant.from_json(json.loads(text)) == g


@pytest.mark.parametrize(
    "obj",
    [
        None,
        {"version": 2, "commands": {}},
        {"version": 1, "commands": []},
        {"version": 1, "commands": {"run": ["read", "fly"]}},
        {"version": 1, "commands": {"run": ["withdraw"]}},
        {"version": 1, "commands": {}, "limits": {"max_notional": -1}},
        {"version": 1, "commands": {}, "limits": {"max_leverage": True}},
        {"version": 1, "commands": {}, "limits": {"symbols": "BTC"}},
        {"version": 1, "commands": {}, "limits": {"colour": 1}},
    ],
)
def test_damaged_grants_are_refused(obj: object) -> None:
    with pytest.raises(GrantError):
        Grant.from_json(obj)
