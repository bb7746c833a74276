"""`mesh.rigidity.offset_pct_of_radius`: the percentages mesh-animate reports (displacement, skin error)."""

from __future__ import annotations

import numpy as np
import pytest

from a3d_cli.mesh.rigidity import offset_pct_of_radius


def test_lengths_in_percent_of_the_radius_mean_then_max():
    offsets = np.zeros((2, 3, 3))  # [K, V, 3]
    offsets[0, 0] = [0.3, 0.4, 0.0]  # length 0.5
    offsets[1, 2] = [0.0, 0.0, -0.2]  # length 0.2
    mean, peak = offset_pct_of_radius(offsets, radius=2.0)
    assert mean == pytest.approx(100.0 * 0.7 / 6 / 2.0) and peak == pytest.approx(25.0)


def test_scaling_offsets_and_radius_together_changes_nothing():
    offsets = np.random.default_rng(0).normal(size=(4, 5, 3))
    assert offset_pct_of_radius(offsets, 0.9) == pytest.approx(offset_pct_of_radius(offsets * 7.0, 6.3))
