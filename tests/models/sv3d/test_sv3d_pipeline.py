"""The SV3D pipeline on tiny random weights: determinism, shapes, decode chunking, input checks."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.models.guidance import linear_cfg_scales
from a3d_cli.models.sv3d.cameras import dynamic_orbit, static_orbit
from a3d_cli.models.sv3d.pipeline import SV3DPipeline
from a3d_cli.models.sv3d.testing import tiny_models


@pytest.fixture(scope="module")
def pipe_p() -> SV3DPipeline:
    return SV3DPipeline(tiny_models("sv3d_p", seed=0))


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(5))


def test_same_seed_same_frames_other_seed_other_frames(pipe_p: SV3DPipeline, image: torch.Tensor) -> None:
    a = pipe_p(image, static_orbit(), num_steps=2, seed=1, replace_input_frame=False)
    b = pipe_p(image, static_orbit(), num_steps=2, seed=1, replace_input_frame=False)
    c = pipe_p(image, static_orbit(), num_steps=2, seed=2, replace_input_frame=False)
    assert a.frames.shape == (21, 3, 16, 16) and a.latents.shape == (21, 4, 8, 8)
    assert torch.equal(a.frames, b.frames)
    assert not torch.equal(a.frames, c.frames)
    assert a.frames.min() >= 0 and a.frames.max() <= 1
    assert set(a.seconds) == {"encode", "sample", "decode"}


def test_cameras_and_guidance_change_the_sample(pipe_p: SV3DPipeline, image: torch.Tensor) -> None:
    base = pipe_p(image, static_orbit(10.0), num_steps=2, seed=0, replace_input_frame=False).latents
    other_cam = pipe_p(image, dynamic_orbit(3), num_steps=2, seed=0, replace_input_frame=False).latents
    other_cfg = pipe_p(
        image, static_orbit(10.0), num_steps=2, seed=0, cfg=linear_cfg_scales(21), replace_input_frame=False
    ).latents
    assert not torch.allclose(base, other_cam) and not torch.allclose(base, other_cfg)


def test_decode_chunk_changes_memory_not_frames(pipe_p: SV3DPipeline) -> None:
    latents = torch.randn(21, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    whole = pipe_p.decode(latents, decode_chunk=21)
    torch.testing.assert_close(pipe_p.decode(latents, decode_chunk=4), whole, rtol=0, atol=1e-6)


def test_input_frame_is_replaced_like_the_reference(pipe_p: SV3DPipeline, image: torch.Tensor) -> None:
    out = pipe_p(image, static_orbit(), num_steps=1, seed=0)
    assert torch.equal(out.frames[-1], image)


def test_sv3d_u_needs_no_orbit(image: torch.Tensor) -> None:
    pipe = SV3DPipeline(tiny_models("sv3d_u", seed=0))
    out = pipe(image, None, num_steps=1, seed=0)
    assert out.frames.shape == (21, 3, 16, 16)
    assert pipe.camera_vector(None, 1e-5).shape == (1, 21, 256)


def test_check_inputs_names_the_problem(pipe_p: SV3DPipeline, image: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="image must be"):
        pipe_p(torch.rand(3, 32, 32), static_orbit(), num_steps=1)
    with pytest.raises(ValueError, match="needs an orbit"):
        pipe_p(image, None, num_steps=1)
    with pytest.raises(ValueError, match="cfg scales"):
        pipe_p(image, static_orbit(), num_steps=1, cfg=torch.ones(20))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_on_cuda_with_and_without_offload(image: torch.Tensor, dtype: torch.dtype) -> None:
    models = tiny_models("sv3d_p", seed=0)
    models.unet.to(dtype)
    models.image_encoder.to(dtype)
    plain = SV3DPipeline(models, device="cuda")(image, static_orbit(), num_steps=2, seed=0)
    assert torch.isfinite(plain.frames).all() and set(plain.peak_bytes) == {"encode", "sample", "decode"}
    offloaded = SV3DPipeline(models, device="cuda", offload=True)(image, static_orbit(), num_steps=2, seed=0)
    assert next(models.unet.parameters()).device.type == "cpu"  # moved back after use
    torch.testing.assert_close(offloaded.frames, plain.frames)
