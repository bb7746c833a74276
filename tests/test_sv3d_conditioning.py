"""SV3D conditioning against the formulas: the per-frame vector, the UNet's use of it, CLIP's input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from a3d_cli.models.sv3d.cameras import static_orbit, to_sv3d_angles
from a3d_cli.models.sv3d.conditioning import CLIP_MEAN, CLIP_STD, clip_input, resize_antialiased, sinusoid, sv3d_vector
from a3d_cli.models.sv3d.config import SV3DConfig
from a3d_cli.models.sv3d.unet import SV3DUNet, use_reference_norm_eps


def ref_embedding(x: float, dim: int) -> np.ndarray:
    """sgm timestep_embedding written out: [cos(x·ω_i), sin(x·ω_i)], ω_i = exp(−ln(10000)·i/(dim/2))."""
    half = dim // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
    return np.concatenate([np.cos(x * freqs), np.sin(x * freqs)])


def test_vector_p_is_cos_first_sinusoids_in_config_order() -> None:
    elev = [float(e) for e in np.linspace(-20, 40, 21)]
    orbit = static_orbit(elev)
    polar, azim = to_sv3d_angles(orbit)
    vec = sv3d_vector(torch.full((1, 21), 1e-5), polar[None], azim[None])  # [1, 21, 1280]
    assert vec.shape == (1, 21, 1280)
    for f in (0, 7, 20):
        pol = math.radians(90.0 - elev[f])  # polar = 90° − elevation, radians
        az = math.radians((360.0 / 21 * (f + 1)) % 360.0)  # reference azimuths, last frame = 0
        expected = np.concatenate([ref_embedding(1e-5, 256), ref_embedding(pol, 512), ref_embedding(az, 512)])
        np.testing.assert_allclose(vec[0, f].numpy(), expected, atol=2e-5)
    # cos first: at angle 0 the first half is ones, the second half zeros
    zero = sinusoid(torch.zeros(1), 512)[0]
    assert torch.all(zero[:256] == 1) and torch.all(zero[256:] == 0)
    # the last frame is the input view at azimuth 0
    assert torch.all(vec[0, 20, 768:1024] == 1) and torch.all(vec[0, 20, 1024:] == 0)


def test_vector_u_is_cond_aug_only() -> None:
    vec = sv3d_vector(torch.full((2, 21), 0.02))
    assert vec.shape == (2, 21, 256)
    np.testing.assert_allclose(vec[1, 3].numpy(), ref_embedding(0.02, 256), atol=1e-6)
    with pytest.raises(ValueError, match="both"):
        sv3d_vector(torch.zeros(1, 21), torch.zeros(1, 21), None)
    with pytest.raises(ValueError, match=r"\[B, F\]"):
        sv3d_vector(torch.zeros(1, 21), torch.zeros(1, 20), torch.zeros(1, 20))


@torch.no_grad()
def test_unet_matches_diffusers_svd_forward_for_a_per_video_vector() -> None:
    """Same modules as diffusers' SVD UNet; with the vector constant over frames the outputs agree."""
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    kw = SV3DConfig.tiny().unet.diffusers_kwargs("sv3d_u", 21, 8)
    ours = SV3DUNet(**kw).eval()
    stock = UNetSpatioTemporalConditionModel(**kw).eval()
    use_reference_norm_eps(stock)  # the one numerical difference, pinned in test_norm_eps.py
    stock.load_state_dict(ours.state_dict())
    x, ctx, aug = torch.randn(2, 5, 8, 8, 8), torch.randn(2, 1, 32), torch.tensor([0.3, 1e-5])
    vec = sinusoid(aug, 256)[:, None].expand(2, 5, 256)  # [B, F, 256]
    a = ours(x, torch.tensor(0.7), ctx, vec).sample
    b = stock(x, torch.tensor(0.7), ctx, aug[:, None]).sample
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_unet_adds_each_frames_vector_to_that_frames_time_embedding() -> None:
    torch.manual_seed(0)
    unet = SV3DUNet(**SV3DConfig.tiny().unet.diffusers_kwargs("sv3d_p", 3, 8)).eval()
    seen: list[torch.Tensor] = []
    hook = (
        unet.down_blocks[0]
        .resnets[0]
        .register_forward_pre_hook(
            lambda mod, args, kwargs: seen.append(kwargs.get("temb", args[1] if len(args) > 1 else None)),
            with_kwargs=True,
        )
    )
    b, f = 2, 3
    vec = torch.randn(b, f, 1280)
    t = torch.tensor(-0.4)
    unet(torch.randn(b, f, 8, 8, 8), t, torch.randn(b, 1, 32), vec)
    hook.remove()
    temb = seen[0]  # [B·F, E], rows ordered (batch, frame) like the flattened sample
    time_part = unet.time_embedding(unet.time_proj(t.reshape(1)))  # [1, E]
    for i in range(b):
        for j in range(f):
            expected = time_part[0] + unet.add_embedding(vec[i, j][None])[0]
            torch.testing.assert_close(temb[i * f + j], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="added_cond"):
        unet(torch.randn(1, 3, 8, 8, 8), t, torch.randn(1, 1, 32), torch.randn(1, 3, 256))


def test_resize_matches_the_kornia_recipe_diffusers_uses() -> None:
    ref = pytest.importorskip("diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 576, 576) * 2 - 1
    torch.testing.assert_close(resize_antialiased(x, (224, 224)), ref._resize_with_antialiasing(x, (224, 224)))


def test_clip_input_normalises_like_openai_clip() -> None:
    grey = torch.zeros(1, 3, 64, 64)  # 0 in [-1, 1] is 0.5 in [0, 1]
    out = clip_input(grey, 28)
    assert out.shape == (1, 3, 28, 28)
    for c in range(3):
        assert out[0, c].mean().item() == pytest.approx((0.5 - CLIP_MEAN[c]) / CLIP_STD[c], abs=1e-5)
