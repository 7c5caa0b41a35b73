"""`perpbot flatten`: close positions now with an exit policy, without setting the kill switch.

For a trader who wants out of a position (or several) without stopping automation
everywhere: it connects like `kill --direct` (the profile's ``kill`` grant, which must
include ``reduce``; the same pipeline, limiter and signed log), reads the positions and
closes each with the exit executor (perpbot.exits, docs/exits.md), reduce-only child orders
only. Open orders are left alone unless ``--cancel-orders``.

A bot still running on the same key would re-open what this closes, so a running bot on the
profile (or of the strategy file's name) refuses the command, naming the `perpbot kill` that
stops it, unless ``--force``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perpbot.app.kill_direct import check_grant, on_exchange, resolve_target
from perpbot.errors import BadInput
from perpbot.exits import POLICIES
from perpbot.kill.acks import running_bots
from perpbot.kill.cancel import CANCEL_DEADLINE_S, cancel_open_orders
from perpbot.kill.flatten import FlattenPolicy, flatten_positions
from perpbot.kill.ops import client_ops


def check_policy(policy: str) -> None:
    if policy not in POLICIES and policy != "capped":
        raise BadInput(f"--policy: got {policy!r}, expected one of {', '.join(POLICIES)} or capped")


def competing_bots(profile: str | None, strategy: str | None) -> list[dict[str, Any]]:
    """Running bots that trade with ``profile`` or run ``strategy`` (they would re-open)."""
    return [
        doc
        for doc in running_bots()
        if (profile and doc.get("profile") == profile)
        or (strategy and doc.get("strategy") == strategy)
    ]


async def _flatten(
    conn: Any, symbols: list[str] | None, policy: FlattenPolicy, cancel_orders: bool
) -> dict[str, Any]:
    client = conn.client
    view = conn.setup.account
    view.set_positions(await client.fetch_positions())
    for s in symbols or []:
        if s not in client.markets:
            raise BadInput(f"--symbol: got {s!r}, expected a symbol the exchange lists")
    targets = sorted(symbols or view.held_symbols())
    out: dict[str, Any] = {"symbols": targets, "cancelled": [], "closed": [], "errors": []}
    ops = client_ops(client, "flatten", view)
    if cancel_orders and targets:
        known = {s: await client.fetch_open_orders(s) for s in targets}
        cancel = await cancel_open_orders(ops, targets, known, deadline_s=CANCEL_DEADLINE_S)
        out["cancelled"], out["errors"] = cancel.cancelled, list(cancel.errors)
        out["left_open"] = cancel.left_records()
    flat = await flatten_positions(ops, targets, policy)
    out["closed"], out["errors"] = flat.closed, out["errors"] + flat.errors
    out["positions_left"] = flat.left
    return out


async def flatten_now(
    *,
    strategy_file: Path | None,
    profile: str | None,
    url: str | None,
    exchange_id: str | None,
    symbols: list[str] | None,
    policy: str,
    timeout_s: float | None,
    cancel_orders: bool,
    force: bool,
) -> dict[str, Any]:
    """Resolve, refuse competing bots, check the grant, then close the positions."""
    check_policy(policy)
    exchange, cfg = resolve_target(
        strategy_file=strategy_file, profile=profile, url=url, exchange_id=exchange_id
    )
    strategy = cfg.strategy.name if cfg is not None else None
    competing = competing_bots(exchange.profile, strategy)
    if competing and not force:
        doc = competing[0]
        stop = f"perpbot kill --level flatten --run {doc.get('run_id')}"
        raise BadInput(
            f"run {doc.get('run_id')} ({doc.get('strategy')}) is running on this account and "
            f"would re-open what flatten closes; stop it with `{stop}`, or pass --force"
        )
    check_grant(exchange, "flatten")
    if not symbols and cfg is not None:
        symbols = list(cfg.strategy.symbols)
    kill_cfg = cfg.kill if cfg is not None else None
    rules = FlattenPolicy(exit_policy=policy)
    if kill_cfg is not None:
        rules.slippage_pct = kill_cfg.flatten_slippage_pct
        rules.limit_attempts = kill_cfg.flatten_limit_attempts
        rules.timeout_s = kill_cfg.flatten_timeout_s
    if timeout_s is not None:
        rules.timeout_s = timeout_s

    async def act(conn: Any) -> dict[str, Any]:
        return await _flatten(conn, symbols, rules, cancel_orders)

    deadline = rules.timeout_s + (CANCEL_DEADLINE_S if cancel_orders else 0.0)
    report = await on_exchange(exchange, cfg, label="flatten", deadline_s=deadline, act=act)
    report["policy"] = policy
    return report
