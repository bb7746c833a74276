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


@pytest.mark.parametrize(
    ("line", "expected"),
    [("1755, 690.12", (1755.0, 690.12)), (" 1980, 401.5\n", (1980.0, 401.5)), ("[N/A], [N/A]", None), ("", None)],
)
def test_clock_line_parsed_or_none(line: str, expected: object) -> None:
    assert bench_orbit_ops.parse_clock_line(line) == expected


def test_clock_sampler_keeps_readings_after_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [f"{1980 - 10 * i}, {600 + i}" for i in range(7)] + ["[N/A], [N/A]"]

    class FakeSmi:
        def __init__(self, command: list[str], **kwargs: object) -> None:
            assert command[: len(bench_orbit_ops.CLOCK_QUERY)] == bench_orbit_ops.CLOCK_QUERY

        def terminate(self) -> None:
            pass

        def communicate(self, timeout: float) -> tuple[str, None]:
            return "\n".join(lines) + "\n", None

    monkeypatch.setattr(bench_orbit_ops.subprocess, "Popen", FakeSmi)
    with bench_orbit_ops.ClockSampler() as sampler:
        pass
    settle = bench_orbit_ops.SETTLE_SAMPLES
    assert sampler.samples == [(1980.0 - 10 * i, 600.0 + i) for i in range(settle, 7)]


def test_clock_sampler_empty_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(bench_orbit_ops.subprocess, "Popen", missing)
    with bench_orbit_ops.ClockSampler() as sampler:
        pass
    assert sampler.samples == []
