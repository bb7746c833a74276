"""benchmarks/bench_orbit_ops.py: the op formulations it times compute what they replace (CPU, float64)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_orbit_ops  # noqa: E402


@pytest.mark.parametrize("method", ["unfold", "shifted"])
@pytest.mark.parametrize("frames", [1, 2, 5])
def test_temporal_conv_as_gemms_equals_conv3d(method: str, frames: int) -> None:
    g = torch.Generator().manual_seed(frames)
    b, c, o, h, w = 2, 6, 7, 3, 4
    x = torch.randn(b, c, frames, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(o, c, 3, 1, 1, generator=g, dtype=torch.float64)
    bias = torch.randn(o, generator=g, dtype=torch.float64)
    ref = F.conv3d(x, weight, bias, padding=(1, 0, 0)).permute(0, 2, 3, 4, 1).reshape(b, frames, h * w, o)
    frames_last = x.permute(0, 2, 3, 4, 1).reshape(b, frames, h * w, c).contiguous()
    out = bench_orbit_ops.temporal_conv_frames_last(frames_last, weight, bias, method)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_refuses_to_run_without_cuda() -> None:
    with pytest.raises(SystemExit, match="GPU machine"):
        bench_orbit_ops.main(["--sections", "ceil"])
