"""What the exchange itself lets a key do, against what its perpbot grant needs.

Binance answers ``GET /sapi/v1/account/apiRestrictions`` (the simulator serves it too).
A key fails the audit when the exchange lets it withdraw, when it is not restricted to
known IP addresses, or when the exchange grants it more than its perpbot grant needs
(least privilege: a read-only profile on a futures-trading key, any transfer, spot,
margin or options permission). Permissions the exchange withholds but the grant needs are
reported as notes: perpbot cannot use them, which is not a security problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from perpbot.errors import RuntimeFailure
from perpbot.keys.scopes import CANCEL, LEVERAGE, READ, REDUCE, STOP, TRADE

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient
    from perpbot.keys.grant import Grant

Level = Literal["fail", "note", "ok"]

FUTURES_SCOPES = frozenset({TRADE, REDUCE, CANCEL, LEVERAGE, STOP})

#: Exchange permission -> the perpbot scopes that need it (empty: perpbot never needs it).
PERMISSION_NEEDS: dict[str, frozenset[str]] = {
    "enableReading": frozenset({READ}),
    "enableFutures": FUTURES_SCOPES,
    "enableWithdrawals": frozenset(),
    "enableInternalTransfer": frozenset(),
    "permitsUniversalTransfer": frozenset(),
    "enableMargin": frozenset(),
    "enableSpotAndMarginTrading": frozenset(),
    "enableVanillaOptions": frozenset(),
    "enablePortfolioMarginTrading": frozenset(),
    "enableFixApiTrade": frozenset(),
    "enableFixReadOnly": frozenset(),
}

PERMISSION_WORDS: dict[str, str] = {
    "enableReading": "read the account",
    "enableFutures": "trade futures",
    "enableWithdrawals": "withdraw funds",
    "enableInternalTransfer": "transfer funds between accounts",
    "permitsUniversalTransfer": "make universal transfers",
    "enableMargin": "use margin accounts",
    "enableSpotAndMarginTrading": "trade spot and margin",
    "enableVanillaOptions": "trade options",
    "enablePortfolioMarginTrading": "trade portfolio margin",
    "enableFixApiTrade": "trade over FIX",
    "enableFixReadOnly": "read over FIX",
}


@dataclass(frozen=True)
class Finding:
    level: Level
    code: str
    sentence: str


@dataclass
class AuditReport:
    profile: str
    exchange: str
    masked_key: str
    permissions: dict[str, bool]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == "fail" for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "fail"]

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "exchange": self.exchange,
            "api_key": self.masked_key,
            "ok": self.ok,
            "permissions": self.permissions,
            "findings": [
                {"level": f.level, "code": f.code, "sentence": f.sentence} for f in self.findings
            ],
        }


def _flags(restrictions: dict[str, Any]) -> dict[str, bool]:
    """The boolean permission fields of an apiRestrictions answer (nothing else)."""
    return {
        k: bool(v)
        for k, v in restrictions.items()
        if isinstance(v, bool) and (k == "ipRestrict" or k.startswith(("enable", "permits")))
    }


def evaluate(restrictions: dict[str, Any], grant: Grant) -> list[Finding]:
    """Judge an apiRestrictions answer against a grant."""
    flags = _flags(restrictions)
    used = grant.all_scopes()
    out: list[Finding] = []
    if flags.get("enableWithdrawals"):
        out.append(
            Finding(
                "fail",
                "SCOPE_AUDIT_WITHDRAW",
                "the exchange lets this key withdraw funds; perpbot never withdraws: turn "
                "withdrawals off for this key in the exchange's API management",
            )
        )
    else:
        out.append(Finding("ok", "SCOPE_AUDIT_NO_WITHDRAW", "withdrawals are off"))
    if not flags.get("ipRestrict"):
        out.append(
            Finding(
                "fail",
                "SCOPE_AUDIT_NO_IP_RESTRICT",
                "the key is not restricted to trusted IP addresses: anyone holding it can "
                "use it from anywhere; restrict it to your server's IP in the exchange's "
                "API management",
            )
        )
    else:
        out.append(Finding("ok", "SCOPE_AUDIT_IP_RESTRICT", "the key is IP-restricted"))
    for name, enabled in sorted(flags.items()):
        if name in ("ipRestrict", "enableWithdrawals"):
            continue
        needs = PERMISSION_NEEDS.get(name)
        words = PERMISSION_WORDS.get(name, f"use {name!r}")
        if enabled and needs is None:
            out.append(
                Finding(
                    "fail",
                    "SCOPE_AUDIT_EXCESS",
                    f"the exchange lets this key {words} ({name}), a permission perpbot does "
                    "not know and never needs; turn it off for this key",
                )
            )
        elif enabled and not (needs & used):
            why = (
                "perpbot never needs it"
                if not needs
                else f"its perpbot grant uses none of {', '.join(sorted(needs))}"
            )
            out.append(
                Finding(
                    "fail",
                    "SCOPE_AUDIT_EXCESS",
                    f"the exchange lets this key {words} ({name}) but {why}; turn it off for "
                    "this key (least privilege)",
                )
            )
        elif not enabled and needs and (needs & used):
            out.append(
                Finding(
                    "note",
                    "SCOPE_AUDIT_SHORT",
                    f"the exchange does not let this key {words} ({name}), which its perpbot "
                    f"grant uses ({', '.join(sorted(needs & used))}): those calls will fail",
                )
            )
    return out


async def audit_key(
    client: GuardedClient, grant: Grant, *, profile: str, exchange: str, masked_key: str
) -> AuditReport:
    """Ask the exchange (through the pipeline, as command ``keys audit`` or ``run``)."""
    if not hasattr(client.exchange, "sapi_get_account_apirestrictions"):
        raise RuntimeFailure(
            f"{exchange} does not say what a key may do (no apiRestrictions endpoint); check "
            "the key's permissions in the exchange's API management",
            code="SCOPE_AUDIT_UNSUPPORTED",
        )
    answer = await client.api_restrictions()
    if not isinstance(answer, dict):
        answer = {}
    return AuditReport(
        profile=profile,
        exchange=exchange,
        masked_key=masked_key,
        permissions=_flags(answer),
        findings=evaluate(answer, grant),
    )
