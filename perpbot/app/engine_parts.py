"""The run's engine parts, built once it is connected: order management, conditional
orders, reconciliation and, on ``[exchange] streams``, the stream feed that keeps the
run's state current (REST reconcile stays the safety net)."""

from __future__ import annotations

from dataclasses import dataclass

from perpbot.app.connect import Connection
from perpbot.client.orders import strategy_tag
from perpbot.config import StrategyFile
from perpbot.engine.conditional import ConditionalOrders
from perpbot.engine.events import EngineEvents
from perpbot.engine.journal import RunJournal
from perpbot.engine.ledger import Ledger
from perpbot.engine.orders import OrderManager
from perpbot.engine.output import RunOutput
from perpbot.engine.reconcile import Reconciler
from perpbot.engine.state import RunState
from perpbot.engine.unplaced import UnplacedFills
from perpbot.events import EventBus
from perpbot.streams import StreamFeed, make_pro_exchange, stream_wire, streams_enabled


@dataclass(frozen=True, slots=True)
class EngineParts:
    orders: OrderManager  # place, cancel, refusals; this run's orders by client id
    conditional: ConditionalOrders  # stops, take-profits (the algo order API)
    reconciler: Reconciler  # positions, order states, fills, marks, equity
    feed: StreamFeed | None  # [exchange] streams: market and user data streams


def build_engine(
    conn: Connection,
    *,
    config: StrategyFile,
    run_id: str,
    state: RunState,
    ledger: Ledger,
    journal: RunJournal,
    output: RunOutput,
    bus: EventBus,
    events: EngineEvents,
) -> EngineParts:
    orders = OrderManager(
        client=conn.client,
        ledger=ledger,
        account=conn.setup.account,
        bus=bus,
        run_id=run_id,
        strategy=state.strategy,
        symbols=state.symbols,
    )
    # once the stop cancels, no create leaves (stop.py step 3); after the kill switch's look
    conn.setup.observers.add_before(orders.wire_look, last=True)
    conditional = ConditionalOrders(orders=orders, risk=config.risk)
    reconciler = Reconciler(
        client=conn.client,
        state=state,
        ledger=ledger,
        account=conn.setup.account,
        journal=journal,
        output=output,
        events=events,
        own_only=orders.is_ours if config.strategy.share_symbols else None,
        unsettled=orders.unsettled,
        unplaced=UnplacedFills(
            bus=bus,
            mine=lambda cid: orders.is_ours({"clientOrderId": cid}),
            strategy_tag=strategy_tag(state.strategy),
            shared=config.strategy.share_symbols,
        ),
    )
    feed = None
    if streams_enabled(config.exchange):
        # handed to both the pro exchange and the feed (it reports what the exchange counts)
        wire = stream_wire(conn.client, config.limits)
        feed = StreamFeed(
            exchange=make_pro_exchange(config.exchange, wire, conn.setup.base_url),
            wire=wire,
            reconciler=reconciler,
            bus=bus,
            symbols=state.symbols,
            stale_after_s=config.exchange.stream_stale_s,
            reconcile_interval=config.exchange.reconcile_interval,
            rotate_after_s=config.exchange.stream_rotate_s,
            keepalive_s=config.exchange.listen_key_keepalive_s,
            seed=config.sim.seed if config.sim else 0,
        )
    return EngineParts(orders=orders, conditional=conditional, reconciler=reconciler, feed=feed)
