"""MV-VDM's sampler: DDIM against an analytic denoiser, CFG arithmetic, the pinned frame 0, the pipeline."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.models.freeinit import FreeInitConfig
from a3d_cli.models.mvvdm.ddim import MVVDM_DDIM_CONFIG, make_ddim_scheduler
from a3d_cli.models.mvvdm.sampling import SamplingConfig, classifier_free_guidance, denoise, guided_eps, sample_latents

M, S = 0.7, 0.5  # data ~ N(M, S²) elementwise


def alphas_bar() -> torch.Tensor:
    """ᾱ_t of the configured schedule, from its definition: linear β from 0.00085 to 0.012 over 1000 steps."""
    betas = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def gaussian_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact E[ε | x_t] for Gaussian data: √(1−ᾱ)(x − √ᾱ M) / (ᾱ S² + 1 − ᾱ)."""
    ab = alphas_bar()[int(t)]
    return ((1 - ab).sqrt() * (x.double() - ab.sqrt() * M) / (ab * S**2 + 1 - ab)).float()


def ddim_closed_form(x_T: torch.Tensor, steps: int) -> torch.Tensor:
    """Each η=0 DDIM step with the exact Gaussian ε maps x ↦ a'M + (x − aM)(a a' S² + b b')/σ²; chain them.

    Timesteps: 'leading' spacing + offset 1 → t_k = 1000/steps·k + 1; the step after t = 1 lands on ᾱ = 1.
    """
    ab = alphas_bar()
    ratio = 1000 // steps
    ts = [k * ratio + 1 for k in reversed(range(steps))]
    x = x_T.double()
    for t in ts:
        a, b = ab[t].sqrt(), (1 - ab[t]).sqrt()
        a2 = ab[t - ratio] if t - ratio >= 0 else torch.tensor(1.0, dtype=torch.float64)
        a_, b_ = a2.sqrt(), (1 - a2).sqrt()
        x = a_ * M + (x - a * M) * (a * a_ * S**2 + b * b_) / (a * a * S**2 + b * b)
    return x.float()


