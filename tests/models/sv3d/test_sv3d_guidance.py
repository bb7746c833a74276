"""Per-frame CFG scales against the formulas of sgm's Triangle/Linear guiders."""

from __future__ import annotations

import math

import pytest
import torch

from a3d_cli.models.guidance import apply_frame_cfg, cfg_scales, linear_cfg_scales, triangular_cfg_scales


def test_triangular_21_frames() -> None:
    s = triangular_cfg_scales(21, 1.0, 2.5)
    expected = [1.0 + 1.5 * 2 * abs(f / 20 - math.floor(f / 20 + 0.5)) for f in range(21)]
    torch.testing.assert_close(s, torch.tensor(expected))
    assert s[0] == pytest.approx(1.0) and s[20] == pytest.approx(1.0)
    assert int(s.argmax()) == 10 and s[10] == pytest.approx(2.5)
    torch.testing.assert_close(s[:10], s[11:].flip(0))  # symmetric
    torch.testing.assert_close(s[1:11] - s[:10], torch.full((10,), 0.15))  # rises by (max − min)/10


@pytest.mark.parametrize("n", [2, 5, 14, 21])
@pytest.mark.parametrize("lo,hi", [(1.0, 2.5), (0.5, 3.0)])
def test_schedules_equal_the_formulas(n: int, lo: float, hi: float) -> None:
    v = [f / (n - 1) for f in range(n)]
    tri = [lo + (hi - lo) * 2 * abs(x - math.floor(x + 0.5)) for x in v]
    lin = [lo + (hi - lo) * x for x in v]
    torch.testing.assert_close(cfg_scales("triangular", n, lo, hi), torch.tensor(tri))
    torch.testing.assert_close(cfg_scales("linear", n, lo, hi), torch.tensor(lin))
    torch.testing.assert_close(linear_cfg_scales(n, lo, hi), torch.linspace(lo, hi, n))
    with pytest.raises(ValueError):
        cfg_scales("cosine", n)  # type: ignore[arg-type]


def test_apply_frame_cfg_uses_one_scale_per_frame() -> None:
    torch.manual_seed(0)
    u, c = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    s = torch.tensor([1.0, 0.0, 2.0, 3.5])
    out = apply_frame_cfg(u, c, s)
    for f in range(4):
        torch.testing.assert_close(out[:, f], u[:, f] + s[f] * (c[:, f] - u[:, f]))
    torch.testing.assert_close(out[:, 0], c[:, 0])  # scale 1 = the conditional prediction
    with pytest.raises(ValueError):
        apply_frame_cfg(u, c, torch.ones(3))
