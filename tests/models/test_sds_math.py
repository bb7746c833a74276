"""4D-SDS math: each formula against its definition, and an oracle denoiser that must pull a video to its target."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from a3d_cli.gaussians.motion_refine import RefineSettings
from a3d_cli.models.sds import (
    SdsCondition,
    SdsDenoiser,
    cfg_std_rescale,
    classifier_free_guidance,
    noise_moving_frames,
    predict_x0,
    sample_timestep,
    sds_loss,
    sds_target,
    timestep_range,
    x0_reconstruction_loss,
)
from a3d_cli.render.cameras import orbit_cameras

REFERENCE = RefineSettings(prompt="a dog runs")
"""The reference's SDS settings (guidance scale, std rescale, timestep range) are `RefineSettings`' defaults."""


def _schedule() -> torch.Tensor:
    """The MV-VDM training schedule: linear β 0.00085…0.012 over 1000 steps."""
    betas = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


class OracleDenoiser:
    """Stand-in whose x0 prediction is a known target video: ε = (z_t - √ᾱ x0*) / √(1-ᾱ).

    `encode` is a fixed differentiable map (4×4 average pooling then a 3→4 channel mix), so gradients
    reach the images like a VAE encoder's would. `uncond_offset` shifts the unconditional x0 prediction,
    which makes CFG matter.
    """

    def __init__(self, target_latents: torch.Tensor, uncond_offset: float = 0.0) -> None:
        self.alphas_cumprod = _schedule()
        self.target = target_latents  # [V, F, C, h, w]
        self.uncond_offset = uncond_offset
        self.mix = torch.tensor([[0.5, 0.3, 0.2], [-0.4, 0.6, 0.1], [0.2, -0.3, 0.7], [0.3, 0.3, 0.3]])
        self.calls: list[tuple[int, str]] = []

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return 4, height // 4, width // 4

    def encode(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        z = torch.einsum("oc,bchw->bohw", self.mix, F.avg_pool2d(images * 2 - 1, 4))
        return z if noise is None else z + 0.0 * noise

    def predict_noise(self, noisy: torch.Tensor, t: int, cond: SdsCondition) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append((t, cond.prompt))
        a = self.alphas_cumprod[t]
        eps_c = (noisy - a.sqrt() * self.target) / (1 - a).sqrt()
        eps_u = (noisy - a.sqrt() * (self.target + self.uncond_offset)) / (1 - a).sqrt()
        return eps_c, eps_u


def _cond(v: int = 4) -> SdsCondition:
    return SdsCondition(
        prompt="a dog runs",
        negative_prompt="",
        first_frames=torch.zeros(v, 3, 16, 16),
        cameras=orbit_cameras([15.0] * v, [90.0 * i for i in range(v)]),
    )


def test_oracle_meets_the_protocol():
    assert isinstance(OracleDenoiser(torch.zeros(1)), SdsDenoiser)


def test_timestep_range_is_the_reference_one():
    assert timestep_range(1000, REFERENCE.min_step_percent, REFERENCE.max_step_percent) == (20, 200)
    assert timestep_range(1000, 0.0, 1.0) == (0, 999)
    with pytest.raises(ValueError):
        timestep_range(1000, 0.3, 0.2)
    g = torch.Generator().manual_seed(0)
    draws = [sample_timestep(20, 200, g) for _ in range(2000)]
    assert min(draws) == 20 and max(draws) == 200  # both ends included
    assert abs(sum(draws) / len(draws) - 110) < 5


def test_noise_touches_frames_1_to_15_only():
    ac = _schedule()
    z = torch.randn(4, 16, 4, 6, 6)
    eps = torch.randn(4, 15, 4, 6, 6)
    t = 150
    noisy = noise_moving_frames(z, eps, t, ac)
    assert torch.equal(noisy[:, 0], z[:, 0])
    a = ac[t].double()
    expected = a.sqrt() * z[:, 1:].double() + (1 - a).sqrt() * eps.double()
    torch.testing.assert_close(noisy[:, 1:].double(), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="frames 1"):
        noise_moving_frames(z, torch.randn(4, 16, 4, 6, 6), t, ac)


def test_cfg_is_the_reference_form():
    ec, eu = torch.randn(3, 5), torch.randn(3, 5)
    torch.testing.assert_close(classifier_free_guidance(ec, eu, 5.0), 6 * ec - 5 * eu)
    torch.testing.assert_close(classifier_free_guidance(ec, eu, 0.0), ec)


def test_predict_x0_inverts_the_noising():
    ac = _schedule()
    z = torch.randn(2, 16, 4, 4, 4)
    eps = torch.randn(2, 15, 4, 4, 4)
    noisy = noise_moving_frames(z, eps, 180, ac)
    x0 = predict_x0(torch.cat([torch.zeros_like(eps[:, :1]), eps], 1), noisy, 180, ac)
    torch.testing.assert_close(x0[:, 1:], z[:, 1:], rtol=1e-4, atol=1e-4)


def test_std_rescale_formula():
    g = torch.Generator().manual_seed(1)
    guided = torch.randn(4, 16, 4, 5, 5, generator=g) * 3
    cond = torch.randn(4, 16, 4, 5, 5, generator=g)
    guided[:, 0] = 100.0  # frame 0 must not enter the stds
    r = 0.25
    out = cfg_std_rescale(guided, cond, r)
    factor = (cond[:, 1:].std() + 1e-8) / (guided[:, 1:].std() + 1e-8)
    torch.testing.assert_close(out, r * factor * guided + (1 - r) * guided)
    torch.testing.assert_close(cfg_std_rescale(guided, cond, 0.0), guided)
    # r = 1 gives the conditional estimate's spread exactly
    torch.testing.assert_close(cfg_std_rescale(guided, cond, 1.0)[:, 1:].std(), cond[:, 1:].std(), rtol=1e-5, atol=1e-6)


def test_loss_normalisation_and_gradient():
    v, f = 4, 16
    z = torch.randn(v, f, 4, 3, 3, requires_grad=True)
    target = torch.randn(v, f, 4, 3, 3)
    loss = x0_reconstruction_loss(z, target)
    expected = 0.5 * (z[:, 1:] - target[:, 1:]).square().sum() / (v * f) * f / (f - 1)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.all(z.grad[:, 0] == 0)  # frame 0 is the condition, never pulled
    torch.testing.assert_close(z.grad[:, 1:], (z[:, 1:] - target[:, 1:]).detach() / (v * (f - 1)))


def test_target_uses_guidance_and_rescale_against_hand_computation():
    g = torch.Generator().manual_seed(2)
    v, f = 4, 16
    target_video = torch.randn(v, f, 4, 4, 4, generator=g)
    den = OracleDenoiser(target_video, uncond_offset=0.7)
    z = torch.randn(v, f, 4, 4, 4, generator=g)
    noise = torch.randn(v, f - 1, 4, 4, 4, generator=g)
    out = sds_target(den, z, _cond(), t=100, noise=noise, guidance_scale=5.0, std_rescale=0.25)
    # With the oracle, x0(ε_c) = x0*, x0(ε_u) = x0* + δ, so x0(ε̂) = x0* - 5 δ; then the std rescale.
    guided = target_video - 5 * 0.7
    factor = (target_video[:, 1:].std() + 1e-8) / (guided[:, 1:].std() + 1e-8)
    expected = 0.25 * factor * guided + 0.75 * guided
    torch.testing.assert_close(out.x0[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.x0[:, 0], z[:, 0])
    assert den.calls == [(100, "a dog runs")]


def test_oracle_pulls_a_video_toward_its_target():
    """Gradient descent on SDS alone moves free-parameter images toward the oracle's target video."""
    g = torch.Generator().manual_seed(3)
    v, f, size = 4, 16, 16
    target_images = torch.rand(v, f, 3, size, size, generator=g)
    den = OracleDenoiser(torch.zeros(1))
    with torch.no_grad():
        den.target = den.encode(target_images.flatten(0, 1)).unflatten(0, (v, f))
    logits = torch.zeros(v, f, 3, size, size, requires_grad=True)
    start_frame0 = torch.sigmoid(logits[:, 0]).detach().clone()
    opt = torch.optim.Adam([logits], lr=0.05)
    losses, distances = [], []
    lo, hi = timestep_range(1000, REFERENCE.min_step_percent, REFERENCE.max_step_percent)
    for _ in range(60):
        images = torch.sigmoid(logits)  # [V, F, 3, H, W]
        z = den.encode(images.flatten(0, 1)).unflatten(0, (v, f))  # [V, F, 4, h, w]
        t = sample_timestep(lo, hi, g)
        eps = torch.randn(v, f - 1, *z.shape[2:], generator=g)
        loss, _ = sds_loss(den, z, _cond(v), t, eps, REFERENCE.guidance_scale, REFERENCE.std_rescale)
        opt.zero_grad()
        (0.01 * loss).backward()  # λ_sds; Adam is scale-free, so the weight only matters next to other terms
        opt.step()
        losses.append(float(loss.detach()))
        distances.append(float((z[:, 1:] - den.target[:, 1:]).detach().square().mean()))
    assert sum(losses[-10:]) < 0.2 * sum(losses[:10])
    assert sum(distances[-10:]) < 0.2 * sum(distances[:10])
    # "monotonically on average": every block of 10 steps has a lower mean than the block before
    blocks = [sum(losses[i : i + 10]) for i in range(0, 60, 10)]
    assert all(b < a for a, b in zip(blocks, blocks[1:], strict=False))
    # frame 0 is the condition: SDS never moves it
    torch.testing.assert_close(torch.sigmoid(logits[:, 0]).detach(), start_frame0)


def test_rescale_does_not_change_a_pure_oracle():
    """When ε_c = ε_u (no guidance signal), x0 is the target whatever s and r are."""
    g = torch.Generator().manual_seed(4)
    target_video = torch.randn(4, 16, 4, 2, 2, generator=g)
    den = OracleDenoiser(target_video)
    z = torch.randn_like(target_video)
    for s, r in [(0.0, 0.0), (5.0, 0.25), (50.0, 1.0)]:
        out = sds_target(
            den,
            z,
            _cond(),
            t=int(sample_timestep(20, 200, g)),
            noise=torch.randn(4, 15, 4, 2, 2, generator=g),
            guidance_scale=s,
            std_rescale=r,
        )
        torch.testing.assert_close(out.x0[:, 1:], target_video[:, 1:], rtol=1e-3, atol=1e-3)
    assert not math.isnan(float(out.x0.sum()))
