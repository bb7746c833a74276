"""FreeInit on a3d's [V, F, C, H, W] latents: the filter, the frequency mix, the re-initialisation."""

from __future__ import annotations

import itertools

import pytest
import torch

from a3d_cli.models.freeinit import (
    FreeInitConfig,
    low_pass_filter,
    mix_frequencies,
    normalized_frequencies,
    reinitialize,
)
from a3d_cli.models.mvvdm.sampling import SamplingConfig, sample_latents

DIMS = (-4, -2, -1)  # frames, height, width of [V, F, C, H, W]


def butterworth_by_formula(f: int, h: int, w: int, n: int, ds: float, dt: float) -> torch.Tensor:
    """1 / (1 + (d²/d_s²)^n) at each FFT bin, bin k of a length-m axis having frequency k/m (k < m/2) or k/m − 1."""
    def freq(k: int, m: int) -> float:
        return 2 * (k / m if k < (m + 1) // 2 else k / m - 1)

    out = torch.zeros(f, 1, h, w, dtype=torch.float64)
    for t, y, x in itertools.product(range(f), range(h), range(w)):
        d2 = ((ds / dt) * freq(t, f)) ** 2 + freq(y, h) ** 2 + freq(x, w) ** 2
        out[t, 0, y, x] = 1 / (1 + (d2 / ds**2) ** n)
    return out.float()


@pytest.mark.parametrize("shape,n,ds,dt", [((15, 8, 8), 4, 0.25, 0.25), ((16, 6, 10), 4, 0.25, 0.5), ((5, 7, 4), 2, 0.4, 0.2)])
def test_butterworth_response_equals_the_formula(shape, n, ds, dt):
    got = low_pass_filter(*shape, method="butterworth", order=n, spatial_stop=ds, temporal_stop=dt)
    torch.testing.assert_close(got, butterworth_by_formula(*shape, n, ds, dt))
    assert got[0, 0, 0, 0] == 1.0  # DC passes untouched


def test_even_sizes_equal_diffusers_filter_after_fftshift():
    from diffusers.pipelines.free_init_utils import FreeInitMixin

    ref = FreeInitMixin()._get_free_init_freq_filter((1, 1, 16, 8, 8), "cpu", "butterworth", 4, 0.25, 0.25)[0, 0]
    ours = torch.fft.fftshift(low_pass_filter(16, 8, 8)[:, 0], dim=(0, 1, 2))  # [F, H, W] centred
    torch.testing.assert_close(ours, ref)


def test_odd_frame_count_filter_is_centred_on_dc_and_symmetric():
    lpf = low_pass_filter(15, 8, 8)[:, 0]  # MV-VDM re-initialises 15 frames
    flipped = torch.roll(torch.flip(lpf, dims=(0, 1, 2)), shifts=(1, 1, 1), dims=(0, 1, 2))  # f → −f
    torch.testing.assert_close(lpf, flipped)
    assert normalized_frequencies(15)[0] == 0


def test_mix_keeps_low_frequencies_of_one_and_high_of_the_other():
    g = torch.Generator().manual_seed(0)
    low, high = torch.randn(2, 15, 3, 8, 8, generator=g), torch.randn(2, 15, 3, 8, 8, generator=g)
    lpf = low_pass_filter(15, 8, 8)
    out = mix_frequencies(low, high, lpf)
    fo, fl, fh = (torch.fft.fftn(x, dim=DIMS) for x in (out, low, high))
    torch.testing.assert_close(fo, lpf * fl + (1 - lpf) * fh, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fo[:, 0, :, 0, 0], fl[:, 0, :, 0, 0], atol=1e-4, rtol=1e-4)  # DC from `low`
    corner = (slice(None), 7, slice(None), 4, 4)  # highest temporal and spatial frequency
    torch.testing.assert_close(fo[corner], fh[corner], atol=1e-3, rtol=1e-3)  # from `high` (lpf ≈ 2e-7)
    mid = lpf[:, 0] > 0.1
    assert ((lpf[:, 0] > 0.1) & (lpf[:, 0] < 0.9)).any() and mid.sum() < mid.numel()


def test_filter_runs_over_frames_height_width_not_channels():
    """A latent constant over F, H, W but different per channel is pure DC: it must pass unchanged."""
    x = torch.arange(4.0).reshape(1, 1, 4, 1, 1).expand(2, 15, 4, 8, 8).contiguous()  # [V, F, C, H, W]
    out = mix_frequencies(x, torch.zeros_like(x), low_pass_filter(15, 8, 8))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)
    wiggle = x.clone()
    wiggle[:, 1::2] *= -1  # alternate frames: the highest temporal frequency
    assert mix_frequencies(wiggle, torch.zeros_like(x), low_pass_filter(15, 8, 8)).abs().max() < 0.9 * wiggle.abs().max()


