"""Judging the exchange's apiRestrictions against a grant (least privilege)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from perpbot.errors import RuntimeFailure
from perpbot.keys.audit import audit_key, evaluate
from perpbot.keys.grant import Grant
from perpbot.sim.accounts import default_permissions

TRADER = Grant.initial().allow("run", ["trade", "cancel"])


def codes(restrictions: dict[str, object], grant: Grant) -> dict[str, str]:
    return {f.code: f.level for f in evaluate(restrictions, grant)}


def test_a_trading_key_with_what_it_needs_passes() -> None:
    found = codes(default_permissions(), TRADER)
    assert "fail" not in found.values()
    assert found["SCOPE_AUDIT_NO_WITHDRAW"] == found["SCOPE_AUDIT_IP_RESTRICT"] == "ok"


def test_withdraw_and_missing_ip_restriction_fail() -> None:
    perms = {**default_permissions(), "enableWithdrawals": True, "ipRestrict": False}
    found = codes(perms, TRADER)
    assert found["SCOPE_AUDIT_WITHDRAW"] == "fail"
    assert found["SCOPE_AUDIT_NO_IP_RESTRICT"] == "fail"


def test_more_than_the_grant_needs_fails() -> None:
    # a read-only grant on a key the exchange lets trade futures
    read_only = [f for f in evaluate(default_permissions(), Grant.initial()) if f.level == "fail"]
    assert [f.code for f in read_only] == ["SCOPE_AUDIT_EXCESS"]
    assert "enableFutures" in read_only[0].sentence
    for perm in ("enableInternalTransfer", "enableSpotAndMarginTrading", "enableVanillaOptions"):
        found = [
            f for f in evaluate({**default_permissions(), perm: True}, TRADER) if f.level == "fail"
        ]
        assert len(found) == 1 and perm in found[0].sentence
    unknown = evaluate({**default_permissions(), "enableTeleport": True}, TRADER)
    assert any("does not know" in f.sentence for f in unknown if f.level == "fail")


def test_less_than_the_grant_needs_is_a_note() -> None:
    perms = {**default_permissions(), "enableFutures": False}
    found = codes(perms, TRADER)
    assert found["SCOPE_AUDIT_SHORT"] == "note" and "fail" not in found.values()


async def test_an_exchange_without_api_restrictions_cannot_be_audited() -> None:
    client = SimpleNamespace(exchange=object())
    with pytest.raises(RuntimeFailure) as info:
        await audit_key(client, TRADER, profile="p", exchange="kraken", masked_key="****")  # type: ignore[arg-type]
    assert info.value.code == "SCOPE_AUDIT_UNSUPPORTED" and "kraken" in info.value.message
