"""a3d_cli.phase_clock: seconds per phase, summed over marks, restart skipping the gap (on a fake clock)."""

from __future__ import annotations

import itertools

from a3d_cli import phase_clock
from a3d_cli.phase_clock import PhaseClock


def test_marks_sum_per_phase_and_restart_skips_the_gap(monkeypatch):
    ticks = itertools.chain([0.0, 2.0, 10.0, 11.0, 14.0, 15.0])
    monkeypatch.setattr(phase_clock.time, "perf_counter", lambda: next(ticks))
    clock = PhaseClock("cpu", ("a", "b"))  # starts at 0
    assert clock.seconds == {"a": 0.0, "b": 0.0}
    clock.mark("a")  # 2
    clock.restart()  # 10: the 8 s in between count nowhere
    clock.mark("b")  # 11
    clock.mark("a")  # 14: a second mark of a phase adds to it
    clock.mark("c")  # 15: an unlisted phase joins at its first mark
    assert clock.seconds == {"a": 5.0, "b": 1.0, "c": 1.0}
