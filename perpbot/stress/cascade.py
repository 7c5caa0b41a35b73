"""The contagion graph and its propagation in time (Cont & Schaanning's price-mediated
contagion, with liquidation clusters in place of fire-selling banks).

Nodes are the crowd's liquidation clusters (crowd.py) and this account's positions, per
symbol and price level. Liquidating a node sends its size to the book as a market order: it
consumes depth and moves the price (depth.py); the move brings further nodes within reach,
in the same symbol and, through the correlations, in the others. Those are the graph's
edges: "liquidating this node consumed this much depth, moved the price this far, and that
reached these nodes". A shock of a given size starts it.

Time: the exchange liquidates on the mark price, which only follows the traded price as
its sources requote: the mark is the average of sources that each take the current price
every ``mark_sources_s[i]`` seconds (Binance: an index of spot venues, the mark published
every second; one source of 1 s makes the cascade go in rounds of 1 s, Cont & Schaanning's
rounds). A node liquidates when the mark crosses its level; each hop of the cascade
therefore takes time, and the time the mark needs to reach this account's liquidation
price, less the bot's latency, is the time the bot has to act.
"""

from __future__ import annotations

import heapq
import math
import statistics
from dataclasses import dataclass, field

from perpbot.stress.crowd import Cluster, clusters_for
from perpbot.stress.depth import Impact, OrderSizes
from perpbot.stress.inputs import Scenario

MAX_ROUNDS_PER_CHECK = 50  # liquidations at one instant, each moving the last price


@dataclass(slots=True)
class Node:
    id: int
    symbol: str
    side: str  # "long" (sold when liquidated, below the price) | "short"
    price: float  # liquidation level
    qty: float
    bankruptcy: float
    leverage: float
    order_size: float  # one liquidation order (this account's position); 0: the crowd's sizes
    account: bool = False  # one of this account's positions

    @property
    def order_side(self) -> str:
        return "sell" if self.side == "long" else "buy"

    def crossed(self, mark: float) -> bool:
        return mark <= self.price if self.side == "long" else mark >= self.price


@dataclass(slots=True)
class Liquidation:
    """One node liquidated: when, at which mark, what it consumed and moved."""

    time_s: float
    node: int
    symbol: str
    mark: float
    walked: float  # how far its market order walked the book (price units)
    moved: float  # the permanent move it left (price units, signed)
    fill: float  # its average fill price
    hop: int  # edges from the shock to this node


@dataclass(slots=True)
class Edge:
    source: int  # -1: the shock itself
    target: int
    depth: float  # size the source's liquidation consumed
    move_pct: float  # the permanent move it caused in the target's symbol, percent


@dataclass(slots=True)
class Outcome:
    shock_pct: float
    shock_symbol: str
    start: dict[str, float]  # symbol -> price before the shock
    liquidations: list[Liquidation] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    final_mark: dict[str, float] = field(default_factory=dict)
    final_price: dict[str, float] = field(default_factory=dict)
    path: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (t, mark)


@dataclass(slots=True)
class _Sym:
    symbol: str
    target: float
    mark: float
    impact: Impact
    pending: list[Node]
    sources: list[float]  # the prices the mark's sources last quoted
    last: float  # the last traded price
    sizes: OrderSizes  # the crowd's successive liquidation orders
    weights: tuple[float, ...]  # the sources' weights in the index
    basis: float = 0.0  # moving average of (price - index)

    @property
    def index(self) -> float:
        total = sum(self.weights)
        return sum(w * src for w, src in zip(self.weights, self.sources, strict=True)) / total

    def advance(self, dt: float, window_s: float) -> None:
        """The basis average over ``dt`` seconds of a constant price and index."""
        gap = self.target - self.index
        self.basis = gap + (self.basis - gap) * math.exp(-dt / window_s)

    def mark_now(self) -> float:
        """Binance's mark: median(index, index + moving-average basis, last price)."""
        return statistics.median((self.index, self.index + self.basis, self.last))


def build_nodes(scenario: Scenario) -> list[Node]:
    """The graph's nodes: every symbol's crowd clusters, then this account's positions."""
    nodes: list[Node] = []
    for symbol, book in scenario.books.items():
        crowd = scenario.crowd[symbol]
        for c in clusters_for(symbol, crowd, book.mid):
            nodes.append(_node(len(nodes), c))
    for pos in scenario.positions:
        side = "long" if pos.amount > 0 else "short"
        mmr = scenario.crowd[pos.symbol].mmr
        bank = pos.liq_price / (1.0 - mmr) if side == "long" else pos.liq_price / (1.0 + mmr)
        lev = pos.entry / max(abs(pos.entry - bank), 1e-12)
        nodes.append(
            Node(
                len(nodes),
                pos.symbol,
                side,
                pos.liq_price,
                abs(pos.amount),
                bank,
                lev,
                abs(pos.amount),
                True,
            )
        )
    return nodes


def _node(i: int, c: Cluster) -> Node:
    return Node(i, c.symbol, c.side, c.price, c.qty, c.bankruptcy, c.leverage, 0.0)


