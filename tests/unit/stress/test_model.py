"""The stress model's parts: book depth, the crowd's clusters, the cascade's propagation."""

from __future__ import annotations

import pytest

from perpbot.sim.assemble import build_engine
from perpbot.stress.cascade import build_nodes, propagate
from perpbot.stress.crowd import clusters_for
from perpbot.stress.depth import DepthCurve, DepthDraws, Impact, OrderSizes
from perpbot.stress.inputs import Book, Crowd, Dynamics, Position, Scenario
from perpbot.stress.validate import SYMBOL, Case, sim_config

BTC, ETH = "BTCUSDT", "ETHUSDT"


def ladder(mid: float, gap: float, size: float, n: int = 100) -> Book:
    bids = [(mid - gap / 2 - i * gap, size) for i in range(n)]
    asks = [(mid + gap / 2 + i * gap, size) for i in range(n)]
    return Book("X", bids, asks)


def scenario(
    *, oi: float = 300.0, positions: list[Position] | None = None, **dyn: float
) -> Scenario:
    books = {BTC: ladder(60000, 5, 0.2), ETH: ladder(3000, 0.25, 3.0)}
    crowd = {
        BTC: Crowd(open_interest=oi, leverage_median=20, position_size=0.15),
        ETH: Crowd(open_interest=oi * 20, leverage_median=20, position_size=3.0),
    }
    return Scenario(
        positions=positions or [], books=books, crowd=crowd, latency_s=0.5,
        dynamics=Dynamics(**dyn), shocks=[-2.0], shock_symbol=BTC,
    )  # fmt: skip


def test_sweeping_a_level_moves_the_touch_a_whole_gap_and_the_tail_continues() -> None:
    curve = DepthCurve.of([(100.0, 1.0), (99.0, 1.0), (98.0, 1.0), (97.0, 1.0)])
    assert curve.touch_after(0.5) == 0.0  # the best level still has some left
    assert curve.touch_after(1.0) == 1.0  # swept: the next level is the touch
    assert curve.touch_after(3.5) == 3.0
    assert curve.touch_after(4.0) == 4.0  # past the snapshot: same gap, same size
    assert curve.touch_after(6.5) == 6.0


def test_impact_keeps_a_share_of_the_move_and_the_book_refills() -> None:
    impact = Impact.of(ladder(100.0, 1.0, 1.0), permanent=0.5, half_life_s=1.0)
    walk = impact.take("sell", 2.0, OrderSizes.single(2.0))
    assert walk.walked == 2.0 and walk.moved == 1.0
    assert impact.missing["sell"] == pytest.approx(1.0)  # half of the taken depth is gone
    impact.refill(1.0)
    assert impact.missing["sell"] == pytest.approx(0.5)
    assert impact.missing["buy"] == 0.0


def test_the_last_print_of_an_order_into_a_depleted_book_sits_below_the_missing_depth() -> None:
    impact = Impact.of(ladder(100.0, 1.0, 1.0), permanent=0.5, half_life_s=1.0)
    impact.take("sell", 2.0, OrderSizes.single(2.0))  # 1.0 of depth still missing
    walk = impact.take("sell", 1.0, OrderSizes.single(1.0))
    # it meets the touch one level down, walks one level: its last fill two levels down
    assert walk.walked == 1.0 and walk.deepest == 2.0 and walk.fill == 1.5
    assert walk.moved == 0.5
    # two orders in one take: the second starts from the mid the first one moved
    again = Impact.of(ladder(100.0, 1.0, 1.0), permanent=0.5, half_life_s=1.0)
    walk = again.take("sell", 2.0, OrderSizes.single(1.0))
    assert walk.walked == 1.0 and walk.moved == 1.0
    assert walk.deepest == 0.5 + 1.0  # the first one's move, then its own walk from the touch


def test_order_sizes_keep_their_mean_and_mix_small_and_large() -> None:
    sizes = OrderSizes.lognormal(0.5, 0.8)
    drawn = [sizes.next() for _ in range(len(sizes.sizes))]
    assert sum(drawn) / len(drawn) == pytest.approx(0.5)
    assert max(drawn) > 2 * min(drawn) * 2
    assert drawn[:3] != sorted(drawn[:3]) or drawn[3:6] != sorted(drawn[3:6])


