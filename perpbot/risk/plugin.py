"""How the risk concern attaches to a `perpbot run` (called from perpbot.app.plugins).

- preflight: ``[risk.symbols]`` and ``[index]`` must name the strategy's symbols, every
  symbol must have a source, ``min_sources`` must be reachable.
- on connect: find the RiskGate's state, load maintenance brackets and leverage (when the
  liquidation band is on), connect the index sources and take a first reading, so the
  strategy's first order is already judged against a reference price.
- background: the index basket's poll loop and the monitors' poll loop.
- bus: cancels and limiter decisions to the monitors; usage headers to the status feed.
- after each tick: new fills to the slippage detector; ``extras.risk`` for the status file.
- stop: close the index sources' connections.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol

from perpbot.client.position_side import leg_symbol
from perpbot.config import ExchangeSection, IndexSourceConfig, StrategyFile
from perpbot.errors import BadInput
from perpbot.events import Decision, Event
from perpbot.risk.defaults import require_limits
from perpbot.risk.index import IndexBasket, IndexSource, client_fetch
from perpbot.risk.margin import Brackets
from perpbot.risk.publish import StatusFeed
from perpbot.risk.state import RiskState
from perpbot.risk.watch import MonitorHub

if TYPE_CHECKING:
    from perpbot.client.account import AccountView
    from perpbot.client.guarded import GuardedClient
    from perpbot.config import LoadedStrategy
    from perpbot.engine.hooks import (
        AfterTick,
        Background,
        BeforeStop,
        OnConnected,
        PublicConnection,
        TickProviders,
    )
    from perpbot.engine.ledger import Ledger
    from perpbot.engine.state import PositionSnapshot
    from perpbot.events import EventBus


class RiskRun(Protocol):
    """What the risk concern (gate state, monitors, index basket, status feed) uses of a run."""

    config: StrategyFile
    bus: EventBus
    ledger: Ledger  # its fills, for the slippage detector
    on_connected: OnConnected
    background: Background
    after_tick: AfterTick
    before_stop: BeforeStop
    tick_providers: TickProviders

    @property
    def client(self) -> GuardedClient: ...
    @property
    def account(self) -> AccountView: ...
    @property
    def positions(self) -> dict[str, PositionSnapshot]: ...
    @property
    def legs(self) -> dict[str, PositionSnapshot]: ...
    @property
    def marks(self) -> dict[str, float]: ...
    async def open_public(self, exchange: ExchangeSection, *, command: str) -> PublicConnection: ...


def needs_index(cfg: StrategyFile) -> bool:
    return bool(cfg.index.sources) or (cfg.risk.enabled and cfg.risk.band_fraction is not None)


def source_symbol(src: IndexSourceConfig, symbols: list[str]) -> str | None:
    """The bot symbol a source prices (its ``for_symbol``, else its own ``symbol``)."""
    target = src.for_symbol or src.symbol
    if target is None and len(symbols) == 1:
        return symbols[0]
    return target


def preflight(loaded: LoadedStrategy) -> None:
    cfg = loaded.config
    require_limits(loaded)  # a live run never starts without notional limits
    where = str(loaded.path)
    symbols = cfg.strategy.symbols
    for sym in cfg.risk.symbols:
        if sym not in symbols:
            raise BadInput(
                f'{where}: [risk.symbols."{sym}"]: not one of the strategy\'s symbols '
                f"({', '.join(symbols)})"
            )
    per_symbol: dict[str, int] = dict.fromkeys(symbols, 0)
    for n, src in enumerate(cfg.index.sources, 1):
        target = source_symbol(src, symbols)
        if target not in per_symbol:
            raise BadInput(
                f"{where}: [index] sources #{n}: prices {target!r}, expected one of the "
                f"strategy's symbols ({', '.join(symbols)}); set for_symbol"
            )
        if src.exchange == "sim" and src.url is None:
            raise BadInput(f"{where}: [index] sources #{n}: a sim source needs a url")
        per_symbol[target] += 1
    if cfg.index.sources:
        for sym, count in per_symbol.items():
            if count < cfg.index.min_sources:
                raise BadInput(
                    f"{where}: [index] min_sources: got {cfg.index.min_sources}, but {sym} has "
                    f"{count} source{'s' if count != 1 else ''}: the basket could never be "
                    "healthy"
                )
    if cfg.index.on_unhealthy == "kill" and not cfg.kill.on_anomaly:
        raise BadInput(
            f'{where}: [index] on_unhealthy = "kill" needs [kill] on_anomaly = true (the '
            "kill switch trips on alerts marked trip only when it is on)"
        )


class RiskRuntime:
    def __init__(self, runner: RiskRun) -> None:
        self.runner = runner
        self.cfg = runner.config
        self.state: RiskState | None = None
        self.gate: Any = None
        self.basket: IndexBasket | None = None
        self.hub: MonitorHub | None = None
        self.feed: StatusFeed | None = None
        self.connections: list[Any] = []
        self._fills_seen = 0

    # -- wiring -------------------------------------------------------------------------------
    async def on_connected(self, runner: RiskRun) -> None:
        self.gate = runner.client.pipeline.layer("risk")
        if self.gate is not None:
            self.state = self.gate.state
        else:
            self.state = RiskState(self.cfg, marks=lambda: runner.marks)
        state = self.state
        self.hub = MonitorHub(
            self.cfg.monitor,
            state,
            runner.bus,
            self.cfg.strategy.symbols,
            client=runner.client,
            own_orders=self._own_orders,
        )
        self.feed = StatusFeed(
            state, gate=self.gate, hub=self.hub, positions=self._positions, orders=self._own_orders
        )
        if self.gate is not None and self.cfg.risk.liquidation_band_pct is not None:
            await self._load_margin_tables()
        if needs_index(self.cfg):
            self.basket = IndexBasket(self.cfg.index, self._sources(), state, runner.bus)
            await self.basket.poll_once()

    def _positions(self) -> dict[str, Any]:
        """The positions by ``leg_key``: a hedge-mode symbol's sides, not its net."""
        legs = self.runner.legs
        sided = {leg_symbol(k) for k in legs}
        return {**{s: p for s, p in self.runner.positions.items() if s not in sided}, **legs}

    def _own_orders(self) -> list[Any]:
        orders = list(self.runner.account.orders.values())
        return [o for o in orders if self.gate is None or self.gate._own(o)]

    def _sources(self) -> list[IndexSource]:
        cfg, runner = self.cfg, self.runner
        timeout = cfg.index.timeout_s
        symbols = cfg.strategy.symbols
        if not cfg.index.sources:  # the exchange's own index price
            return [
                IndexSource(
                    "exchange", s, client_fetch(runner.client, s, "index", self.state), timeout
                )
                for s in symbols
            ]
        out = []
        for n, src in enumerate(cfg.index.sources, 1):
            target = source_symbol(src, symbols) or symbols[0]
            remote_symbol = src.symbol or target
            name = src.name or f"{src.exchange}#{n}"
            if src.exchange == "self":
                fetch = client_fetch(runner.client, remote_symbol, src.price, self.state)
            else:
                fetch = self._remote_fetch(src, remote_symbol)
            out.append(IndexSource(name, target, fetch, timeout))
        return out

    def _remote_fetch(self, src: IndexSourceConfig, symbol: str) -> Any:
        """A source on another venue: its own GuardedClient, connected on first use."""
        holder: dict[str, Any] = {}

        async def fetch() -> tuple[float | None, float | None]:
            if "conn" not in holder:
                conn = await self.runner.open_public(
                    ExchangeSection(id=src.exchange, url=src.url), command="index"
                )
                holder["conn"] = conn
                self.connections.append(conn)
            return await client_fetch(holder["conn"].client, symbol, src.price)()

        return fetch

    async def _load_margin_tables(self) -> None:
        assert self.state is not None
        client, symbols = self.runner.client, self.cfg.strategy.symbols
        try:
            tiers = await client.call("fetch_leverage_tiers", symbols)
            for sym in symbols:
                if tiers.get(sym):
                    self.state.brackets[sym] = Brackets.from_tiers(tiers[sym])
            for sym in symbols:
                mm = await client.fetch_margin_mode(sym)
                info = mm.get("info") or {}
                if info.get("leverage") is not None:
                    self.state.leverage[sym] = float(info["leverage"])
                if mm.get("marginMode"):
                    self.state.margin_mode[sym] = str(mm["marginMode"])
        except Exception as exc:
            ratio = self.cfg.risk.maint_margin_ratio
            self.runner.bus.publish(
                Decision(
                    layer="risk",
                    action="info",
                    code="RISK_BRACKETS_FALLBACK",
                    sentence=(
                        "could not read the maintenance brackets or leverage "
                        f"({type(exc).__name__}); liquidation estimates use a flat maintenance "
                        f"ratio of {ratio:.2%} and 20x leverage where unknown"
                    ),
                    data={"maint_margin_ratio": ratio},
                )
            )

    # -- runner hooks ---------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if self.hub is not None:
            self.hub.on_event(event)
        if self.feed is not None:
            self.feed.on_event(event)

    async def run_index(self, runner: RiskRun) -> None:
        if self.basket is not None:
            await self.basket.run()

    async def run_monitors(self, runner: RiskRun) -> None:
        if self.hub is not None:
            await self.hub.run()

    def after_tick(self, runner: RiskRun, snap: dict[str, Any]) -> None:
        fills = runner.ledger.fills
        if self.hub is not None:
            for fill in fills[self._fills_seen :]:
                self.hub.observe_fill(fill.symbol, fill.slippage_bps)
        self._fills_seen = len(fills)
        if self.state is not None:
            self.state.expire_alerts()

    def extras(self) -> dict[str, Any]:
        return self.feed.extras() if self.feed is not None else {}

    async def close(self, runner: RiskRun | None = None) -> None:
        for conn in self.connections:
            with contextlib.suppress(Exception):
                await conn.close()
        self.connections.clear()


def attach(runner: RiskRun) -> RiskRuntime:
    rt = RiskRuntime(runner)
    runner.on_connected.append(rt.on_connected)
    runner.background.append(rt.run_index)
    runner.background.append(rt.run_monitors)
    runner.tick_providers.append(rt.extras)
    runner.after_tick.append(rt.after_tick)
    runner.before_stop.append(rt.close)
    runner.bus.subscribe(rt.on_event)
    return rt