def propagate(scenario: Scenario, nodes: list[Node], shock_pct: float) -> Outcome:
    """Shock ``scenario.shock_symbol`` by ``shock_pct`` percent (correlated symbols move by
    their correlation times it) and follow the cascade until nothing more is in reach or
    ``horizon_s`` has passed."""
    dyn = scenario.dynamics
    origin = scenario.shock_symbol
    start = {s: b.mid for s, b in scenario.books.items()}
    out = Outcome(shock_pct, origin, start)
    syms: dict[str, _Sym] = {}
    for symbol, book in scenario.books.items():
        moved = start[symbol] * (1.0 + scenario.correlation(origin, symbol) * shock_pct / 100.0)
        crowd = scenario.crowd[symbol]
        syms[symbol] = _Sym(
            symbol,
            moved,
            moved,
            Impact.of(book, dyn.impact_permanent, dyn.book_half_life_s),
            [n for n in nodes if n.symbol == symbol],
            [moved] * len(dyn.mark_sources_s),
            moved,
            OrderSizes.lognormal(crowd.position_size, crowd.position_size_sigma),
            dyn.source_weights(symbol),
        )
        out.path[symbol] = [(0.0, start[symbol]), (0.0, moved)]
    graph = _Graph(out)
    # the mark's sources requote on their own clocks, all in phase at the shock
    # (on the exchange's step clock when it has one)
    every_s = [dyn.requote_every(every) for every in dyn.mark_sources_s]
    due = [(every, i) for i, every in enumerate(every_s)]
    heapq.heapify(due)
    t = 0.0
    while True:
        # a liquidation moves the last price, a part of the mark: the engine checks again
        for _ in range(MAX_ROUNDS_PER_CHECK):
            batch = _liquidate_crossed(scenario, syms, t, out, graph)
            graph.reach(syms, batch)
            if not batch:
                break
            for s in syms.values():
                s.mark = s.mark_now()
        in_reach = any(n.crossed(s.target) for s in syms.values() for n in s.pending)
        caught_up = all(src == s.target for s in syms.values() for src in s.sources)
        if not in_reach and caught_up:
            break
        at = due[0][0]
        if dyn.engine_step_s > 0:  # the mark moves with its basis average at every step
            at = min(at, t + dyn.engine_step_s)
        if at > dyn.horizon_s + 1e-9:
            break
        for s in syms.values():
            s.impact.refill(at - t)
            s.advance(at - t, dyn.basis_window_s)
        t = round(at, 9)  # no drift from summing steps
        while due[0][0] <= t + 1e-9:
            _, i = heapq.heappop(due)
            for s in syms.values():
                s.sources[i] = s.target
            heapq.heappush(due, (round(t + every_s[i], 9), i))
        for s in syms.values():
            s.mark = s.mark_now()
            out.path[s.symbol].append((t, s.mark))
    for s in syms.values():
        out.final_mark[s.symbol] = s.mark
        out.final_price[s.symbol] = s.target
    return out


@dataclass(slots=True)
class _Graph:
    """The edges as the cascade reveals them: who brought whom within reach."""

    out: Outcome
    cause: dict[int, int] = field(default_factory=dict)  # node -> source (-1: the shock)
    hop: dict[int, int] = field(default_factory=dict)
    depth: dict[int, float] = field(default_factory=dict)  # size a node's liquidation took
    last: Liquidation | None = None

    def add(self, source: Liquidation | None, target: int) -> None:
        if source is None:
            self.cause[target], self.hop[target] = -1, 0
            self.out.edges.append(Edge(-1, target, 0.0, self.out.shock_pct))
            return
        self.cause[target] = source.node
        self.hop[target] = self.hop.get(source.node, 0) + 1
        move_pct = source.moved / self.out.start[source.symbol] * 100.0
        self.out.edges.append(Edge(source.node, target, self.depth.get(source.node, 0.0), move_pct))

    def liquidated(self, node: Node, time_s: float) -> int:
        """The node's hop; a node nobody put within reach was hit by the shock (at 0 s) or
        by the mark overshooting the price (its basis average): linked to the last one."""
        if node.id not in self.cause:
            self.add(self.last if time_s > 0 else None, node.id)
        self.depth[node.id] = node.qty
        return self.hop[node.id]

    def reach(self, syms: dict[str, _Sym], batch: list[Liquidation]) -> None:
        """Edges from this batch to every node its moves newly put within the price's reach
        (from the batch's last liquidation in the same symbol, else its last one)."""
        if not batch:
            return
        self.last = batch[-1]
        last_in = {rec.symbol: rec for rec in batch}
        for s in syms.values():
            for n in s.pending:
                if n.id not in self.cause and n.crossed(s.target):
                    self.add(last_in.get(s.symbol, batch[-1]), n.id)


def _liquidate_crossed(
    scenario: Scenario, syms: dict[str, _Sym], t: float, out: Outcome, graph: _Graph
) -> list[Liquidation]:
    batch: list[Liquidation] = []
    for s in syms.values():
        hit = [n for n in s.pending if n.crossed(s.mark)]
        if not hit:
            continue
        s.pending = [n for n in s.pending if not n.crossed(s.mark)]
        for n in sorted(hit, key=lambda n: abs(n.price - s.mark), reverse=True):
            sizes = OrderSizes.single(n.order_size) if n.order_size else s.sizes
            walk = s.impact.take(n.order_side, n.qty, sizes)
            walked, moved = walk.walked, walk.moved
            sign = -1.0 if n.order_side == "sell" else 1.0
            # the orders walk from the current touch, below the depth still missing
            fill = s.target + sign * walk.fill
            s.last = s.target + sign * walk.deepest  # the last price is the deepest print
            s.target += sign * moved
            for o in syms.values():  # correlated symbols follow the flow-driven move
                if o is s:
                    continue
                rho = scenario.correlation(s.symbol, o.symbol) * scenario.dynamics.cross_impact
                o.target += rho * sign * moved / out.start[s.symbol] * out.start[o.symbol]
            hop = graph.liquidated(n, t)
            rec = Liquidation(t, n.id, s.symbol, s.mark, walked, sign * moved, fill, hop)
            out.liquidations.append(rec)
            batch.append(rec)
    return batch