def test_clusters_hold_the_open_interest_longs_below_shorts_above() -> None:
    crowd = Crowd(open_interest=1000.0, long_share=0.7, leverage_median=20)
    clusters = clusters_for(BTC, crowd, 60000.0)
    longs = [c for c in clusters if c.side == "long"]
    shorts = [c for c in clusters if c.side == "short"]
    assert sum(c.qty for c in longs) == pytest.approx(700.0)
    assert sum(c.qty for c in shorts) == pytest.approx(300.0)
    assert all(c.price < 60000 * 1.01 for c in longs) and all(
        c.price > 60000 * 0.99 for c in shorts
    )
    assert [c.price for c in longs] == sorted((c.price for c in longs), reverse=True)
    # the nearest long cluster is the most leveraged: liquidated first
    assert longs[0].leverage > longs[-1].leverage
    assert all(c.bankruptcy < c.price for c in longs)  # bankrupt past the liquidation price


def test_a_bigger_shock_liquidates_more_and_goes_further() -> None:
    sc = scenario()
    nodes = build_nodes(sc)
    small, big = propagate(sc, nodes, -1.0), propagate(sc, nodes, -4.0)
    assert 0 < len(small.liquidations) < len(big.liquidations)
    assert big.final_price[BTC] < small.final_price[BTC] < 60000 * 0.99
    assert all(nodes[r.node].side == "long" for r in big.liquidations)
    # the same inputs give the same answer
    again = propagate(sc, build_nodes(sc), -4.0)
    assert [(r.node, r.time_s) for r in again.liquidations] == [
        (r.node, r.time_s) for r in big.liquidations
    ]


def test_with_one_mark_source_the_cascade_goes_in_rounds_of_its_interval() -> None:
    sc = scenario(oi=600.0, mark_sources_s=(2.0,))
    nodes = build_nodes(sc)
    out = propagate(sc, nodes, -2.0)
    times = sorted({r.time_s for r in out.liquidations})
    assert times[0] == 0.0 and len(times) > 2
    assert all(t % 2.0 == pytest.approx(0.0) for t in times)
    # the graph: the shock's own hits, then edges from liquidated nodes to the ones they reached
    assert any(e.source == -1 for e in out.edges)
    assert any(e.source >= 0 and e.move_pct < 0 for e in out.edges)
    # a round per interval, and within a round the liquidations' own prints can move the
    # mark (its last-price leg) further: more hops at the same instant, never fewer rounds
    assert max(r.hop for r in out.liquidations) >= len(times) - 1
    when = {r.node: r.time_s for r in out.liquidations}
    # every liquidated node has exactly one incoming edge, one hop further than its source
    incoming = {e.target: e for e in out.edges}
    assert len(incoming) == len(out.edges)
    hop = {r.node: r.hop for r in out.liquidations}
    for node, h in hop.items():
        src = incoming[node].source
        assert h == (0 if src == -1 else hop[src] + 1)
        assert src == -1 or when[src] <= when[node]  # an edge never goes back in time


def test_on_the_exchanges_step_clock_a_source_requotes_at_the_first_step_past_its_interval() -> (
    None
):
    assert Dynamics(engine_step_s=0.2).requote_every(1.5) == pytest.approx(1.6)
    assert Dynamics(engine_step_s=0.2).requote_every(1.0) == pytest.approx(1.0)
    assert Dynamics().requote_every(1.5) == 1.5  # continuous
    sc = scenario(oi=600.0, mark_sources_s=(1.5,), engine_step_s=0.2)
    times = sorted({r.time_s for r in propagate(sc, build_nodes(sc), -2.0).liquidations})
    assert len(times) > 3
    steps = [t / 0.2 for t in times]
    assert all(k == pytest.approx(round(k)) for k in steps)  # only ever at a step
    assert times[1] == pytest.approx(1.6)  # the source's first requote, not 1.5 s
    assert pytest.approx(3.2) in times  # and its second
    # between requotes the mark still moves (its basis average): a step in between
    assert any(abs(t / 1.6 - round(t / 1.6)) > 1e-6 for t in times)


def test_the_index_weighs_its_sources_as_stated() -> None:
    # a basis averaged over an hour: the mark is the index in the first seconds
    fast = scenario(mark_sources_s=(1.0, 3.0), mark_source_weights=(3.0, 1.0), basis_window_s=3600)
    slow = scenario(mark_sources_s=(1.0, 3.0), mark_source_weights=(1.0, 3.0), basis_window_s=3600)
    at_1s = {}
    for name, sc in (("fast", fast), ("slow", slow)):
        out = propagate(sc, build_nodes(sc), -2.0)
        at_1s[name] = next(m for t, m in out.path[BTC] if t == 1.0)
    # at 1 s only the fast source has taken up the cascade's price: 3/4 of it, or 1/4
    shocked = 60000 * 0.98
    assert shocked - at_1s["fast"] == pytest.approx(3 * (shocked - at_1s["slow"]), rel=0.05)


