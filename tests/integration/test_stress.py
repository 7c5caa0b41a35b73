"""`perpbot risk stress`: the command on a scenario file, on a live simulator through a key
profile, its refusals of bad input, and its prediction against the simulator's own crowd."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from perpbot.client.transport import make_exchange
from perpbot.stress.validate import STEP_MS, SYMBOL, Case, assumptions, sim_config
from tests.cli.test_optional_extras import assert_one_line_hint, hide
from tests.conftest import run_cli
from tests.keys_support.backends import file_keyring_env

FIXTURE = Path(__file__).parent.parent / "fixtures" / "stress" / "scenario.toml"
BTC = "BTC/USDT:USDT"


def _json(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_scenario_file_gives_the_table_the_words_json_and_a_plot(
    tmp_path: Path, state_home: Path
) -> None:
    png = tmp_path / "stress.png"
    doc = _json(run_cli("risk", "stress", str(FIXTURE), "--json", "--plot", str(png)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and doc["plot"] == str(png)
    assert [s["shock_pct"] for s in doc["shocks"]] == [-2, -4, 2]
    assert doc["inputs"]["latency_ms"] == 400 and doc["inputs"]["shock_symbol"] == "BTCUSDT"
    for shock in doc["shocks"]:
        down = shock["shock_pct"] < 0
        assert shock["starts"]["side"] == ("long" if down else "short")
        btc = shock["symbols"]["BTCUSDT"]
        assert btc["qty"] > 0 and btc["beyond_shock_pct"] > 0
        assert shock["symbols"]["ETHUSDT"]["clusters"] > 0  # correlated 0.8: it spreads
        mine = {p["symbol"]: p for p in shock["positions"]}
        hit, spared = (mine["BTCUSDT"], mine["ETHUSDT"]) if down else (mine["ETHUSDT"],
                                                                      mine["BTCUSDT"])  # fmt: skip
        assert hit["liquidated"] and not spared["liquidated"]
        assert hit["time_to_act_s"] == pytest.approx(hit["time_to_liquidation_s"] - 0.4)
        assert spared["time_to_act_s"] is None and spared["verdict"] == "safe"
    # the deeper the shock, the sooner the long is liquidated
    t2, t4 = (
        next(p for p in s["positions"] if p["symbol"] == "BTCUSDT")["time_to_liquidation_s"]
        for s in doc["shocks"][:2]
    )
    assert t4 < t2

    text = run_cli("risk", "stress", str(FIXTURE), "--shock", "-3")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "liquidation cascade" in out and "shock -3% on BTCUSDT: the cascade starts" in out
    assert "your long 0.5 BTCUSDT (liquidation 57,300)" in out and "to reduce it" in out
    assert "ADL BTCUSDT" in out and "assumed" in out and "half long" in out


def test_without_the_report_extra_the_plot_is_one_line_and_the_rest_works(
    tmp_path: Path, state_home: Path
) -> None:
    png = tmp_path / "stress.png"
    env = hide(tmp_path, "matplotlib")
    result = run_cli("risk", "stress", str(FIXTURE), "--plot", str(png), env=env)
    assert_one_line_hint(result, "pip install 'perpbot[report]'")
    assert not png.exists()
    plain = run_cli("risk", "stress", str(FIXTURE), "--shock", "-2", env=env)
    assert plain.returncode == 0 and "liquidation cascade" in plain.stdout, plain.stderr


def test_json_input_works_like_toml(tmp_path: Path, state_home: Path) -> None:
    import tomllib

    data = tomllib.loads(FIXTURE.read_text())
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    a = _json(run_cli("risk", "stress", str(path), "--json", "--shock", "-2"))
    b = _json(run_cli("risk", "stress", str(FIXTURE), "--json", "--shock", "-2"))
    assert a["shocks"] == b["shocks"]


def test_positions_can_come_from_a_runs_last_tick(state_home: Path) -> None:
    """A run folder as `perpbot run` writes it (engine/report.py's tick record); the last
    tick's positions replace the file's, and a torn last line is skipped."""
    run = state_home / "runs" / "20260101-000000-grid"
    run.mkdir(parents=True)
    (run / "meta.json").write_text(json.dumps({"run_id": run.name, "started_at": 1.0}))
    tick = {"ts": 2.0, "marks": {BTC: 60000.0}, "positions": {
        BTC: {"amount": 0.2, "entry": 60100.0, "upnl": -20.0, "liquidation": 58000.0},
        "ETH/USDT:USDT": {"amount": 0.0, "entry": 0.0, "upnl": 0.0, "liquidation": None},
    }}  # fmt: skip
    older = {"ts": 1.0, "positions": {BTC: {"amount": 1.0, "entry": 1.0, "liquidation": 0.5}}}
    lines = [json.dumps(older), json.dumps(tick), '{"ts": 3.0, "positions": {"BTC']
    (run / "ticks.jsonl").write_text("\n".join(lines))
    doc = _json(run_cli("risk", "stress", str(FIXTURE), "--run", "last", "--json"))
    assert doc["inputs"]["positions"] == [
        {"symbol": "BTCUSDT", "amount": 0.2, "entry": 60100.0, "liquidation_price": 58000.0}
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a scenario file, --profile or --run"),
        (("missing.toml",), "cannot read"),
        (("BROKEN",), "not valid TOML"),
        ((str(FIXTURE), "--shock", "0"), "--shock"),
        ((str(FIXTURE), "--latency-ms", "-1"), "--latency-ms"),
        ((str(FIXTURE), "--url", "http://127.0.0.1:9"), "--url: needs --profile"),
        (("BADFIELD",), "positions[0].amount"),
        ((str(FIXTURE), "--plot", "/"), "--plot"),
        (("--run", "last"), "no runs yet"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, state_home: Path, args: tuple[str, ...], message: str
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[books\n")
    badfield = tmp_path / "badfield.toml"
    text = FIXTURE.read_text().replace("amount = 0.5", 'amount = "lots"')
    badfield.write_text(text)
    swap = {"BROKEN": str(broken), "BADFIELD": str(badfield)}
    r = run_cli("risk", "stress", *[swap.get(a, a) for a in args], cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("perpbot: error:")
    assert "Traceback" not in r.stderr


# -- a live simulator through a key profile ------------------------------------------------------
async def _open_long(url: str, key: str, secret: str, qty: float) -> dict[str, Any]:
    ex = make_exchange("sim", api_key=key, secret=secret, base_url=url)
    try:
        await ex.load_markets()
        await ex.set_leverage(125, BTC)
        await ex.create_order(BTC, "market", "buy", qty)
        (pos,) = [p for p in await ex.fetch_positions() if p["contracts"]]
        return pos
    finally:
        await ex.close()


def _profile(tmp_path: Path, key: str, secret: str) -> dict[str, str]:
    env = file_keyring_env(tmp_path / "keyring.json")
    r = run_cli("keys", "add", "desk", "--exchange", "sim", "--stdin", env=env,
                input=f"{key}\n{secret}\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return env


def test_live_profile_reads_positions_and_books_and_says_what_it_assumed(
    sim: Any, tmp_path: Path, state_home: Path
) -> None:
    key, secret = sim.create_account(balance=150.0)
    pos = asyncio.run(_open_long(sim.base_url, key, secret, 0.01))
    env = _profile(tmp_path, key, secret)
    orders_before = [o for o in sim.state()["orders"] if o["account"] == key]
    args = ("risk", "stress", "--profile", "desk", "--url", sim.base_url, "--json")
    doc = _json(run_cli(*args, "--shock", "-5", "--shock", "-30", env=env))
    # it only reads: the simulator saw no order, no cancel, no leverage change
    assert [o for o in sim.state()["orders"] if o["account"] == key] == orders_before
    (mine,) = doc["inputs"]["positions"]
    assert mine["symbol"] == "BTCUSDT" and mine["amount"] == pytest.approx(0.01)
    assert mine["liquidation_price"] == pytest.approx(float(pos["liquidationPrice"]), rel=1e-6)
    book = doc["inputs"]["books"]["BTCUSDT"]
    assert book["levels"] > 10 and book["mid"] == pytest.approx(float(pos["markPrice"]), rel=0.01)
    notes = " ".join(doc["assumptions"])
    assert "open interest 0.01 from the exchange" in notes and "leverage" in notes
    assert doc["inputs"]["crowd"]["BTCUSDT"]["open_interest"] == pytest.approx(0.02)
    # a -30 % shock is past the liquidation price: liquidated at once, too late to act
    deep = next(s for s in doc["shocks"] if s["shock_pct"] == -30)
    (p,) = deep["positions"]
    assert p["liquidated"] and p["time_to_liquidation_s"] == 0 and p["verdict"] == "too late"
    assert key not in json.dumps(doc) and secret not in json.dumps(doc)
    logs = list((state_home / "logs").rglob("*.jsonl"))  # the reads are in a signed log
    assert logs and any("/fapi/v1/depth" in p.read_text() for p in logs)

    deny = ("keys", "scope", "desk", "--command", "status", "--deny", "read", "--yes")
    assert run_cli(*deny, env=env).returncode == 0
    r = run_cli(*args, env=env)
    assert r.returncode == 3 and "Traceback" not in r.stderr


async def _constituents(url: str) -> dict[str, Any]:
    ex = make_exchange("sim", api_key="", secret="", base_url=url)  # a public route
    try:
        return await ex.fapiPublicGetConstituents({"symbol": SYMBOL})
    finally:
        await ex.close()


def test_live_index_weights_come_from_the_exchanges_constituents(
    sim: Any, tmp_path: Path, state_home: Path
) -> None:
    """``--profile`` reads each symbol's index weights from ``/fapi/v1/constituents`` (ccxt's
    implicit method, over HTTP); the truth is the simulator's own index basket. A failing
    route leaves them an assumption, said so, and the command still runs."""
    key, secret = sim.create_account(balance=150.0)
    asyncio.run(_open_long(sim.base_url, key, secret, 0.01))
    env = _profile(tmp_path, key, secret)
    venues = sim.state()["markets"][SYMBOL]["venues"]
    truth = [v["weight"] / sum(u["weight"] for u in venues) for v in venues]
    assert len(truth) == 5 and max(truth) - min(truth) > 0.02  # unequal, so they matter

    raw = asyncio.run(_constituents(sim.base_url))
    assert raw["symbol"] == SYMBOL and isinstance(raw["time"], int)
    listed = [float(c["weight"]) for c in raw["constituents"]]
    assert listed == pytest.approx(truth, abs=1e-4) and sum(listed) == pytest.approx(1.0)
    assert all(float(c["price"]) > 0 and c["exchange"] for c in raw["constituents"])

    stated = tmp_path / "sources.toml"
    intervals = {"dynamics": {"mark_sources_s": [1, 1.5, 2, 2.5, 3]}}
    stated.write_bytes(tomli_w.dumps(intervals).encode())
    args = ("risk", "stress", str(stated), "--profile", "desk", "--url", sim.base_url,
            "--shock", "-2")  # fmt: skip
    doc = _json(run_cli(*args, "--json", env=env))
    assert doc["inputs"]["mark_source_weights"][SYMBOL] == pytest.approx(truth, abs=1e-4)
    notes = "\n".join(doc["assumptions"])
    assert f"{SYMBOL}: index weights " in notes
    assert "from the exchange (/fapi/v1/constituents)" in notes
    assert "weigh the same" not in notes
    logs = list((state_home / "logs").rglob("*.jsonl"))  # the read is in the signed log
    assert any("/fapi/v1/constituents" in p.read_text() for p in logs)

    # the intervals not stated: the weights are read but cannot move the mark, and it says so
    bare = _json(run_cli("risk", "stress", "--profile", "desk", "--url", sim.base_url,
                         "--shock", "-2", "--json", env=env))  # fmt: skip
    assert bare["inputs"]["mark_source_weights"][SYMBOL] == [1.0]
    assert "not used: every constituent is assumed to requote each second" in "\n".join(
        bare["assumptions"]
    )

    # the route fails (503 on every attempt): the weights are an assumption, said so
    sim.set_faults({"errors": {"rate": 1.0, "paths": ["/fapi/v1/constituents"]}})
    faulted = _json(run_cli(*args, "--json", env=env))
    assert faulted["inputs"]["mark_source_weights"][SYMBOL] == [1.0] * 5
    notes = "\n".join(faulted["assumptions"])
    assert "index's constituents could not be read" in notes and "weights are assumed" in notes
    assert "the index's sources weigh the same" in notes
    assert faulted["shocks"][0]["positions"], faulted
    text = run_cli(*args, env=env)
    assert text.returncode == 0 and "Traceback" not in text.stderr, text.stderr
    assert "could not be read" in text.stdout and "weigh the same" in text.stdout


# -- the prediction against the simulator's crowd ------------------------------------------------
def test_predicted_time_to_liquidation_matches_the_simulated_cascade(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    """One scenario of bench/stress.py, end to end: the model reads the live market through
    the CLI, the simulator runs the same shock through its control API; the account's
    liquidation time must agree within 35 % (the bench prints the error over 24 cases)."""
    case = Case(-3.0, 2.5, leverage_median=20.0, traders=4000, trader_qty=0.1, level_qty=0.1,
                horizon_s=20.0)  # fmt: skip
    cfg = sim_config(case)
    sim = sim_factory(**cfg.model_dump())
    mark = 60000.0
    distance = (abs(case.shock_pct) + case.beyond_pct) / 100.0
    key, secret = sim.create_account(balance=0.05 * mark * (distance + 0.004) + 1.0)
    asyncio.run(_open_long(sim.base_url, key, secret, 0.05))
    sim.advance(STEP_MS)
    env = _profile(tmp_path, key, secret)
    stated = tmp_path / "crowd.toml"
    stated.write_bytes(tomli_w.dumps(assumptions(cfg, case.horizon_s)).encode())
    doc = _json(run_cli("risk", "stress", str(stated), "--profile", "desk", "--url",
                        sim.base_url, "--shock", str(case.shock_pct), "--latency-ms", "0",
                        "--json", env=env))  # fmt: skip
    (mine,) = doc["shocks"][0]["positions"]
    assert mine["liquidated"], mine
    predicted = mine["time_to_liquidation_s"]

    before = {r["orderId"] for r in sim.state()["liquidations"]}
    start = sim.advance(0)
    sim.jump(SYMBOL, case.shock_pct)
    simulated = None
    for _ in range(int(case.horizon_s * 1000 / STEP_MS)):
        sim.advance(STEP_MS)
        mine_liq = [r for r in sim.state()["liquidations"]
                    if r["account"] == key and r["orderId"] not in before]  # fmt: skip
        if mine_liq:
            simulated = (mine_liq[0]["time"] - start) / 1000
            break
    assert simulated is not None, "the simulator's cascade did not reach the account"
    print(f"time to liquidation: predicted {predicted} s, simulated {simulated} s")
    assert abs(predicted - simulated) <= 0.35 * simulated, (predicted, simulated)
    crowd_sim = sum(float(r["qty"]) for r in sim.state()["crowd_liquidations"])
    assert crowd_sim > 0 and doc["shocks"][0]["symbols"]["BTCUSDT"]["qty"] > 0
