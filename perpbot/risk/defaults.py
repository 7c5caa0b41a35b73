"""Risk limits a run may not go without.

A strategy file without notional limits (no ``[risk]`` section, or one that sets none) let a
strategy place a 150k USDT market order on a 10k account. So:

- a live run (a real exchange, not its sandbox) refuses to start without
  ``max_order_notional`` or ``max_position_notional`` (for the bot or every symbol), unless
  ``[risk] accept_no_limits = true`` says the user means it;
- a paper run (the simulator, an exchange sandbox) gets conservative limits derived from
  its balance at the first order, and a warning that names them.

``[risk] enabled = false`` is an explicit choice too: no checks, no defaults (and a live run
still needs ``accept_no_limits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpbot.config import RiskSection, StrategyFile
from perpbot.errors import BadInput

if TYPE_CHECKING:
    from perpbot.config import LoadedStrategy

ORDER_FRACTION = 0.1  # of the balance, per order
POSITION_FRACTION = 0.5  # of the balance, every position of the bot together
OPEN_ORDERS = 50


def is_live(cfg: StrategyFile) -> bool:
    """A real exchange with real money (not the simulator, not a sandbox)."""
    return cfg.exchange.id != "sim" and not cfg.exchange.sandbox


def has_limits(risk: RiskSection, symbols: list[str]) -> bool:
    """Whether every order is bounded in notional (by the bot's limit or its symbol's)."""
    if not risk.enabled:
        return False
    if risk.max_order_notional is not None or risk.max_position_notional is not None:
        return True
    own = [risk.symbols.get(s) for s in symbols]
    return all(
        s is not None and (s.max_order_notional is not None or s.max_position_notional is not None)
        for s in own
    )


def require_limits(loaded: LoadedStrategy) -> None:
    """Refuse a live run without notional limits (BadInput, exit 2) unless accepted."""
    cfg = loaded.config
    if not is_live(cfg) or cfg.risk.accept_no_limits:
        return
    if has_limits(cfg.risk, cfg.strategy.symbols):
        return
    why = "[risk] enabled = false" if not cfg.risk.enabled else "no notional limit"
    raise BadInput(
        f"{loaded.path}: [risk]: a live run on {cfg.exchange.id!r} needs risk limits ({why}): "
        "set max_order_notional and max_position_notional (USDT), or "
        "accept_no_limits = true to run without them"
    )


def needs_defaults(cfg: StrategyFile) -> bool:
    """A paper run whose orders nothing bounds: it gets ``paper_defaults``."""
    return (
        not is_live(cfg)
        and cfg.risk.enabled
        and not cfg.risk.accept_no_limits
        and not has_limits(cfg.risk, cfg.strategy.symbols)
    )


def paper_defaults(risk: RiskSection, balance: float) -> tuple[RiskSection, str]:
    """``risk`` with conservative limits derived from ``balance`` (only those not set),
    and the warning that names them."""
    chosen: dict[str, float | int] = {
        "max_order_notional": round(balance * ORDER_FRACTION, 2),
        "max_position_notional": round(balance * POSITION_FRACTION, 2),
        "max_open_orders": OPEN_ORDERS,
    }
    chosen = {k: v for k, v in chosen.items() if getattr(risk, k) is None}
    named = ", ".join(f"{k} = {v:g}" for k, v in chosen.items())
    warning = (
        f"no [risk] limits set: this paper run uses {named} (derived from the balance "
        f"{balance:,.2f} USDT); set your own in [risk], or accept_no_limits = true"
    )
    return risk.model_copy(update=chosen), warning
