"""Where each concern attaches itself to a run: the one list to read to know what a
`perpbot run` does besides ticking the strategy.

``preflight`` checks run before anything connects (the kill sentinel, the key grant); they
raise a PerpbotError to refuse. ``attach`` wires a concern into the runner (bus subscribers,
background tasks such as watchdogs, tick providers, stop hooks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perpbot.config import LoadedStrategy
    from perpbot.engine.runner import Runner


def preflight(loaded: LoadedStrategy) -> None:
    """Refuse to start when a guard says so (raises PerpbotError with the exit code)."""
    from perpbot.kill.attach import preflight as kill_preflight

    kill_preflight(loaded)
    from perpbot.keys.plugin import preflight_run as keys_preflight

    keys_preflight(loaded)
    from perpbot.risk.plugin import preflight as risk_preflight

    risk_preflight(loaded)


def attach(runner: Runner) -> None:
    """Wire every concern into a runner before it starts."""
    from perpbot.engine.status import attach as attach_status

    attach_status(runner)
    from perpbot.kill.attach import attach as attach_kill

    attach_kill(runner)
    from perpbot.keys.plugin import attach_audit_warning

    attach_audit_warning(runner)
    from perpbot.audit.subscriber import attach_runner as attach_audit_log

    attach_audit_log(runner)
    from perpbot.risk.plugin import attach as attach_risk

    attach_risk(runner)
    from perpbot.client.ratelimit.plugin import attach as attach_ratelimit

    attach_ratelimit(runner)
    from perpbot.ops.plugin import attach as attach_ops

    attach_ops(runner)
