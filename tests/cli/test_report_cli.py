"""`perpbot runs` and `perpbot report` on real paper runs, as a user meets them.

A 15 s paper run of strategies/grid.toml (`perpbot run ... --duration 15 --json`) feeds the
acceptance checks: the PNG exists with the expected panels (checked on the figure's axes,
not pixels), the table's numbers match the fills journal, the HTML is self-contained.
Three more real runs end by SIGKILL (a crash: no summary, plus a torn journal tail), by
SIGINT (Ctrl-C) and by `perpbot kill`. All four start together in one module fixture and run
side by side, each in its own $PERPBOT_HOME, so the file's wall time is about one run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from perpbot.report.build import build_report
from tests.conftest import ROOT, run_cli
from tests.unit.report.report_html_check import embedded_images, external_references

GRID = ROOT / "strategies" / "grid.toml"
SYMBOL = "BTC/USDT:USDT"
PANELS = [f"Price {SYMBOL}", "Position", "Equity", "Drawdown from peak", "Rate budget"]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _tight_grid(folder: Path) -> Path:
    """strategies/grid.toml with a tighter grid, so a few seconds bring several fills."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grid.py").write_text((ROOT / "strategies" / "grid.py").read_text())
    text = GRID.read_text()
    for old, new in (
        ("spacing_bps = 4.0", "spacing_bps = 1.0"),
        ("recenter_bps = 8.0", "recenter_bps = 2.0"),
    ):
        assert old in text
        text = text.replace(old, new)
    (folder / "grid.toml").write_text(text)
    return folder / "grid.toml"


