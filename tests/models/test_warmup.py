"""`warm_diffusion_kernels`: each diffusion stage's guided UNet call, with the shapes the stage's own code gives it.

The kernels Triton compiles depend on the call's shapes, so the warm-up's calls are compared with the calls the
real pipelines make (tiny networks: the same code paths, the same batch, views and frames).
"""

from __future__ import annotations

import pytest
import torch

from a3d_cli.models import warmup
from a3d_cli.models.mvvdm.shape import NUM_FRAMES, RESOLUTION


def _recording(monkeypatch, cls) -> list[tuple]:
    """Record the tensor shapes of every call of `cls.forward`."""
    calls: list[tuple] = []
    forward = cls.forward

    def spy(self, *args, **kwargs):
        calls.append(tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor) and a.ndim > 1))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(cls, "forward", spy)
    return calls


@torch.no_grad()
def test_the_mvvdm_call_is_the_one_mvvideo_and_sds_make(monkeypatch):
    from a3d_cli.models.freeinit import FreeInitConfig
    from a3d_cli.models.mvvdm import MVVDMUNet, generate_mvvideo, tiny_components
    from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser
    from a3d_cli.models.mvvdm.sampling import SamplingConfig
    from a3d_cli.models.sds import SdsCondition
    from a3d_cli.render.cameras import mvvdm_cameras

    calls = _recording(monkeypatch, MVVDMUNet)
    warmup.GUIDED_CALLS["mvvideo"]("cpu", torch.float32, True)()
    comp = tiny_components(0)
    views = torch.rand(4, 3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(0))
    cfg = SamplingConfig(steps=1, guidance_scale=7.5, num_frames=NUM_FRAMES, freeinit=FreeInitConfig(iters=0))
    generate_mvvideo(comp, views, mvvdm_cameras().c2w, "a fox", config=cfg, generator=torch.Generator())
    den = MvvdmDenoiser(comp)
    noisy = torch.randn(4, NUM_FRAMES, *den.latent_shape(RESOLUTION, RESOLUTION))
    den.predict_noise(noisy, 100, SdsCondition("a fox", "", views, mvvdm_cameras()))
    warm, mvvideo, sds = calls
    assert warm == mvvideo == sds and warm[0][:3] == (warmup.CFG_BATCH, 4, NUM_FRAMES)


@torch.no_grad()
def test_the_sv3d_call_is_the_one_orbit_makes(monkeypatch):
    from a3d_cli.models.guidance import triangular_cfg_scales
    from a3d_cli.models.sv3d.cameras import static_orbit
    from a3d_cli.models.sv3d.pipeline import SV3DPipeline
    from a3d_cli.models.sv3d.testing import tiny_models
    from a3d_cli.models.sv3d.unet import SV3DUNet

    calls = _recording(monkeypatch, SV3DUNet)
    warmup.GUIDED_CALLS["orbit"]("cpu", torch.float32, True)()
    models = tiny_models("sv3d_p", seed=0)
    pipe = SV3DPipeline(models)
    size = models.config.image_size
    cond = pipe.encode_image(torch.rand(3, size, size), 1e-5, torch.Generator().manual_seed(3))
    frames = models.config.num_frames
    pipe.denoise(cond, pipe.camera_vector(static_orbit(), 1e-5), triangular_cfg_scales(frames), 1, torch.Generator())
    warm, orbit = calls
    assert warm == orbit and warm[0][:2] == (warmup.CFG_BATCH, frames)


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


def test_an_unknown_stage_is_a_programming_error():
    with pytest.raises(KeyError):
        warmup.warm_diffusion_kernels({"lift": "fp16"}, "cpu", tiny=True)
