"""`GraphedFunction`: refuses what a recording cannot take; on CUDA, replays give the eager results.

The CPU tests check the argument rules; the `gpu` test checks that the recording is used (replays
counted, the output buffer reused) and that new input values reach it. The MV-VDM sampler's use of it is
tested in tests/models/mvvdm/test_mvvdm_sampling.py.
"""

from __future__ import annotations

import pytest
import torch

from a3d_cli.models.speed.cuda_graph import GraphedFunction


def test_recording_needs_an_eager_call_first():
    with pytest.raises(ValueError, match="at least 1"):
        GraphedFunction(torch.sin, eager_calls=0)


def test_cpu_tensors_and_numbers_are_refused():
    fn = GraphedFunction(torch.add)
    with pytest.raises(ValueError, match="CUDA tensors only"):
        fn(torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="CUDA tensors only"):
        fn(torch.ones(2), 1.0)  # type: ignore[arg-type]


@pytest.mark.gpu
def test_replays_follow_new_inputs_and_reuse_the_output_buffer():
    weight = torch.randn(8, 8, device="cuda")

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ weight) * t

    graphed = GraphedFunction(fn, eager_calls=1)
    xs = [torch.randn(4, 8, device="cuda") for _ in range(4)]
    ts = [torch.tensor(float(i + 1), device="cuda") for i in range(4)]
    outs = [graphed(x, t).clone() for x, t in zip(xs, ts, strict=True)]
    assert graphed.replays == 3  # the first call ran eagerly
    for out, x, t in zip(outs, xs, ts, strict=True):
        torch.testing.assert_close(out, fn(x, t))
    assert graphed(xs[0], ts[0]).data_ptr() == graphed(xs[1], ts[1]).data_ptr()
    with pytest.raises(ValueError, match="recorded with"):
        graphed(torch.randn(5, 8, device="cuda"), ts[0])


@pytest.mark.gpu
def test_a_failed_recording_keeps_the_callers_error_and_records_on_the_next_call():
    """A recording that fails (e.g. out of memory, here simulated inside the capture) ends its capture, raises the
    function's own error, and leaves the object able to record on the next call."""
    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:  # the first recording
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.sin(x) * 2

    graphed = GraphedFunction(fn, eager_calls=1)
    x = torch.linspace(0, 1, 16, device="cuda")
    torch.testing.assert_close(graphed(x), torch.sin(x) * 2)  # eager
    with pytest.raises(torch.OutOfMemoryError, match="simulated"):
        graphed(x)
    assert graphed.replays == 0
    torch.testing.assert_close(graphed(x + 1).clone(), torch.sin(x + 1) * 2)  # recorded this time
    torch.testing.assert_close(graphed(x + 2).clone(), torch.sin(x + 2) * 2)
    assert graphed.replays == 2