def test_correlation_carries_the_cascade_to_the_other_symbol() -> None:
    alone = scenario()
    linked = scenario()
    linked.correlations[(BTC, ETH)] = 0.9
    a = propagate(alone, build_nodes(alone), -2.0)
    b = propagate(linked, build_nodes(linked), -2.0)
    assert a.final_price[ETH] == 3000.0  # uncorrelated: untouched
    assert not [r for r in a.liquidations if r.symbol == ETH]
    assert b.final_price[ETH] < 3000 * 0.98
    assert [r for r in b.liquidations if r.symbol == ETH]


@pytest.mark.parametrize("cross_impact", [0.0, 0.5, 1.0])
def test_cross_impact_scales_what_the_cascade_passes_on_beyond_the_shock(
    cross_impact: float,
) -> None:
    linked = scenario(cross_impact=cross_impact)
    linked.correlations[(BTC, ETH)] = 0.9
    linked.crowd[ETH].leverage_median = linked.crowd[ETH].leverage_max = 2.0  # out of reach
    nodes = build_nodes(linked)
    out = propagate(linked, nodes, -2.0)
    assert not [r for r in out.liquidations if r.symbol == ETH]
    btc_moves = sum(r.moved for r in out.liquidations if r.symbol == BTC) / 60000
    assert btc_moves < -0.001  # BTC's cascade moved it: something to pass on
    shocked = 3000 * (1 - 0.9 * 0.02)
    expected = shocked + cross_impact * 0.9 * btc_moves * 3000
    assert out.final_price[ETH] == pytest.approx(expected, rel=1e-9)


def test_this_accounts_position_liquidates_when_the_mark_reaches_it() -> None:
    near = Position(BTC, 0.5, 60000.0, 58900.0)  # inside the shock: at once
    far = Position(BTC, 0.5, 60000.0, 58700.0)  # beyond: the cascade must carry the mark
    never = Position(BTC, 0.5, 60000.0, 30000.0)
    sc = scenario(positions=[near, far, never])
    nodes = build_nodes(sc)
    out = propagate(sc, nodes, -2.0)
    mine = {nodes[r.node].price: r.time_s for r in out.liquidations if nodes[r.node].account}
    assert mine[58900.0] == 0.0
    assert mine[58700.0] > 0.0
    assert 30000.0 not in mine


def test_the_walks_averaged_over_draws_match_the_simulators_books_on_average() -> None:
    """The simulator requotes its levels' sizes every step; a cascade's orders within one
    step all meet the same draw. The truth: the mean move of a stream of liquidation orders
    over the simulator's own books at many steps. The model sees one snapshot."""
    engine = build_engine(sim_config(Case(-2.0, 1.0, traders=1, level_qty=0.1, seed=11)))
    mkt = engine.markets[SYMBOL]
    spec = mkt.spec

    def book_at(step: int) -> list[tuple[float, float]]:
        mkt.tick_index = step
        return [(spec.px(p), spec.qty(q)) for p, q in mkt.crowd()[0]]

    def moved(curve: DepthCurve | DepthDraws) -> float:
        impact = Impact(curve, curve, 0.3, 5.0)
        return impact.take("sell", 30.0, OrderSizes.lognormal(0.14, 0.8)).moved

    truth = [moved(DepthCurve.of(book_at(1000 + k), smooth=0)) for k in range(80)]
    mean = sum(truth) / len(truth)
    spread = (sum((x - mean) ** 2 for x in truth) / (len(truth) - 1)) ** 0.5
    assert 0.1 < spread / mean < 0.35  # the simulator's own noise: no snapshot can know it
    snapshot = book_at(7)
    assert DepthDraws.of(snapshot).touch_after(0.0) == 0.0
    assert moved(DepthDraws.of(snapshot)) == moved(DepthDraws.of(snapshot))  # no randomness
    estimate = moved(DepthDraws.of(snapshot))
    print(
        f"simulator mean {mean:.0f} (sd {spread:.0f}), draws {estimate:.0f}, one snapshot "
        f"{moved(DepthCurve.of(snapshot)):.0f}"
    )
    assert estimate == pytest.approx(mean, rel=0.15)
