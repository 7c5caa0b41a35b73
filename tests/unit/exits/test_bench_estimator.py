"""bench/exit.py's estimator: the control variate estimates the same mean, with less noise."""

from __future__ import annotations

import importlib.util
import math
import random
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "exit.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_exit", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_the_control_takes_out_the_walk_and_keeps_the_mean() -> None:
    # shortfall = 2 bps of impact + what the walk did (sd 3 bps) + 0.3 bps of other noise:
    # over many synthetic samples the controlled mean stays at 2, its error far below the
    # raw one's, the fitted coefficient near 1
    rng = random.Random(5)
    means, raws, errs = [], [], []
    for _ in range(200):
        ds = [rng.gauss(0.0, 3.0) for _ in range(30)]
        ys = [2.0 + d + rng.gauss(0.0, 0.3) for d in ds]
        c = bench.controlled(ys, ds)
        means.append(c.mean)
        raws.append(statistics.fmean(ys))
        errs.append(c.se)
        assert c.beta == pytest.approx(1.0, abs=0.15)
    assert statistics.fmean(means) == pytest.approx(2.0, abs=0.02)
    assert statistics.stdev(means) < statistics.stdev(raws) / 5
    # the printed standard error is the spread the estimate really has
    assert statistics.fmean(errs) == pytest.approx(statistics.stdev(means), rel=0.25)


def test_the_drift_is_the_walk_weighted_by_the_fills_as_a_long_sales_cost() -> None:
    down = math.log(1 - 1e-4)  # the walk 1 bp down after the start
    fills = [(0.5, 0.0), (0.5, down)]  # half filled at the start, half after the move
    assert bench.drift_bps(fills, 0.0, "slices") == pytest.approx(0.5)
    assert bench.drift_bps([], 0.0, "adaptive") == 0.0
    assert bench.drift_bps(fills, 0.0, "passive-then-aggressive") is None


def test_the_ratio_and_its_error_over_paired_seeds() -> None:
    r, se = bench.ratio([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert (r, se) == (pytest.approx(0.5), pytest.approx(0.0))
