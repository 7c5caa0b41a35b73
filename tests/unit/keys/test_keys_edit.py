"""Planning `perpbot keys scope` changes."""

from __future__ import annotations

import pytest

from perpbot.errors import BadInput, PermissionDenied
from perpbot.keys.edit import plan_scope_change
from perpbot.keys.store import new_profile

BTC = "BTC/USDT:USDT"


def profile():  # type: ignore[no-untyped-def]
    return new_profile("main", "k" * 20, "s" * 20, "sim")


def test_allow_without_command_reaches_only_commands_that_use_the_scope() -> None:
    change = plan_scope_change(profile(), command=None, allow="trade", deny=None)
    g = change.after.grant
    assert g.scopes_for("run") == {"read", "trade"}
    assert g.scopes_for("kill") == {"read"} and g.scopes_for("status") == {"read"}
    assert change.needs_confirmation == {"run": ["trade"]}
    cancel = plan_scope_change(profile(), command=None, allow="cancel", deny=None).after.grant
    assert cancel.scopes_for("run") == cancel.scopes_for("kill") == {"read", "cancel"}


def test_command_scoped_allow_and_deny() -> None:
    p = profile()
    change = plan_scope_change(p, command="kill", allow="cancel,reduce", deny="read")
    assert change.after.grant.scopes_for("kill") == {"cancel", "reduce"}
    assert change.needs_confirmation == {}  # cancel and reduce do not ask
    assert change.changed
    everywhere = plan_scope_change(p, command=None, allow=None, deny="read").after.grant
    assert all(not s for s in everywhere.commands.values())
    same = plan_scope_change(p, command="run", allow="read", deny=None)
    assert not same.changed


def test_limits_are_set_and_lifted() -> None:
    p = profile()
    g = plan_scope_change(
        p,
        command=None,
        allow=None,
        deny=None,
        symbols=f"{BTC}, {BTC}",
        max_notional="1000",
        max_leverage="3",
    ).after.grant
    assert g.limits.symbols == (BTC,) and g.limits.max_notional == 1000.0
    assert g.limits.max_leverage == 3.0
    lifted = plan_scope_change(
        p.updated_with(grant=g),
        command=None,
        allow=None,
        deny=None,
        symbols="any",
        max_notional="none",
    ).after.grant
    assert lifted.limits.symbols is None and lifted.limits.max_notional is None
    assert lifted.limits.max_leverage == 3.0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "nothing to change"),
        ({"allow": "fly"}, "--allow: got fly"),
        ({"allow": "trade", "command": "status"}, "never uses it"),
        ({"allow": "read", "command": "dance"}, "--command: got 'dance'"),
        ({"allow": "read", "deny": "read"}, "both name read"),
        ({"max_notional": "-5"}, "--max-notional: got '-5'"),
        ({"max_leverage": "lots"}, "--max-leverage: got 'lots'"),
        ({"symbols": "BTC USDT"}, "--symbols"),
    ],
)
def test_bad_changes_are_one_line_bad_input(kwargs: dict[str, str], fragment: str) -> None:
    args = {"command": None, "allow": None, "deny": None, **kwargs}
    with pytest.raises(BadInput) as info:
        plan_scope_change(profile(), **args)
    assert fragment in info.value.message


@pytest.mark.parametrize("scope", ["withdraw", "transfer", "read,withdraw"])
def test_fund_moving_scopes_are_refused_outright(scope: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        plan_scope_change(profile(), command="run", allow=scope, deny=None)
    assert info.value.code == "SCOPE_FORBIDDEN" and info.value.exit_code == 3
