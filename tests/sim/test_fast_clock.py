"""A fast wall clock (clock_speed) runs the market N times faster; signatures stay on the wall."""

from __future__ import annotations

import time

from perpbot.sim.clock import SimClock, wall_ms


def test_clock_speed_100_runs_100_times_faster() -> None:
    clock = SimClock("wall", None, 100.0)
    # the wall interval is read inside the simulator's one, so that a pause of this thread
    # between two reads can only widen the simulator's (the bound needs no slack for it)
    t0 = clock.now_ms()
    w0 = wall_ms()
    time.sleep(0.05)
    wall_elapsed = wall_ms() - w0
    sim_elapsed = clock.now_ms() - t0
    assert sim_elapsed >= 90 * wall_elapsed - 100
    assert abs(clock.auth_now_ms() - wall_ms()) < 50  # clients sign with the wall clock
