"""`warm_diffusion_kernels`: each diffusion stage's guided UNet call, at its shapes and default precision."""

from __future__ import annotations

import torch

from a3d_cli.models import warmup
from a3d_cli.models.mvvdm.shape import NUM_FRAMES, NUM_VIEWS


def test_each_guided_call_has_its_stages_batch_and_frames():
    """The calls compile what a run compiles only if they have the run's shapes: CFG batch, views, frames."""
    mv = warmup.GUIDED_CALLS["mvvideo"]("cpu", torch.float32, True)()
    assert mv.sample.shape[:3] == (warmup.CFG_BATCH, NUM_VIEWS, NUM_FRAMES)
    from a3d_cli.models.sv3d.config import SV3DConfig

    (orbit,) = warmup.GUIDED_CALLS["orbit"]("cpu", torch.float32, True)()
    assert orbit.shape[:2] == (warmup.CFG_BATCH, SV3DConfig.tiny().num_frames)
    assert torch.isfinite(mv.sample).all() and torch.isfinite(orbit).all()


def test_warm_runs_the_named_stages_in_order_at_their_precision(monkeypatch):
    seen: list[tuple[str, torch.dtype]] = []

    def recording(name):
        def build(device, dtype, tiny):
            assert tiny and device == "cpu"
            seen.append((name, dtype))
            return lambda: None

        return build

    monkeypatch.setattr(warmup, "GUIDED_CALLS", {name: recording(name) for name in ("orbit", "mvvideo", "sds")})
    done = warmup.warm_diffusion_kernels({"sds": "bf16", "orbit": "fp16"}, "cpu", tiny=True)
    # off CUDA every stage's "auto" precision is fp32 (torch_dtype), and only the named stages run
    assert seen == [("sds", torch.float32), ("orbit", torch.float32)]
    assert [(w.stage, w.dtype) for w in done] == [("sds", "float32"), ("orbit", "float32")]
    assert all(w.seconds >= 0 for w in done)
