"""Reading a stress scenario: every default said out loud, every bad field named."""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.errors import BadInput
from perpbot.stress.inputs import from_document
from perpbot.stress.sources import index_weights_into

BOOK = {"bids": [[59999.5, 1.0], [59990, 2.0]], "asks": [["60000.5", "1.0"], [60010, 2]]}


def doc(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "books": {"BTCUSDT": BOOK},
        "positions": [{"symbol": "BTCUSDT", "amount": 0.1, "entry": 60000, "leverage": 20}],
    }
    base.update(extra)
    return base


def test_defaults_are_listed_as_assumptions() -> None:
    sc = from_document(doc(), where="f.toml")
    notes = " | ".join(sc.assumptions)
    for phrase in ("open interest", "leverage", "half long", "latency", "once a second",
                   "insurance fund", "continuously (engine_step_s)"):  # fmt: skip
        assert phrase in notes
    assert sc.shock_symbol == "BTCUSDT" and sc.shocks
    (pos,) = sc.positions
    assert pos.liq_price == pytest.approx(60000 * (1 - 1 / 20 + 0.004))  # from the leverage
    assert sc.books["BTCUSDT"].mid == pytest.approx(60000.0)  # strings accepted


def test_stated_values_are_not_assumed() -> None:
    sc = from_document(
        doc(
            crowd={
                "BTCUSDT": {
                    "open_interest": 10,
                    "leverage_median": 30,
                    "long_share": 0.6,
                    "position_size": 0.1,
                }
            },
            latency_ms=250,
            dynamics={
                "mark_sources_s": [1, 3],
                "mark_source_weights": [2, 1],
                "engine_step_s": 0.2,
                "impact_permanent": 0.2,
                "insurance_fund": 1e6,
            },
        ),
        where="f.toml",
    )
    assert sc.assumptions == []
    assert sc.latency_s == 0.25 and sc.dynamics.mark_sources_s == (1.0, 3.0)
    assert sc.dynamics.mark_source_weights == (2.0, 1.0) and sc.dynamics.engine_step_s == 0.2
    assert sc.crowd["BTCUSDT"].leverage_median == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"books": {}}, "at least one symbol"),
        ({"books": {"BTCUSDT": {"bids": [[60001, 1]], "asks": [[60000, 1]]}}}, "crossed book"),
        ({"books": {"BTCUSDT": {"bids": [], "asks": [[1, 1]]}}}, "books.BTCUSDT.bids"),
        ({"positions": [{"symbol": "ETHUSDT", "amount": 1, "entry": 1, "leverage": 2}]},
         "no [books.ETHUSDT]"),
        ({"positions": [{"symbol": "BTCUSDT", "amount": 1, "entry": 60000,
                         "liquidation_price": 61000}]}, "wrong side"),
        ({"positions": [{"symbol": "BTCUSDT", "amount": 0, "entry": 1, "leverage": 2}]},
         "non-zero"),
        ({"positions": [{"symbol": "BTCUSDT", "amount": 1, "entry": 60000}]},
         "liquidation_price or leverage"),
        ({"crowd": {"BTCUSDT": {"leverage_median": "high"}}}, "expected a number"),
        ({"crowd": {"BTCUSDT": {"long_share": 2}}}, "long_share"),
        ({"correlations": {"BTCUSDT/XRPUSDT": 0.5}}, "SYMBOL/SYMBOL"),
        ({"correlations": {"BTCUSDT/BTCUSDT": 1.5}}, "[-1, 1]"),
        ({"shocks": [0]}, "non-zero"),
        ({"shock_symbol": "ETHUSDT"}, "shock_symbol"),
        ({"dynamics": {"mark_lag": 1}}, "unknown key 'mark_lag'"),
        ({"dynamics": {"engine_step_s": -1}}, "dynamics.engine_step_s"),
        ({"dynamics": {"mark_sources_s": [1, 2], "mark_source_weights": [1]}},
         "one weight per mark_sources_s"),
        ({"dynamics": {"mark_sources_s": [1, 2],
                       "mark_source_weights": {"BTCUSDT": [1, 2, 3]}}},
         "mark_source_weights.BTCUSDT: expected one weight per"),
        ({"dynamics": {"mark_sources_s": [1, 2], "mark_source_weights": {"ETHUSDT": [1, 2]}}},
         "mark_source_weights.ETHUSDT: no [books.ETHUSDT]"),
        ({"dynamics": {"mark_sources_s": [1, 2], "mark_source_weights": {"BTCUSDT": [1, -1]}}},
         "mark_source_weights.BTCUSDT"),
        ({"dynamics": {"cross_impact": 1.5}}, "dynamics.cross_impact"),
        ({"nonsense": 1}, "unknown key 'nonsense'"),
        ({"latency_ms": True}, "latency_ms"),
    ],
)  # fmt: skip
def test_bad_fields_are_named_in_one_line(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as err:
        from_document(doc(**change), where="f.toml")
    text = str(err.value)
    assert message in text and text.startswith("f.toml: ") and "\n" not in text


def test_weights_per_symbol_and_the_unweighted_ones_named() -> None:
    dyn = {"mark_sources_s": [1, 3], "mark_source_weights": {"BTCUSDT": [3, 1]}}
    two = doc(books={"BTCUSDT": BOOK, "ETHUSDT": BOOK}, dynamics=dyn)
    sc = from_document(two, where="f.toml")
    assert sc.dynamics.source_weights("BTCUSDT") == (3.0, 1.0)
    assert sc.dynamics.source_weights("ETHUSDT") == (1.0, 1.0)
    assert "the index's sources weigh the same (ETHUSDT) (mark_source_weights)" in sc.assumptions


@pytest.mark.parametrize(
    ("dynamics", "used", "says"),
    [
        ({"mark_sources_s": [1, 2, 3]}, True, "from the exchange (/fapi/v1/constituents)"),
        ({}, False, "not used: every constituent is assumed to requote each second"),
        ({"mark_sources_s": [1, 2]}, False, "lists 3 constituents, mark_sources_s states 2"),
        ({"mark_sources_s": [1, 2, 3], "mark_source_weights": [1, 1, 1]}, False,
         "the file's mark_source_weights are used instead"),
        ({"mark_sources_s": [1, 2, 3], "mark_source_weights": {"BTCUSDT": [1, 1, 2]}}, False,
         "the file's mark_source_weights are used instead"),
    ],
)  # fmt: skip
def test_the_exchanges_index_weights_are_used_only_where_they_pair(
    dynamics: dict[str, Any], used: bool, says: str
) -> None:
    document = doc(dynamics=dict(dynamics))
    notes = index_weights_into(document, {"BTCUSDT": [0.5, 0.3, 0.2]})
    (note,) = notes
    assert note.startswith("BTCUSDT: index weights 0.5/0.3/0.2") and says in note
    sc = from_document(document, where="f.toml")
    stated = dynamics.get("mark_source_weights")
    if used:
        assert sc.dynamics.source_weights("BTCUSDT") == (0.5, 0.3, 0.2)
    elif stated is not None:  # the file's own, untouched
        expected = stated["BTCUSDT"] if isinstance(stated, dict) else stated
        assert sc.dynamics.source_weights("BTCUSDT") == tuple(map(float, expected))
    else:
        assert set(sc.dynamics.source_weights("BTCUSDT")) == {1.0}


def test_cross_impact_is_an_assumption_only_where_symbols_correlate() -> None:
    two = {"books": {"BTCUSDT": BOOK, "ETHUSDT": BOOK}}
    linked = from_document(doc(**two, correlations={"BTCUSDT/ETHUSDT": 0.7}), where="f.toml")
    assert linked.dynamics.cross_impact == 1.0
    assert any("(cross_impact = 1;" in a for a in linked.assumptions)
    stated = doc(**two, correlations={"BTCUSDT/ETHUSDT": 0.7}, dynamics={"cross_impact": 0})
    sc = from_document(stated, where="f.toml")
    assert sc.dynamics.cross_impact == 0.0
    assert not any("cross_impact" in a for a in sc.assumptions)
    alone = from_document(doc(**two), where="f.toml")
    assert not any("cross_impact" in a for a in alone.assumptions)
