"""Where each concern attaches itself to a run: the one list to read to know what a
`perpbot run` does besides ticking the strategy.

``preflight`` checks run before anything connects (the kill sentinel, the key grant, the
risk and index tables); they raise a PerpbotError to refuse. ``attach`` wires each concern
into the run's hooks (perpbot.engine.hooks). The order of ``attach`` is the order
of every hook phase, so it is declared here, once:

    status      writes "starting" first and "stopping" first
    audit       the signed log: closed in ``after_stop``, after the final cancels
    keys        the key audit warning, once connected
    risk        margin tables and a first index reading before the strategy's first order
    ratelimit   a stop cuts rate-limit waits short; the clean-up may wait again
    protect     re-judges standing stops and keeps every position's exchange-side stop
    kill        its dead-man countdown arms after every other start-up check, and is
                disarmed only in ``release`` (this run's orders confirmed gone)
    ops         alerts, metrics, disk: after the kill switch (nothing of theirs can refuse a
                start); their ``after_stop`` gzips the run's journals, so it runs last
"""

from __future__ import annotations

from perpbot.app.lifecycle import Runner
from perpbot.audit.subscriber import attach_runner as attach_audit_log
from perpbot.config import LoadedStrategy
from perpbot.engine.status import attach as attach_status
from perpbot.keys.plugin import attach_audit_warning
from perpbot.keys.plugin import preflight_run as keys_preflight
from perpbot.kill.attach import attach as attach_kill
from perpbot.kill.attach import preflight as kill_preflight
from perpbot.ops.plugin import attach as attach_ops
from perpbot.protect.plugin import attach as attach_protect
from perpbot.ratelimit.plugin import attach as attach_ratelimit
from perpbot.risk.plugin import attach as attach_risk
from perpbot.risk.plugin import preflight as risk_preflight


def preflight(loaded: LoadedStrategy) -> None:
    """Refuse to start when a guard says so (raises PerpbotError with the exit code)."""
    kill_preflight(loaded)  # a standing kill switch: exit 4
    keys_preflight(loaded)  # the profile's grant covers `run` and the symbols: exit 3
    risk_preflight(loaded)  # [risk.symbols] and [index] name the strategy's symbols: exit 2


def attach(runner: Runner) -> None:
    """Wire every concern into a runner before it starts (order: see the module doc)."""
    attach_status(runner)
    attach_audit_log(runner)
    attach_audit_warning(runner)
    attach_risk(runner)
    attach_ratelimit(runner)
    attach_protect(runner)
    runner.kill_state_fn = attach_kill(runner).kill_state  # what the strategy reads
    attach_ops(runner)
