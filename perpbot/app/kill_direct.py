"""`perpbot kill --direct`: act on the exchange itself, for when no bot runs or one is wedged.

It connects with the profile's ``kill`` grant (``cancel``, plus ``reduce`` at ``flatten``;
the ScopeGate checks every request) and, through the same pipeline as a bot (KillGate,
limiter, signed log), cancels the open orders on the chosen symbols, then at ``flatten``
closes the positions with reduce-only orders. What to act on comes from, in this order:

    --strategy FILE   its [exchange] table and [strategy] symbols (and its [kill] flatten keys)
    --profile P       the profile's exchange; --url for a `perpbot sim serve`
    --url URL         a `perpbot sim serve`, with PERPBOT_SIM_API_KEY/SECRET or --profile

Without ``--symbol`` (or a strategy's symbols) it acts on every symbol that has an open
order or a position. A switch scoped to one run cancels only that run's orders (known by
their client order ids, from the run's status file).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from perpbot.app.connect import ENV_SIM_KEY, ENV_SIM_SECRET, connect
from perpbot.audit.subscriber import attach_to_bus
from perpbot.client.orders import strategy_prefix
from perpbot.client.request import reducing_risk
from perpbot.config import (
    ExchangeSection,
    KillSection,
    StrategyFile,
    format_validation_error,
    load_strategy,
)
from perpbot.errors import BadInput, PerpbotError, describe_error
from perpbot.events import EventBus
from perpbot.keys.plugin import uses_profile
from perpbot.keys.scopes import require
from perpbot.keys.store import load_profile
from perpbot.kill.acks import bot_documents
from perpbot.kill.cancel import CANCEL_DEADLINE_S, cancel_open_orders
from perpbot.kill.flatten import FlattenPolicy, flatten_positions
from perpbot.kill.ops import client_ops
from perpbot.kill.sentinel import KillEntry
from perpbot.kill.waitcut import LongWaitCutter


def resolve_target(
    *,
    strategy_file: Path | None,
    profile: str | None,
    url: str | None,
    exchange_id: str | None,
) -> tuple[ExchangeSection, StrategyFile | None]:
    """The ``[exchange]`` table to connect with (and the strategy file, when one was given)."""
    cfg: StrategyFile | None = None
    if strategy_file is not None:
        cfg = load_strategy(strategy_file).config
        fields = cfg.exchange.model_dump()
    else:
        fields = {"id": exchange_id or "sim"}
        if profile and not exchange_id and not url:
            fields["id"] = load_profile(profile).exchange
    if profile:
        fields["profile"] = profile
    if url:
        fields["url"] = url
    if exchange_id:
        fields["id"] = exchange_id
    try:
        exchange = ExchangeSection.model_validate(fields)
    except ValidationError as exc:
        raise BadInput(
            format_validation_error("perpbot kill --direct", exc, ("exchange",))
        ) from None
    if exchange.id == "sim" and exchange.url is None:
        raise BadInput(
            "--direct: nothing to act on: give --strategy FILE (with a live exchange or a sim "
            "url), --profile P, or --url of a running `perpbot sim serve` (the embedded "
            "simulator lives and dies inside its bot)"
        )
    has_sim_account = os.environ.get(ENV_SIM_KEY) and os.environ.get(ENV_SIM_SECRET)
    if exchange.id == "sim" and not exchange.profile and not has_sim_account:
        raise BadInput(
            f"--direct on a simulator needs the bot's account: --profile P or "
            f"{ENV_SIM_KEY} and {ENV_SIM_SECRET}"
        )
    return exchange, cfg


def check_grant(exchange: ExchangeSection, level: str) -> None:
    """Refuse before connecting (exit 3) when the profile may not cancel (or reduce)."""
    if not uses_profile(exchange):
        return

    stored = load_profile(str(exchange.profile))
    require(stored.grant, "kill", profile=exchange.profile, flatten=level == "flatten")


def run_tags_for(entry: KillEntry) -> set[str] | None:
    """For a run-scoped switch: client-order-id prefixes of the strategies of the runs it
    covers (their orders, and any an earlier run of the same strategy left)."""
    if not entry.scope.startswith("run:"):
        return None

    tags = {
        strategy_prefix(str(doc.get("strategy")))
        for doc in bot_documents()
        if entry.matches(
            profile=doc.get("profile"), run_id=doc.get("run_id"), strategy=doc.get("strategy")
        )
    }
    if not tags:
        raise BadInput(
            f"--direct: no record of {entry.scope} in the state dir, so its orders cannot be "
            "told apart; kill with --profile P (or without a scope) to cancel every open order"
        )
    return tags


async def on_exchange(
    exchange: ExchangeSection,
    cfg: StrategyFile | None,
    *,
    label: str,
    deadline_s: float,
    act: Callable[[Any], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Connect with the ``kill`` grant, log to the signed log, run ``act(conn)``, close.

    No rate-limit wait may outlast ``deadline_s`` (waitcut.py). ``label`` names the run in
    the log (``kill`` for `kill --direct`, ``flatten`` for `perpbot flatten`).
    """
    run_id = f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    bus = EventBus()
    logger = attach_to_bus(
        bus,
        run_id=run_id,
        profile=exchange.profile,
        command="kill",
        settings=cfg.audit if cfg is not None else None,
    )
    report: dict[str, Any] = {"exchange": exchange.id, "url": exchange.url, "log": str(logger.dir)}
    try:
        with reducing_risk():  # connecting too: every request here draws on the reserve
            conn = await connect(exchange, command="kill", run_id=run_id, bus=bus, config=cfg)
            cutter = LongWaitCutter(conn.setup.bus, conn.setup.interrupter, deadline_s=deadline_s)
            try:
                with cutter:
                    report.update(await act(conn))
                report.update(cutter.report())
            finally:
                await conn.close()
    finally:
        logger.close(f"{label} --direct" if label == "kill" else label)
    return report


