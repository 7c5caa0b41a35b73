"""The wall-clock tick loop wakes at each market step's own time, not on a free period.

A step's fills are stamped with the step's time and streamed when ``Engine.sync`` computes
them, so a loop out of phase with the step grid delivered them up to a step late.
"""

from __future__ import annotations

import pytest

from perpbot.sim.config import SimConfig
from perpbot.sim.server import SimServer


def server(speed: float = 1.0) -> SimServer:
    return SimServer(SimConfig(seed=3, clock="wall", clock_speed=speed))


def test_sleeps_until_the_next_step_is_due() -> None:
    sim = server()
    now = sim.engine.clock.now_ms()
    sim.engine.next_step_ms = now + 50
    # now_ms moves while the test runs: due within (0, 51 ms], never a whole free period
    assert 0.0 < sim._until_next_step() <= 0.051


def test_a_step_already_due_runs_at_once_and_a_far_one_waits_one_period() -> None:
    sim = server()
    sim.engine.next_step_ms = sim.engine.clock.now_ms() - 500
    assert sim._until_next_step() == pytest.approx(0.001)
    sim.engine.next_step_ms = sim.engine.clock.now_ms() + 60_000
    assert sim._until_next_step() == sim.cfg.market.tick_ms / 1000.0


def test_a_fast_clock_divides_the_wait_by_its_speed() -> None:
    sim = server(speed=100.0)
    sim.engine.next_step_ms = sim.engine.clock.now_ms() + 1_000
    assert sim._until_next_step() <= 1_001 / 1000.0 / 100.0