@dataclass
class LiveRun:
    home: Path
    proc: subprocess.Popen[str]
    err: IO[str]

    @property
    def env(self) -> dict[str, str]:
        return {"PERPBOT_HOME": str(self.home)}

    def stderr(self) -> str:
        self.err.flush()
        return Path(self.err.name).read_text()

    def wait_for(self, journal: str, n: int, timeout: float = 60) -> Path:
        """The run folder, once its ``journal`` has at least ``n`` lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr()
            for path in (self.home / "runs").glob(f"*/{journal}"):
                if sum(1 for _ in path.open()) >= n:
                    return path.parent
            time.sleep(0.2)
        raise AssertionError(f"no {n} lines of {journal} within {timeout:g} s: {self.stderr()}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiveRun]]:
    """Four paper runs, started at once; each test ends its own."""
    base = tmp_path_factory.mktemp("report-runs")
    tight = _tight_grid(base / "strategy")
    specs = {
        "paper": (GRID, ("--duration", "15", "--json")),
        "crash": (tight, ("--plain",)),
        "ctrl-c": (GRID, ("--plain",)),
        "kill": (GRID, ("--plain",)),
    }
    runs: dict[str, LiveRun] = {}
    for name, (strategy, args) in specs.items():
        home = base / name
        home.mkdir()
        err = open(base / f"{name}.stderr", "w")  # noqa: SIM115 (closed at teardown)
        proc = subprocess.Popen(
            [sys.executable, "-m", "perpbot", "run", str(strategy), *args],
            env={**os.environ, "PERPBOT_HOME": str(home)},
            cwd=str(ROOT),
            stdout=subprocess.PIPE if name == "paper" else subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        runs[name] = LiveRun(home, proc, err)
    yield runs
    for run in runs.values():
        if run.proc.poll() is None:
            run.proc.kill()
        run.proc.wait(timeout=30)
        if run.proc.stdout is not None:
            run.proc.stdout.close()
        run.err.close()


@pytest.fixture(scope="module")
def paper(live: dict[str, LiveRun]) -> dict[str, Any]:
    """The finished 15 s paper run: its home, run folder and printed summary."""
    run = live["paper"]
    out, _ = run.proc.communicate(timeout=120)
    assert run.proc.returncode == 0, run.stderr()
    summary = json.loads(out)
    return {"home": run.home, "env": run.env, "summary": summary, "dir": Path(summary["run_dir"])}


def test_paper_run_report_png_panels_and_numbers(paper: dict[str, Any], tmp_path: Path) -> None:
    png, page = tmp_path / "out" / "report.png", tmp_path / "report.html"
    r = run_cli(
        "report", "last", "--out", str(png), "--html", str(page), "--json", env=paper["env"]
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["png"] == str(png) and doc["html"] == str(page)
    assert doc["run"]["run_id"] == paper["summary"]["run_id"]
    assert doc["run"]["status"] == "duration" and doc["torn"] == []

    run_dir: Path = paper["dir"]
    ticks, fills = _lines(run_dir / "ticks.jsonl"), _lines(run_dir / "fills.jsonl")
    assert ticks, "the paper run recorded no ticks"
    # the panels, from the figure the command drew
    panels = {p["title"]: p for p in doc["figure"]}
    assert [p["title"] for p in doc["figure"]] == PANELS
    assert panels[PANELS[0]]["lines"]["mark"] == len(ticks)
    buys = sum(1 for f in fills if f["side"] == "buy")
    assert sum(panels[PANELS[0]]["fills"].values()) == len(fills)
    assert panels[PANELS[0]]["fills"].get("buy fills", 0) == buys
    assert panels["Equity"]["lines"]["equity"] == len(ticks) + 1  # + the end state
    assert panels["Drawdown from peak"]["lines"]["drawdown"] == len(ticks) + 1
    assert panels["Position"]["lines"][SYMBOL] == len(ticks) + 1
    rate_lines = panels["Rate budget"]["lines"]
    with_rate = sum(1 for t in ticks if (t.get("rate") or {}).get("weight_used") is not None)
    if with_rate:  # the rate limiter's own figures
        assert rate_lines["weight used"] == with_rate and rate_lines["limit"] == with_rate
    else:  # no limiter: what the exchange reported, from the signed request log
        assert rate_lines["weight used (exchange header)"] > 0

    # the same figure, in process: real matplotlib axes on one shared time axis
    rep = build_report(run_dir)
    axes = rep.figure.axes
    assert [ax.get_title(loc="left") for ax in axes] == PANELS
    assert all(ax.get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    assert [ax.get_ylabel() for ax in axes] == [
        "price (USDT)",
        "contracts",
        "USDT",
        "USDT",
        "request weight",
    ]
    assert axes[-1].get_xlabel() == "time (UTC)"

    # the numbers match the fills journal (and the run's own summary)
    n = doc["numbers"]
    fees = sum(f["fee"] for f in fills)
    realized = sum(f["realized_pnl"] for f in fills)
    makers = sum(1 for f in fills if f["maker"] is True)
    takers = sum(1 for f in fills if f["maker"] is False)
    slips = [f["slippage_bps"] for f in fills if f["slippage_bps"] is not None]
    assert n["fills"]["count"] == len(fills) == paper["summary"]["fills"]
    assert n["fills"]["buys"] == buys and n["fills"]["sells"] == len(fills) - buys
    assert n["fills"]["maker"] == makers == paper["summary"]["maker_fills"]
    assert n["fills"]["taker"] == takers
    assert n["pnl"]["fees"] == pytest.approx(fees) == pytest.approx(paper["summary"]["fees"])
    assert n["pnl"]["realized"] == pytest.approx(realized)
    assert n["pnl"]["funding"] == pytest.approx(paper["summary"]["funding"])
    assert n["pnl"]["net"] == pytest.approx(paper["summary"]["net_pnl"], abs=1e-6)
    if slips:
        assert n["fills"]["slippage"]["mean_bps"] == pytest.approx(sum(slips) / len(slips))
    assert n["rejections"] == paper["summary"]["rejections"]
    equities = [t["equity"] for t in ticks if t.get("equity") is not None]
    equities.append(paper["summary"]["end_equity"])
    worst, peak = 0.0, equities[0]
    for e in equities:
        peak = max(peak, e)
        worst = max(worst, peak - e)
    assert n["drawdown"]["max"] == pytest.approx(worst)
    assert doc["notes"] == []

    # the HTML page embeds that PNG and references nothing outside itself
    html = page.read_text()
    assert external_references(html) == []
    imgs = embedded_images(html)
    assert len(imgs) == 1 and imgs[0].startswith("data:image/png;base64,")
    assert paper["summary"]["run_id"] in html


def test_terminal_table_shows_the_journal_numbers(paper: dict[str, Any]) -> None:
    r = run_cli("report", paper["summary"]["run_id"][:22], env=paper["env"])
    assert r.returncode == 0, r.stderr
    fills = _lines(paper["dir"] / "fills.jsonl")
    buys = sum(1 for f in fills if f["side"] == "buy")
    out = r.stdout
    assert f"{len(fills)} ({buys} buys, {len(fills) - buys} sells)" in out
    assert f"{-sum(f['fee'] for f in fills):+,.4f}" in out
    for heading in ("PnL (USDT)", "Fills", "Orders", "Equity", "maker / taker", "max drawdown"):
        assert heading in out
    assert "duration reached" in out
    assert (paper["dir"] / "report.png").exists()  # the default --out
    assert f"wrote {paper['dir'] / 'report.png'}" in out


def test_runs_lists_the_paper_run(paper: dict[str, Any]) -> None:
    r = run_cli("runs", "--json", env=paper["env"])
    assert r.returncode == 0, r.stderr
    [run] = json.loads(r.stdout)
    s = paper["summary"]
    assert run["run_id"] == s["run_id"] and run["strategy"] == "grid"
    assert run["status"] == "duration" and run["ended"] == "duration reached"
    assert run["pnl"] == pytest.approx(s["net_pnl"]) and run["pnl_final"] is True
    assert run["duration_s"] == pytest.approx(s["runtime_s"])
    r = run_cli("runs", env=paper["env"])
    assert r.returncode == 0 and s["run_id"] in r.stdout and "duration reached" in r.stdout


def test_bad_run_references_are_one_line_exit_2(paper: dict[str, Any], tmp_path: Path) -> None:
    for args, expected in [
        (("report", "nope"), "no run matches 'nope'"),
        (("report", "last", "--out", str(tmp_path)), "is a directory"),
    ]:
        r = run_cli(*args, env=paper["env"])
        assert r.returncode == 2, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and expected in lines[0], r.stderr
        assert "Traceback" not in r.stderr + r.stdout
    empty = {"PERPBOT_HOME": str(tmp_path / "empty")}
    r = run_cli("report", "last", env=empty)
    assert r.returncode == 2 and "no runs yet" in r.stderr
    r = run_cli("runs", env=empty)
    assert r.returncode == 0 and "no runs yet" in r.stdout


def test_running_then_crashed_run_still_reports(live: dict[str, LiveRun], tmp_path: Path) -> None:
    crash = live["crash"]
    env = crash.env
    crash.wait_for("ticks.jsonl", 2)
    run_dir = crash.wait_for("fills.jsonl", 2)
    r = run_cli("runs", "--json", env=env)
    [run] = json.loads(r.stdout)
    assert run["status"] == "running" and run["pnl_final"] is False
    r = run_cli("report", "last", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert any("still going" in n for n in json.loads(r.stdout)["notes"])
    crash.proc.send_signal(signal.SIGKILL)
    crash.proc.wait(timeout=30)
    assert not (run_dir / "summary.json").exists()
    with open(run_dir / "ticks.jsonl", "a") as fh:  # a crash mid-write tears the last line
        fh.write('{"ts": 1.0, "marks": {"BTC/USDT:US')
    r = run_cli("runs", "--json", env=env)
    [run] = json.loads(r.stdout)
    assert run["status"] == "crashed" and run["ended"].startswith("crashed")
    page = tmp_path / "crash.html"
    r = run_cli("report", "last", "--json", "--html", str(page), env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["torn"] == ["ticks.jsonl"]
    assert any(n.startswith("ticks.jsonl: the last line was cut off") for n in doc["notes"])
    assert [p["title"] for p in doc["figure"]] == PANELS
    ticks = [json.loads(x) for x in (run_dir / "ticks.jsonl").read_text().splitlines()[:-1]]
    assert doc["figure"][0]["lines"]["mark"] == len(ticks)
    n = doc["numbers"]
    fills = _lines(run_dir / "fills.jsonl")
    assert n["pnl"]["funding"] is None and n["pnl"]["final"] is False
    assert n["fills"]["count"] == len(fills) >= 2
    assert n["pnl"]["fees"] == pytest.approx(sum(f["fee"] for f in fills))
    assert n["pnl"]["realized"] == pytest.approx(sum(f["realized_pnl"] for f in fills))
    assert doc["figure"][0]["fills"] and sum(doc["figure"][0]["fills"].values()) == len(fills)
    assert external_references(page.read_text()) == []
    assert "cut off mid-write" in page.read_text()


def test_ctrl_c_run_is_listed_as_ctrl_c(live: dict[str, LiveRun]) -> None:
    ctrl_c = live["ctrl-c"]
    env = ctrl_c.env
    ctrl_c.wait_for("ticks.jsonl", 1)
    ctrl_c.proc.send_signal(signal.SIGINT)
    assert ctrl_c.proc.wait(timeout=60) == 130, ctrl_c.stderr()
    [run] = json.loads(run_cli("runs", "--json", env=env).stdout)
    assert run["status"] == "interrupted" and run["ended"] == "Ctrl-C"
    assert run["pnl_final"] is True
    r = run_cli("runs", env=env)
    assert r.returncode == 0 and "Ctrl-C" in r.stdout


def test_killed_run_names_the_kill(live: dict[str, LiveRun]) -> None:
    killed = live["kill"]
    env = killed.env
    killed.wait_for("ticks.jsonl", 1)
    k = run_cli("kill", "--reason", "desk is closing", "--wait", "20", env=env)
    assert k.returncode == 0, k.stderr
    assert killed.proc.wait(timeout=60) == 4, killed.stderr()
    [run] = json.loads(run_cli("runs", "--json", env=env).stdout)
    assert run["status"] == "kill" and "desk is closing" in run["ended"], run
    r = run_cli("report", "last", "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "desk is closing" in doc["run"]["ended"]
    # the moment the run's watchdog acted is a vertical line on every panel
    assert all(p["event_markers"] >= 1 for p in doc["figure"]), doc["figure"]


def test_cli_modules_stay_light() -> None:
    code = (
        "import sys\n"
        "import perpbot.cli.app\n"
        "heavy = ('matplotlib', 'perpbot.report')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