def test_reinitialize_diffuses_with_the_initial_noise_then_mixes():
    g = torch.Generator().manual_seed(1)
    x0, eps0, fresh = (torch.randn(4, 15, 4, 8, 8, generator=g) for _ in range(3))
    a = 0.3
    ones, zeros = torch.ones(15, 1, 8, 8), torch.zeros(15, 1, 8, 8)
    torch.testing.assert_close(reinitialize(x0, eps0, fresh, a, ones), a**0.5 * x0 + (1 - a) ** 0.5 * eps0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reinitialize(x0, eps0, fresh, a, zeros), fresh, atol=1e-5, rtol=1e-5)


def test_config_validates_and_counts_passes():
    assert FreeInitConfig(iters=0).passes == 1 and FreeInitConfig(iters=1).passes == 1 and FreeInitConfig().passes == 3
    with pytest.raises(ValueError):
        FreeInitConfig(method="box")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FreeInitConfig(spatial_stop=0.0)


class RecordingEps:
    """Analytic 'denoiser' (ε̂ = 0.1·x) that records what each pass starts from."""

    def __init__(self) -> None:
        self.first_inputs: list[torch.Tensor] = []
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if int(t) == 961:  # the first timestep of a 25-step pass
            self.first_inputs.append(x[0].clone())
        self.calls += 1
        return 0.1 * x


def test_sampler_reinitialises_frames_1_to_15_only_with_the_documented_noise():
    from a3d_cli.models.mvvdm.ddim import make_ddim_scheduler

    cond = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(7))
    eps = RecordingEps()
    cfg = SamplingConfig(steps=25, guidance_scale=1.0, num_frames=16, freeinit=FreeInitConfig(iters=3))
    sched = make_ddim_scheduler()
    finals: list[torch.Tensor] = []

    def callback(k: int, i: int, lat: torch.Tensor) -> None:
        if i == cfg.steps - 1:
            finals.append(lat.clone())

    out = sample_latents(eps, cond, sched, cfg, generator=torch.Generator().manual_seed(11), callback=callback)
    assert eps.calls == 75 and len(eps.first_inputs) == 3
    for start in eps.first_inputs:
        torch.testing.assert_close(start[:, 0], cond)  # frame 0 clean at the start of every pass
    torch.testing.assert_close(out[:, 0], cond)
    # replay the documented draws: initial noise, then one fresh draw per re-initialisation
    g = torch.Generator().manual_seed(11)
    noise0 = torch.randn(4, 15, 4, 8, 8, generator=g)
    torch.testing.assert_close(eps.first_inputs[0][:, 1:], noise0)
    lpf = low_pass_filter(15, 8, 8)
    alpha_T = float(sched.alphas_cumprod[-1])
    for k in (1, 2):
        fresh = torch.randn(4, 15, 4, 8, 8, generator=g)
        want = reinitialize(finals[k - 1][:, 1:], noise0, fresh, alpha_T, lpf)
        torch.testing.assert_close(eps.first_inputs[k][:, 1:], want)
