"""SV3D's EDM Euler sampler against formulas and an analytic denoiser.

Data x0 ~ N(μ, s²I) has the ideal denoiser D(x, σ) = μ + s²/(s²+σ²)·(x − μ), and the probability-flow
ODE dx/dσ = (x − D)/σ keeps (x − μ)/√(s²+σ²) constant, so a sample started at x_T (σ_max) must end at
μ + (x_T − μ)·s/√(s²+σ_max²). The analytic model below sees exactly what the UNet sees (the noisy latent
scaled by c_in, and c_noise) and answers in v-prediction, so the test also covers the scalings.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from a3d_cli.models.sv3d.cameras import static_orbit
from a3d_cli.models.sv3d.pipeline import ImageConditioning, SV3DPipeline
from a3d_cli.models.sv3d.scheduler import SIGMA_MAX, SIGMA_MIN, edm_sigmas, make_scheduler
from a3d_cli.models.sv3d.testing import tiny_models


class AnalyticVModel(nn.Module):
    """Ideal v-prediction for Gaussian data N(mu, s²), with SV3D's input scaling (c_in, c_noise)."""

    def __init__(self, mu: Tensor, s: float) -> None:
        super().__init__()
        self.mu, self.s = mu.double(), s
        self.calls = 0
        self.dtype = torch.float32

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        added_cond: Tensor,
        return_dict: bool = True,
    ):  # noqa: ANN201
        self.calls += 1
        c = sample.shape[2] // 2
        sigma = torch.exp(4.0 * torch.as_tensor(timestep, dtype=torch.float64))  # c_noise = 0.25 ln σ
        x = sample[:, :, :c].double() * torch.sqrt(sigma**2 + 1)  # undo c_in
        s2 = self.s**2
        denoised = self.mu + s2 / (s2 + sigma**2) * (x - self.mu)
        c_skip, c_out = 1 / (sigma**2 + 1), -sigma / torch.sqrt(sigma**2 + 1)
        v = ((denoised - c_skip * x) / c_out).float()
        return (v,)


def test_scheduler_matches_the_edm_formulas() -> None:
    sched = make_scheduler()
    for n in (10, 50):
        sched.set_timesteps(n)
        ref = edm_sigmas(n)  # [n + 1]
        assert sched.sigmas.shape == ref.shape
        torch.testing.assert_close(sched.sigmas.double(), ref, rtol=1e-6, atol=1e-9)
        assert ref[0] == pytest.approx(SIGMA_MAX) and ref[n - 1] == pytest.approx(SIGMA_MIN) and ref[n] == 0
        torch.testing.assert_close(sched.timesteps.double(), 0.25 * torch.log(ref[:-1]), rtol=1e-5, atol=1e-6)
    assert float(sched.init_noise_sigma) == pytest.approx(math.sqrt(1 + SIGMA_MAX**2), rel=1e-6)
    # c_in of the model input
    sched.set_timesteps(50)
    x = torch.ones(2, 3)
    scaled = sched.scale_model_input(x, sched.timesteps[0])
    torch.testing.assert_close(scaled, x / math.sqrt(SIGMA_MAX**2 + 1))


def _closed_form(x_t: Tensor, mu: Tensor, s: float) -> Tensor:
    return mu + (x_t.double() - mu) * s / math.sqrt(s**2 + SIGMA_MAX**2)


def _run(num_steps: int, cfg: Tensor, mu: Tensor, s: float, seed: int = 0) -> tuple[Tensor, Tensor, int]:
    models = tiny_models("sv3d_p")
    model = AnalyticVModel(mu, s)
    models.unet = model  # type: ignore[assignment]
    pipe = SV3DPipeline(models)
    cfg_ = models.config
    cond = ImageConditioning(
        image_embeds=torch.randn(1, 1, cfg_.unet.cross_attention_dim),
        image_latent=torch.randn(1, cfg_.vae.latent_channels, cfg_.latent_size, cfg_.latent_size),
    )
    vec = pipe.camera_vector(static_orbit(), 1e-5)
    out = pipe.denoise(cond, vec, cfg, num_steps, torch.Generator().manual_seed(seed))  # [1, F, C, h, w]
    shape = (1, cfg_.num_frames, cfg_.vae.latent_channels, cfg_.latent_size, cfg_.latent_size)
    x_t = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * math.sqrt(1 + SIGMA_MAX**2)
    return out, x_t, model.calls


def test_sampler_converges_to_the_probability_flow_solution() -> None:
    torch.manual_seed(0)
    s = 0.5
    mu = torch.randn(1, 21, 4, 8, 8, dtype=torch.float64)
    errors = []
    for n in (5, 10, 25, 50, 100):
        out, x_t, calls = _run(n, torch.ones(21), mu, s)
        assert calls == n  # one model call per step when no guidance is needed
        errors.append(float((out.double() - _closed_form(x_t, mu, s)).abs().max()))
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    # Euler is first order: doubling the steps halves the error (25 -> 50 -> 100)
    assert 1.6 < errors[2] / errors[3] < 2.5 and 1.6 < errors[3] / errors[4] < 2.5, errors
    assert errors[-1] < errors[0] / 10, errors


def test_guided_batch_equals_unguided_when_branches_agree() -> None:
    """With a condition-blind model, CFG at any scale must reproduce the plain sample (fused 2-row batch)."""
    torch.manual_seed(1)
    mu = torch.randn(1, 21, 4, 8, 8, dtype=torch.float64)
    plain, _, calls_plain = _run(10, torch.ones(21), mu, 0.7, seed=3)
    guided, _, calls_guided = _run(10, torch.linspace(1.0, 2.5, 21), mu, 0.7, seed=3)
    assert calls_plain == calls_guided == 10
    torch.testing.assert_close(guided, plain, rtol=1e-5, atol=1e-5)
