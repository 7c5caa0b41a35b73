"""A short seeded subset of the chaos campaign (bench/chaos.py runs the long one).

Each episode runs real bots against a simulator of its own with injected faults and one
ending (SIGKILL + restart, a kill at a level, a corrupt KILL file, ...); the invariants are
checked against the simulator's state (bench/support/chaos.py): no order open unless a
countdown covers it and someone said so, none left once it lapsed, no duplicate order, no
request outside the key's grant reached the exchange, the signed log verifies or names its
damage, no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.support.chaos import Campaign

# seeds picked to cover two endings (SIGKILL + restart, kill flatten)
SEEDS = {"sigkill_restart": 14, "kill_flatten": 23}
# an overreaching strategy under a narrow grant, then a KILL file over 1 MiB (fails closed)
GRANT_SENTINEL_SEED = 36


@pytest.mark.parametrize("ending", sorted(SEEDS))
def test_an_episode_keeps_every_invariant(ending: str, tmp_path: Path) -> None:
    ep = Campaign(tmp_path).episode(SEEDS[ending])  # a simulator of its own, stopped after
    assert ep.ending == ending and ep.faults
    assert ep.violations == [], ep.violations


def test_an_overreaching_strategy_sends_nothing_outside_its_grant(tmp_path: Path) -> None:
    ep = Campaign(tmp_path).episode(GRANT_SENTINEL_SEED)
    assert ep.ending == "sentinel_corrupt"
    assert "grant" in ep.faults and "sentinel_oversize" in ep.faults
    assert ep.violations == [], ep.violations
