"""`perpbot keys audit`: connect as ``keys audit`` through the full pipeline and judge the key.

The judgement itself (``audit_key``, ``evaluate``) lives in perpbot.keys.audit; this module
only composes it with a connection, which is the composition root's job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import ccxt

from perpbot.app.connect import connect
from perpbot.client.transport import parse_error_body
from perpbot.config import ExchangeSection
from perpbot.errors import BadInput, RuntimeFailure
from perpbot.events import EventBus
from perpbot.keys.audit import AuditReport, audit_key
from perpbot.keys.scopes import require
from perpbot.keys.store import StoredProfile, load_profile


def run_audit(
    profile: str,
    *,
    url: str | None = None,
    sandbox: bool = False,
    observe: Callable[[EventBus], None] | None = None,
) -> AuditReport:
    """`perpbot keys audit`: check the grant, connect as ``keys audit``, ask, judge."""
    stored = load_profile(profile)
    require(stored.grant, "keys audit", profile=profile)
    if url is not None and not url.startswith(("http://", "https://")):
        raise BadInput(f"--url: got {url!r}, expected an http:// or https:// URL")
    if stored.exchange == "sim" and url is None:
        raise BadInput(
            f"--url: missing; profile {profile!r} is for the simulator, give the URL of a "
            "running `perpbot sim serve`"
        )
    return asyncio.run(_audit(stored, url, sandbox, observe))


async def _audit(
    stored: StoredProfile,
    url: str | None,
    sandbox: bool,
    observe: Callable[[EventBus], None] | None,
) -> AuditReport:
    bus = EventBus()
    if observe is not None:  # `--verbose`: the command prints every call and decision
        observe(bus)
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
