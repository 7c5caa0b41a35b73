"""How key profiles take part in `perpbot run` (wired in perpbot/app/plugins.py).

- ``preflight_run``: before anything connects, the profile named in ``[exchange] profile``
  must exist, hold a key for that exchange, be granted what ``run`` needs and allow the
  strategy's symbols; otherwise the run is refused (exit 3, or 2 for a wrong exchange).
- ``attach_audit_warning``: once connected, the key is audited against the exchange's
  apiRestrictions; a failing audit is a warning (and an ``alert`` decision), not a stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from perpbot.errors import BadInput, PerpbotError
from perpbot.events import Decision
from perpbot.keys.audit import audit_key
from perpbot.keys.scopes import denial, require
from perpbot.keys.store import load_profile, mask

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient
    from perpbot.client.setup import Credentials
    from perpbot.config import ExchangeSection, LoadedStrategy, StrategyFile
    from perpbot.engine.hooks import OnConnected
    from perpbot.engine.output import RunOutput
    from perpbot.events import EventBus


class KeyAuditRun(Protocol):
    """What the key audit at start uses of a run."""

    config: StrategyFile
    bus: EventBus
    output: RunOutput
    on_connected: OnConnected

    @property
    def client(self) -> GuardedClient: ...
    @property
    def credentials(self) -> Credentials: ...


def uses_profile(exchange: ExchangeSection) -> bool:
    """Whether connect() will use the named profile (the embedded sim never does)."""
    return bool(exchange.profile) and not (exchange.id == "sim" and exchange.url is None)


def preflight_run(loaded: LoadedStrategy) -> None:
    exchange = loaded.config.exchange
    if not uses_profile(exchange):
        return
    name = str(exchange.profile)
    stored = load_profile(name)
    if stored.exchange != exchange.id:
        raise BadInput(
            f"{loaded.path}: [exchange] profile: profile {name!r} holds a key for exchange "
            f"{stored.exchange!r}, but [exchange] id is {exchange.id!r}"
        )
    require(stored.grant, "run", profile=name)
    allowed = stored.grant.limits.symbols
    if allowed is not None:
        outside = [s for s in loaded.config.strategy.symbols if s not in allowed]
        if outside:
            wanted = ",".join([*allowed, *outside])
            raise denial(
                "SCOPE_SYMBOL",
                f"profile {name!r} may trade only {', '.join(allowed) or 'no symbol'}, but the "
                f"strategy trades {', '.join(outside)}; to allow it: perpbot keys scope "
                f"{name} --symbols {wanted}",
            )


async def audit_warning(runner: KeyAuditRun) -> None:
    """Audit the run's key; warn (never stop) when the audit fails or cannot run."""
    credentials = runner.credentials
    if credentials.profile is None or credentials.grant is None:
        return
    profile = credentials.profile
    try:
        report = await audit_key(
            runner.client,
            credentials.grant,
            profile=profile,
            exchange=runner.config.exchange.id,
            masked_key=mask(credentials.api_key or ""),
        )
    except PerpbotError as exc:
        runner.output.warn(f"key audit of profile {profile!r} could not run: {exc.message}")
        return
    except Exception as exc:  # an exchange without apiRestrictions, a network error
        runner.output.warn(
            f"key audit of profile {profile!r} could not run ({type(exc).__name__}); "
            f"run `perpbot keys audit {profile}` to check the key"
        )
        return
    if report.ok:
        return
    problems = "; ".join(f.sentence for f in report.failures)
    sentence = f"key audit of profile {profile!r} failed: {problems}"
    runner.bus.publish(
        Decision(
            layer="scope",
            action="alert",
            code="SCOPE_AUDIT_FAILED",
            sentence=sentence,
            data={"profile": profile, "codes": [f.code for f in report.failures]},
        )
    )
    runner.output.warn(sentence)


def attach_audit_warning(runner: KeyAuditRun) -> None:
    runner.on_connected.append(audit_warning)
