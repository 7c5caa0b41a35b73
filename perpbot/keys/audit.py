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

from perpbot.keys.scopes import CANCEL, LEVERAGE, READ, REDUCE, TRADE

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient
    from perpbot.keys.grant import Grant
    from perpbot.keys.store import StoredProfile

Level = Literal["fail", "note", "ok"]

FUTURES_SCOPES = frozenset({TRADE, REDUCE, CANCEL, LEVERAGE})

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
        from perpbot.errors import RuntimeFailure

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


def run_audit(profile: str, *, url: str | None = None, sandbox: bool = False) -> AuditReport:
    """`perpbot keys audit`: check the grant, connect as ``keys audit``, ask, judge."""
    import asyncio

    from perpbot.errors import BadInput
    from perpbot.keys.scopes import require
    from perpbot.keys.store import load_profile

    stored = load_profile(profile)
    require(stored.grant, "keys audit", profile=profile)
    if url is not None and not url.startswith(("http://", "https://")):
        raise BadInput(f"--url: got {url!r}, expected an http:// or https:// URL")
    if stored.exchange == "sim" and url is None:
        raise BadInput(
            f"--url: missing; profile {profile!r} is for the simulator, give the URL of a "
            "running `perpbot sim serve`"
        )
    return asyncio.run(_audit(stored, url, sandbox))


async def _audit(stored: StoredProfile, url: str | None, sandbox: bool) -> AuditReport:
    import os
    import time

    import ccxt

    from perpbot.client.connect import connect
    from perpbot.client.transport import parse_error_body
    from perpbot.config import ExchangeSection
    from perpbot.errors import RuntimeFailure
    from perpbot.events import EventBus

    bus = EventBus()
    if os.environ.get("PERPBOT_VERBOSE"):
        from perpbot.cli.verbose import attach_verbose

        attach_verbose(bus)
    section = ExchangeSection(id=stored.exchange, url=url, sandbox=sandbox, profile=stored.name)
    where = url or stored.exchange
    conn = await connect(
        section,
        command="keys audit",
        run_id=f"keys-audit-{time.strftime('%Y%m%d-%H%M%S')}",
        bus=bus,
        load_markets=False,
    )
    try:
        return await audit_key(
            conn.client,
            stored.grant,
            profile=stored.name,
            exchange=stored.exchange,
            masked_key=stored.masked_key,
        )
    except ccxt.AuthenticationError as exc:
        body = parse_error_body(str(exc)) or {}
        detail = f" (code {body.get('code')}: {body.get('msg')})" if body.get("code") else ""
        raise RuntimeFailure(
            f"{where} refused the key of profile {stored.name!r}{detail}: check the key, "
            "its secret and its IP restriction",
            code="SCOPE_AUDIT_AUTH",
        ) from None
    except ccxt.NotSupported:
        raise RuntimeFailure(
            f"{stored.exchange} does not say what a key may do (no apiRestrictions "
            "endpoint here); check the key's permissions in the exchange's API management",
            code="SCOPE_AUDIT_UNSUPPORTED",
        ) from None
    except ccxt.NetworkError as exc:
        raise RuntimeFailure(
            f"cannot reach {where} ({type(exc).__name__})", code="SCOPE_AUDIT_NETWORK"
        ) from None
    except ccxt.BaseError as exc:
        raise RuntimeFailure(
            f"{where} did not answer the key audit ({type(exc).__name__})",
            code="SCOPE_AUDIT_ERROR",
        ) from None
    finally:
        await conn.close()