def test_scheduler_is_the_released_configuration():
    sched = make_ddim_scheduler()
    for k, v in MVVDM_DDIM_CONFIG.items():
        assert sched.config[k] == v
    sched.set_timesteps(25)
    assert sched.timesteps.tolist() == list(range(961, 0, -40))
    torch.testing.assert_close(sched.alphas_cumprod.double(), alphas_bar(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("steps", [25, 10])
def test_ddim_matches_closed_form_with_analytic_denoiser(steps):
    sched = make_ddim_scheduler()
    sched.set_timesteps(steps)
    x_T = torch.randn(2, 3, 1, 4, 4, generator=torch.Generator().manual_seed(0))  # [V, F, C, h, w]
    cond = torch.zeros(2, 1, 4, 4)
    out = denoise(gaussian_eps, x_T, cond, sched, guidance_scale=1.0)
    torch.testing.assert_close(out[:, 1:], ddim_closed_form(x_T[:, 1:], steps), atol=1e-5, rtol=1e-5)


def test_many_ddim_steps_approach_the_exact_flow_map():
    """With many steps η=0 DDIM follows the probability-flow ODE: standardised noise maps to standardised data."""
    sched = make_ddim_scheduler()
    sched.set_timesteps(500)
    x_T = torch.randn(1, 2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = denoise(gaussian_eps, x_T, torch.zeros(1, 1, 8, 8), sched, guidance_scale=1.0)[:, 1]
    ab = alphas_bar()[int(sched.timesteps[0])]
    exact = M + S * (x_T[:, 1].double() - ab.sqrt() * M) / (ab * S**2 + 1 - ab).sqrt()
    assert (out.double() - exact).abs().max() < 0.02 * (1 + exact.abs().max())


def test_cfg_arithmetic_and_branch_order():
    seen = []

    def eps_fn(x, t):
        seen.append(x.shape[0])
        return torch.stack([torch.full_like(x[0], 1.0), torch.full_like(x[0], 3.0)])[: x.shape[0]] if x.shape[0] == 2 \
            else torch.full_like(x, 5.0)

    x = torch.randn(4, 2, 4, 2, 2)
    out = guided_eps(eps_fn, x, torch.tensor(1), scale=7.5)
    torch.testing.assert_close(out, torch.full_like(x, 1.0 + 7.5 * (3.0 - 1.0)))  # ε_u + s(ε_c − ε_u)
    torch.testing.assert_close(guided_eps(eps_fn, x, torch.tensor(1), scale=1.0), torch.full_like(x, 5.0))
    assert seen == [2, 1]
    torch.testing.assert_close(classifier_free_guidance(torch.tensor(2.0), torch.tensor(4.0), 0.0), torch.tensor(2.0))


def test_guided_loop_equals_unguided_loop_with_the_combined_denoiser():
    cond = torch.randn(4, 4, 2, 2)

    def two_branch(x, t):  # uncond ε = 0.1x, cond ε = 0.2x
        return torch.stack([0.1 * x[0], 0.2 * x[1]])

    def combined(x, t):
        return (0.1 + 3.0 * 0.1) * x

    cfg_g = SamplingConfig(steps=5, guidance_scale=3.0, num_frames=4, freeinit=FreeInitConfig(iters=0))
    cfg_u = SamplingConfig(steps=5, guidance_scale=1.0, num_frames=4, freeinit=FreeInitConfig(iters=0))
    a = sample_latents(two_branch, cond, make_ddim_scheduler(), cfg_g, torch.Generator().manual_seed(0))
    b = sample_latents(combined, cond, make_ddim_scheduler(), cfg_u, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)


def test_frame_zero_is_overwritten_after_every_step():
    cond = torch.randn(4, 4, 2, 2)
    checked = []

    def wild_eps(x, t):
        e = 0.1 * x
        e[:, :, 0] = 100.0  # would wreck frame 0 if it were not pinned
        return e

    def callback(k, i, lat):
        torch.testing.assert_close(lat[:, 0], cond)
        assert (lat[:, 1:] != 0).any()
        checked.append((k, i))

    cfg = SamplingConfig(steps=4, guidance_scale=2.0, num_frames=5, freeinit=FreeInitConfig(iters=2))
    out = sample_latents(wild_eps, cond, make_ddim_scheduler(), cfg, torch.Generator().manual_seed(0), callback)
    assert checked == [(k, i) for k in range(2) for i in range(4)]
    assert torch.equal(out[:, 0], cond)


def test_sampling_is_deterministic_per_seed():
    cond = torch.randn(4, 4, 2, 2)
    cfg = SamplingConfig(steps=3, guidance_scale=1.0, num_frames=4, freeinit=FreeInitConfig(iters=2))

    def run(seed):
        return sample_latents(lambda x, t: 0.1 * x, cond, make_ddim_scheduler(), cfg, torch.Generator().manual_seed(seed))

    assert torch.equal(run(5), run(5))
    assert not torch.allclose(run(5), run(6))


def test_tiny_pipeline_end_to_end_shapes_and_seed():
    from a3d_cli.models.mvvdm import generate_mvvideo, tiny_components
    from a3d_cli.render.cameras import mvvdm_cameras

    comp = tiny_components(0)
    views = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    cfg = SamplingConfig(steps=2, guidance_scale=7.5, num_frames=3, freeinit=FreeInitConfig(iters=0))
    outs = [generate_mvvideo(comp, views, mvvdm_cameras().c2w, "a fox wags its tail", config=cfg,
                             generator=torch.Generator().manual_seed(s)) for s in (0, 0)]
    assert outs[0].frames.shape == (4, 3, 3, 256, 256)
    assert outs[0].latents.shape == (4, 3, 4, 8, 8)
    assert 0 <= outs[0].frames.min() and outs[0].frames.max() <= 1
    assert torch.equal(outs[0].frames, outs[1].frames)
    with pytest.raises(ValueError, match="multiple of 256"):
        generate_mvvideo(comp, views[..., :128, :128], mvvdm_cameras().c2w, "x", config=cfg)


def test_host_timestep_steps_equal_tensor_timestep_steps_and_the_network_gets_a_tensor():
    """The loop gives the scheduler host integers (no device read per step): same numbers as tensor timesteps."""
    sched = make_ddim_scheduler()
    sched.set_timesteps(6)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 3, 1, 4, 4, generator=g), torch.randn(2, 3, 1, 4, 4, generator=g)
    for t in sched.timesteps:
        by_int = sched.step(eps, int(t), x, eta=0.0).prev_sample
        assert torch.equal(by_int, sched.step(eps, t, x, eta=0.0).prev_sample)
    seen: list[torch.Tensor] = []

    def eps_fn(x_in, t):
        seen.append(t)
        return 0.1 * x_in

    denoise(eps_fn, torch.randn(2, 3, 1, 4, 4, generator=g), torch.zeros(2, 1, 4, 4), sched, guidance_scale=1.0)
    assert all(isinstance(t, torch.Tensor) and t.ndim == 0 for t in seen)
    assert [int(t) for t in seen] == sched.timesteps.tolist()


def test_a_given_guide_replaces_the_guided_call_in_every_pass():
    cond = torch.randn(4, 4, 2, 2)
    calls: list[int] = []

    def guide(x, t):  # what a graphed guide computes, counted
        calls.append(int(t))
        return guided_eps(lambda z, _t: 0.1 * z, x, t, 2.0)

    cfg = SamplingConfig(steps=3, guidance_scale=2.0, num_frames=4, freeinit=FreeInitConfig(iters=2))
    a = sample_latents(lambda z, _t: 0.1 * z, cond, make_ddim_scheduler(), cfg, torch.Generator().manual_seed(0), guide=guide)
    b = sample_latents(lambda z, _t: 0.1 * z, cond, make_ddim_scheduler(), cfg, torch.Generator().manual_seed(0))
    assert len(calls) == cfg.unet_evaluations
    torch.testing.assert_close(a, b)


def test_the_pipeline_records_no_graph_on_the_cpu():
    from a3d_cli.models.mvvdm import generate_mvvideo, tiny_components
    from a3d_cli.render.cameras import mvvdm_cameras

    views = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    cfg = SamplingConfig(steps=2, guidance_scale=7.5, num_frames=3, freeinit=FreeInitConfig(iters=0))
    out = generate_mvvideo(tiny_components(0), views, mvvdm_cameras().c2w, "a fox", config=cfg,
                           generator=torch.Generator().manual_seed(0), cuda_graph=True)
    assert out.graph_replays == 0


@pytest.mark.gpu
def test_graphed_guide_replays_and_matches_eager_on_cuda():
    from a3d_cli.models.mvvdm.sampling import graphed_guide

    cond = torch.randn(4, 4, 2, 2, device="cuda")
    w = torch.randn(4, device="cuda")

    def eps_fn(x, t):
        return torch.tanh(x * w.view(1, 4, 1, 1, 1, 1) + t.float() / 1000)  # [B, V, F, C, h, w]

    cfg = SamplingConfig(steps=5, guidance_scale=3.0, num_frames=4, freeinit=FreeInitConfig(iters=2))
    guide = graphed_guide(eps_fn, cfg.guidance_scale)
    a = sample_latents(eps_fn, cond, make_ddim_scheduler(), cfg, torch.Generator().manual_seed(0), guide=guide)
    b = sample_latents(eps_fn, cond, make_ddim_scheduler(), cfg, torch.Generator().manual_seed(0))
    assert guide.replays == cfg.unet_evaluations - 1
    torch.testing.assert_close(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_the_tiny_pipeline_samples_the_same_video_with_and_without_the_graph(dtype: torch.dtype):
    """The recorded guided call runs the stage's own kernels (speed settings on) on copies: same latents."""
    from a3d_cli.models.mvvdm import generate_mvvideo, tiny_components
    from a3d_cli.models.speed.acceleration import accelerate, backend_flags_kept
    from a3d_cli.render.cameras import mvvdm_cameras

    comp = tiny_components(0).to("cuda", dtype)
    views = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(0)).cuda()
    cfg = SamplingConfig(steps=3, guidance_scale=7.5, num_frames=4, freeinit=FreeInitConfig(iters=2))
    with backend_flags_kept():
        accelerate("cuda", [comp.unet], compile=False)
        outs = [generate_mvvideo(comp, views, mvvdm_cameras().c2w, "a fox", config=cfg,
                                 generator=torch.Generator().manual_seed(0), cuda_graph=graph) for graph in (False, True)]
    assert (outs[0].graph_replays, outs[1].graph_replays) == (0, cfg.unet_evaluations - 1)
    torch.testing.assert_close(outs[1].latents, outs[0].latents, rtol=1e-5, atol=1e-5)
