"""`GraphedFunction`: refuses what a recording cannot take; on CUDA, replays give the eager results.

The CPU tests check the argument rules; the `gpu` tests check that the recording is used (replays
counted, the output buffer reused), that new input values reach it, and that the SV3D pipeline samples the
same latents with and without the graph, compiled or not.
"""

from __future__ import annotations

import pytest
import torch

from a3d_cli.models.speed.acceleration import accelerate, backend_flags_kept
from a3d_cli.models.speed.cuda_graph import GraphedFunction
from a3d_cli.models.sv3d.cameras import static_orbit
from a3d_cli.models.sv3d.pipeline import SV3DPipeline
from a3d_cli.models.sv3d.testing import tiny_models


def test_recording_needs_an_eager_call_first():
    with pytest.raises(ValueError, match="at least 1"):
        GraphedFunction(torch.sin, eager_calls=0)


def test_cpu_tensors_and_numbers_are_refused():
    fn = GraphedFunction(torch.add)
    with pytest.raises(ValueError, match="CUDA tensors only"):
        fn(torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="CUDA tensors only"):
        fn(torch.ones(2), 1.0)  # type: ignore[arg-type]


def test_pipeline_ignores_the_graph_on_the_cpu_and_when_offloading():
    models = tiny_models("sv3d_p", seed=0)
    assert SV3DPipeline(models, device="cpu", cuda_graph=True).cuda_graph is False
    assert SV3DPipeline(models, device="cuda", offload=True, cuda_graph=True).cuda_graph is False


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
@pytest.mark.parametrize("compile", [False, True])
def test_sv3d_sampling_is_unchanged_by_the_graph(compile: bool):
    """Same latents with and without the graph (the recording runs the same kernels on copies)."""
    models = tiny_models("sv3d_p", seed=0)
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(5))
    try:
        with backend_flags_kept():
            accelerate("cuda", models.hot_networks(), compile=compile, channels_last=True, subpixel_upsampling=True)
            plain = SV3DPipeline(models, device="cuda")(image, static_orbit(), num_steps=4, seed=1)
            graphed_pipe = SV3DPipeline(models, device="cuda", cuda_graph=True)
            graphed = graphed_pipe(image, static_orbit(), num_steps=4, seed=1)
    finally:
        torch._dynamo.reset()
    assert graphed_pipe.graph_replays == 3  # every step after the first
    torch.testing.assert_close(graphed.latents, plain.latents, rtol=1e-5, atol=1e-5)
