"""Bad input and a broken environment, as a user meets them: every case ends with ONE line
on stderr (never a traceback, never "internal error") and the documented exit code: 2 for
bad input, 1 for the environment. Nothing may be written outside the state dir."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.conftest import ROOT, run_cli
from tests.integration.kill_strategies.support import (
    HERE,
    orders_of,
    quiet_market,
    sim_env,
    write_strategy,
)

BTC = "BTC/USDT:USDT"
IDLE = {"mode": "idle", "orders_per_symbol": 0}


def one_line(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    lines = [line for line in r.stderr.splitlines() if not line.startswith("perpbot: warning")]
    assert r.returncode == code, r.stderr[-2000:]
    assert len(lines) == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def strategy_doc(**strategy: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "strategy": {"name": "adv", "file": str(HERE / "hang.py"), "symbols": [BTC]},
        "risk": {"accept_no_limits": True},
    }
    doc["strategy"].update(strategy)
    return doc


def write(tmp_path: Path, doc: dict[str, Any], name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(tomli_w.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("a" * 255, "at most 64 characters"),
        ("a" * 20_000, "at most 64 characters"),
        ("a\x00b", "[strategy] name"),
        ("../escape", "[strategy] name"),
        ("../../../../tmp/adv-escape", "[strategy] name"),
        ("", "[strategy] name"),
    ],
    ids=["255", "20000", "nul", "dotdot", "deep-dotdot", "empty"],
)
def test_bad_strategy_names(tmp_path: Path, state_home: Path, name: str, needle: str) -> None:
    before = set(tmp_path.parent.iterdir())
    r = run_cli("run", str(write(tmp_path, strategy_doc(name=name))), "--duration", "1")
    line = one_line(r, 2, needle)
    assert len(line) < 400
    assert set(tmp_path.parent.iterdir()) == before, "nothing may be created outside"
    assert not Path("/tmp/adv-escape").exists()


def test_a_deeply_nested_inline_table(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(tomli_w.dumps(strategy_doc()) + "\nx = " + "{a=" * 3000 + "1" + "}" * 3000)
    one_line(run_cli("run", str(path)), 2, "nested too deeply")


def test_a_path_too_long(tmp_path: Path) -> None:
    one_line(run_cli("run", str(tmp_path / ("a" * 5000 + ".toml"))), 2, "path too long")
    doc = strategy_doc(file="x" * 5000 + ".py")
    one_line(run_cli("run", str(write(tmp_path, doc))), 2, "[strategy] file")


@pytest.mark.parametrize("args", [("run", "/dev/zero"), ("sim", "serve", "--config", "/dev/zero")])
def test_devices_are_not_config_files(args: tuple[str, ...]) -> None:
    one_line(run_cli(*args, timeout=30), 2, "/dev/zero", "not a regular file")


def test_a_huge_config_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text(tomli_w.dumps(strategy_doc()) + "\n#" + "x" * (2 << 20) + "\n")
    one_line(run_cli("run", str(path)), 2, "larger than")


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_bad_durations(tmp_path: Path, value: str) -> None:
    r = run_cli("run", str(write(tmp_path, strategy_doc())), "--duration", value)
    one_line(r, 2, "--duration")


@pytest.mark.parametrize("value", ["1e20", "100000000000000000000", "-1", "x"])
def test_log_tail_line_counts(value: str) -> None:
    r = run_cli("log", "tail", "-n", value)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "internal error" not in r.stderr


def test_a_kill_file_nested_100k_deep(state_home: Path) -> None:
    """A KILL file nested 100k deep is a standing cancel, said in one line by every command."""
    (state_home / "KILL").write_text("[" * 100_000 + "]" * 100_000)
    refused = run_cli("run", str(ROOT / "strategies" / "grid.toml"), "--duration", "1")
    one_line(refused, 4, "refusing to start", "nested too deeply to parse")
    shown = run_cli("kill", "--show")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr[-2000:]
    assert shown.stdout.startswith("kill switch: level cancel for all bots")
    assert "nested too deeply to parse" in shown.stdout
    cleared = run_cli("kill", "--clear", "--yes")
    assert cleared.returncode == 0 and "Traceback" not in cleared.stderr, cleared.stderr[-2000:]
    assert not (state_home / "KILL").exists()


def test_duplicate_symbols_are_traded_once(sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={**IDLE, "orders_per_symbol": 1},
        strategy={"symbols": [BTC] * 1000, "tick_interval": 0.2},
        extra={"risk": {"accept_no_limits": True}},
    )
    r = run_cli("run", str(toml), "--plain", "--duration", "2", env=sim_env(creds))
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(orders_of(sim.state(), creds[0])) == 1  # one symbol, one order


def test_a_corrupt_budget_store_invalid_json(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    test_a_corrupt_budget_store(sim_factory, tmp_path, state_home, "{not json")


@pytest.mark.parametrize("doc", ['{"weight": "many"}', '{"weight_used": NaN}', "[]", "null"])
def test_a_corrupt_budget_store(
    sim_factory: Any, tmp_path: Path, state_home: Path, doc: str
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path, sim.base_url, params=IDLE, extra={"risk": {"accept_no_limits": True}}
    )
    r = run_cli("run", str(toml), "--plain", "--duration", "1", env=sim_env(creds))
    assert r.returncode == 0, r.stderr[-2000:]
    (store,) = (state_home / "limits").glob("*.sqlite")
    with sqlite3.connect(store) as db:
        db.execute("UPDATE budget_v1 SET doc = ?", (doc,))
    r = run_cli("run", str(toml), "--plain", "--duration", "1", env=sim_env(creds))
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr[-2000:]
    if r.returncode != 0:  # refusing is fine if it says which file, in one line
        one_line(r, 1, str(store.parent))


@pytest.mark.parametrize("folder", ["limits", "runs"])
def test_a_state_folder_replaced_by_a_file(
    sim_factory: Any, tmp_path: Path, state_home: Path, folder: str
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    (state_home / folder).write_text("not a folder")
    toml = write_strategy(
        tmp_path, sim.base_url, params=IDLE, extra={"risk": {"accept_no_limits": True}}
    )
    r = run_cli("run", str(toml), "--plain", "--duration", "1", env=sim_env(creds))
    one_line(r, 1, str(state_home / folder))


def test_an_unknown_exchange_id(tmp_path: Path) -> None:
    doc = strategy_doc()
    doc["exchange"] = {"id": "binance_usdm", "profile": "p"}
    one_line(run_cli("run", str(write(tmp_path, doc))), 2, "unknown exchange id", "binance_usdm")


def test_an_unreachable_exchange(tmp_path: Path) -> None:
    """The sandbox of a real exchange, with no network (a proxy that refuses): it says it
    cannot reach the host, exit 1."""
    from tests.keys_support.backends import file_keyring_env

    env = file_keyring_env(tmp_path / "keyring.json")
    env.update({"PERPBOT_API_KEY": "", "PERPBOT_API_SECRET": ""})
    env.update({"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    creds = "PBTESTKEY0000000000000000000000wxyz\nPBTESTSECRET000000000000000000000qrst\n"
    r = run_cli("keys", "add", "t", "--exchange", "binanceusdm", "--stdin", input=creds, env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "keys", "scope", "t", "--command", "run", "--allow", "trade,cancel", "--yes", env=env
    )
    assert r.returncode == 0, r.stderr
    doc = strategy_doc()
    doc["exchange"] = {"id": "binanceusdm", "profile": "t", "sandbox": True, "timeout_ms": 2000}
    r = run_cli("run", str(write(tmp_path, doc)), "--plain", env=env, timeout=120)
    one_line(r, 1, "cannot reach")


def test_report_out_never_replaces_a_symlink_or_device(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path, sim.base_url, params=IDLE, extra={"risk": {"accept_no_limits": True}}
    )
    r = run_cli("run", str(toml), "--plain", "--duration", "1", env=sim_env(creds))
    assert r.returncode == 0, r.stderr[-2000:]
    target = tmp_path / "target.html"
    target.write_text("keep")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    r = run_cli("report", "last", "--out", str(link))
    assert r.returncode == 0, r.stderr[-2000:]
    assert link.is_symlink(), "the symlink must never be replaced"
    assert target.read_bytes().startswith(b"\x89PNG"), "written through the link"
    r = run_cli("report", "last", "--out", "/dev/null")
    one_line(r, 2, "/dev/null", "not a regular file")
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_numbers_in_the_strategy_file(tmp_path: Path, value: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(strategy_doc()).replace(
        "[risk]\n", f"[risk]\nmax_order_notional = {value}\n"
    ))  # fmt: skip
    one_line(run_cli("run", str(path)), 2, "[risk] max_order_notional", "finite")
