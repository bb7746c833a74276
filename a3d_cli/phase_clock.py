"""Seconds per named phase of a computation that may run on a GPU.

CUDA runs asynchronously: a host clock read right after a launch measures the launch, not the work. So
`PhaseClock.mark` drains the device first, and each phase's seconds hold the work it launched. Draining
costs a synchronisation per mark: mark phases, not steps of a hot loop, unless profiling is the point.

Examples:
    >>> clock = PhaseClock("cpu")
    >>> clock.mark("inputs")  # seconds since the clock started (or since `restart`)
    >>> sorted(clock.seconds)
    ['inputs']
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


class PhaseClock:
    """Sums wall seconds per phase name; on CUDA the device is drained at every mark.

    Args:
        device: the device the work runs on (a `torch.device` or its name).
        names: phases to list (at 0) before their first mark, in this order.
    """

    def __init__(self, device: Any, names: Iterable[str] = ()) -> None:
        self.cuda = str(device).startswith("cuda")
        self.device = device
        self.seconds: dict[str, float] = dict.fromkeys(names, 0.0)
        self._last = time.perf_counter()

    def restart(self) -> None:
        """Start the next phase now (time since the last mark is not counted)."""
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        """End phase `name`: add the seconds since the last mark (or restart) to it."""
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


__all__ = ["PhaseClock"]