async def act_direct(
    entry: KillEntry,
    exchange: ExchangeSection,
    *,
    cfg: StrategyFile | None,
    symbols: list[str] | None,
) -> dict[str, Any]:
    kill_cfg = cfg.kill if cfg is not None else KillSection()
    tags = run_tags_for(entry)
    flatten_s = kill_cfg.flatten_timeout_s if entry.level == "flatten" else 0.0

    async def act(conn: Any) -> dict[str, Any]:
        return await _act(conn, entry, kill_cfg, symbols, tags)

    return await on_exchange(
        exchange, cfg, label="kill", deadline_s=CANCEL_DEADLINE_S + flatten_s, act=act
    )


async def _act(
    conn: Any,
    entry: KillEntry,
    kill_cfg: KillSection,
    symbols: list[str] | None,
    tags: set[str] | None,
) -> dict[str, Any]:
    def only(order: dict[str, Any]) -> bool:
        cid = str(order.get("clientOrderId") or "")
        return tags is None or any(cid.startswith(t) for t in tags)

    client = conn.client
    known: dict[str, list[dict[str, Any]]] = {}
    if symbols:
        for s in symbols:
            if s not in client.markets:
                raise BadInput(f"--symbol: got {s!r}, expected a symbol the exchange lists")
            known[s] = await client.fetch_open_orders(s)
    else:
        for o in await client.fetch_open_orders():
            known.setdefault(str(o.get("symbol")), []).append(o)
        view = conn.setup.account
        view.set_positions(await client.fetch_positions())
        for s in view.held_symbols():
            known.setdefault(s, [])
    targets = sorted(known)
    out: dict[str, Any] = {"symbols": targets, "cancelled": [], "closed": [], "errors": []}
    if entry.level == "halt" or not targets:
        return out
    ops = client_ops(client, entry.id, conn.setup.account)
    cancel = await cancel_open_orders(
        ops, targets, known, only=None if tags is None else only, deadline_s=CANCEL_DEADLINE_S
    )
    out["cancelled"], out["errors"] = cancel.cancelled, list(cancel.errors)
    out["left_open"], out["unconfirmed"] = cancel.left_records(), cancel.unconfirmed
    if entry.level == "flatten":
        policy = FlattenPolicy(
            slippage_pct=kill_cfg.flatten_slippage_pct,
            limit_attempts=kill_cfg.flatten_limit_attempts,
            timeout_s=kill_cfg.flatten_timeout_s,
            exit_policy=kill_cfg.flatten_policy,
        )
        flat = await flatten_positions(ops, targets, policy)
        out["closed"], out["errors"] = flat.closed, out["errors"] + flat.errors
        out["positions_left"] = flat.left
        out["stops_cancelled"] = flat.stops_cancelled
    return out


def run_direct(
    entry: KillEntry,
    *,
    strategy_file: Path | None,
    profile: str | None,
    url: str | None,
    exchange_id: str | None,
    symbols: list[str] | None,
) -> dict[str, Any]:
    """Resolve, check the grant, connect and act; errors become one-line PerpbotErrors."""
    exchange, cfg = resolve_target(
        strategy_file=strategy_file, profile=profile, url=url, exchange_id=exchange_id
    )
    check_grant(exchange, entry.level)
    if not symbols and cfg is not None:
        symbols = list(cfg.strategy.symbols)
    try:
        return asyncio.run(act_direct(entry, exchange, cfg=cfg, symbols=symbols))
    except PerpbotError:
        raise
    except Exception as exc:
        raise PerpbotError(f"--direct failed: {describe_error(exc)}") from None
