"""A short seeded subset of the chaos campaign (bench/chaos.py runs the long one).

Each episode runs real bots against a simulator of its own with injected faults and one
ending (SIGKILL + restart, a kill at a level, SIGTERM); the invariants are checked against
the simulator's state (bench/support/chaos.py): no order open unless a countdown covers it
and someone said so, none left once it lapsed, no duplicate order, the signed log verifies
or names its damage, no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.support.chaos import Campaign

# seeds picked to cover two endings (SIGKILL + restart, kill flatten): < 60 s together
SEEDS = {"sigkill_restart": 6, "kill_flatten": 5}


@pytest.mark.parametrize("ending", sorted(SEEDS))
def test_an_episode_keeps_every_invariant(ending: str, tmp_path: Path) -> None:
    ep = Campaign(tmp_path).episode(SEEDS[ending])  # a simulator of its own, stopped after
    assert ep.ending == ending and ep.faults
    assert ep.violations == [], ep.violations
