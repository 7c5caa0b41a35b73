"""The scope model: method and command declarations, coverage, require()."""

from __future__ import annotations

import pytest

from perpbot.client.request import METHOD_CLASS
from perpbot.errors import PermissionDenied
from perpbot.events import Decision, EventBus
from perpbot.keys.grant import Grant
from perpbot.keys.scopes import (
    COMMANDS,
    FORBIDDEN,
    METHOD_SCOPE,
    covers,
    grant_hint,
    method_scope,
    missing_scopes,
    needed_scopes,
    normalize_command,
    require,
)


def test_every_client_method_maps_to_a_grantable_scope() -> None:
    unmapped = [m for m in METHOD_CLASS if method_scope(m) is None]
    assert unmapped == [], f"add these methods to perpbot.keys.scopes.METHOD_SCOPE: {unmapped}"
    assert not set(METHOD_SCOPE.values()) & FORBIDDEN


def test_unknown_and_fund_moving_methods_are_unmapped() -> None:
    for method in ("withdraw", "transfer", "sapi_post_asset_transfer", "fetch_deposit_address"):
        assert method_scope(method) is None


def test_declared_command_scopes() -> None:
    assert needed_scopes("run") == {"read", "trade", "cancel"}
    assert "leverage" in COMMANDS["run"].uses()
    assert needed_scopes("status") == {"read"}
    assert needed_scopes("kill") == {"cancel"}
    assert needed_scopes("kill", flatten=True) == {"cancel", "reduce"}
    assert needed_scopes("keys audit") == {"read"}
    assert normalize_command("keys-audit") == "keys audit"
    with pytest.raises(KeyError):
        needed_scopes("nope")


def test_trade_covers_reduce_but_not_the_reverse() -> None:
    assert covers({"trade"}, "reduce")
    assert not covers({"reduce"}, "trade")
    assert not covers(set(), "read")


def test_run_accepts_reduce_in_place_of_trade() -> None:
    assert missing_scopes("run", {"read", "reduce", "cancel"}, needed_scopes("run")) == []
    assert missing_scopes("run", {"read"}, needed_scopes("run")) == ["trade", "cancel"]
    assert missing_scopes("kill", {"cancel"}, needed_scopes("kill", flatten=True)) == ["reduce"]


def test_require_names_profile_command_scope_and_fix() -> None:
    bus = EventBus()
    seen: list[object] = []
    bus.subscribe(seen.append)
    grant = Grant(commands={"kill": frozenset({"cancel"})})
    with pytest.raises(PermissionDenied) as info:
        require(grant, "kill", profile="main", bus=bus, flatten=True)
    err = info.value
    assert err.exit_code == 3 and err.code == "SCOPE_MISSING"
    assert "'main'" in err.message and "'kill'" in err.message and "reduce" in err.message
    assert "perpbot keys scope main --command kill --allow reduce" in err.message
    assert isinstance(seen[0], Decision) and seen[0].action == "deny"
    assert seen[0].layer == "scope" and seen[0].data["missing"] == ["reduce"]
    require(grant, "kill", profile="main")  # without --flatten cancel is enough


def test_require_quotes_multiword_commands_and_refuses_fund_moves() -> None:
    assert "--command 'keys audit'" in grant_hint("main", "keys audit", ["read"])
    with pytest.raises(PermissionDenied) as info:
        require(Grant(), "keys audit", profile="p")
    assert "--command 'keys audit' --allow read" in info.value.message
    with pytest.raises(PermissionDenied) as info:
        require(None, "run", ["withdraw"])
    assert info.value.code == "SCOPE_FORBIDDEN"


def test_paper_account_may_do_everything_but_move_funds() -> None:
    require(None, "run", {"read", "trade", "cancel", "leverage", "reduce"})
    for scope in FORBIDDEN:
        with pytest.raises(PermissionDenied):
            require(None, "run", {scope})
