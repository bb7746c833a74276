"""FreeInit on a3d's [V, F, C, H, W] latents: the filter, the frequency mix, the re-initialisation."""

from __future__ import annotations

import itertools
import math

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


def grid_coordinate(k: int, m: int, grid: str) -> float:
    """Closed form of the frequency coordinate at unshifted FFT index k of a length-m axis.

    centred: the bin's frequency k/m (k < m/2) or k/m − 1, times 2.
    reference: diffusers' 2i/m − 1 at the index i = (k + ⌊m/2⌋) mod m that `fftshift` moves bin k to.
    """
    if grid == "centred":
        return 2 * (k / m if k < (m + 1) // 2 else k / m - 1)
    return 2 * ((k + m // 2) % m) / m - 1


def filter_by_formula(f: int, h: int, w: int, method: str, n: int, ds: float, dt: float, grid: str) -> torch.Tensor:
    """The documented response at each unshifted FFT bin, one bin at a time in float64."""
    out = torch.zeros(f, 1, h, w, dtype=torch.float64)
    for t, y, x in itertools.product(range(f), range(h), range(w)):
        d2 = (
            ((ds / dt) * grid_coordinate(t, f, grid)) ** 2
            + grid_coordinate(y, h, grid) ** 2
            + grid_coordinate(x, w, grid) ** 2
        )
        if method == "butterworth":
            out[t, 0, y, x] = 1 / (1 + (d2 / ds**2) ** n)
        elif method == "gaussian":
            out[t, 0, y, x] = math.exp(-d2 / (2 * ds**2))
        else:  # ideal: diffusers' radius on its grid, the stop frequency itself on the centred one
            out[t, 0, y, x] = float(d2 <= (2 * ds if grid == "reference" else ds**2))
    return out.float()


@pytest.mark.parametrize("grid", ["reference", "centred"])
@pytest.mark.parametrize("method", ["butterworth", "gaussian", "ideal"])
@pytest.mark.parametrize("shape,n,ds,dt", [((15, 8, 8), 4, 0.25, 0.25), ((16, 6, 10), 4, 0.25, 0.5), ((5, 7, 4), 2, 0.4, 0.2)])
def test_filter_response_equals_the_closed_form(shape, n, ds, dt, method, grid):
    got = low_pass_filter(*shape, method=method, order=n, spatial_stop=ds, temporal_stop=dt, grid=grid)
    torch.testing.assert_close(got, filter_by_formula(*shape, method, n, ds, dt, grid))


def test_default_grid_is_the_reference():
    assert FreeInitConfig().grid == "reference"
    torch.testing.assert_close(low_pass_filter(15, 8, 8), low_pass_filter(15, 8, 8, grid="reference"))
    assert not torch.equal(low_pass_filter(15, 8, 8), low_pass_filter(15, 8, 8, grid="centred"))


@pytest.mark.parametrize("method", ["butterworth", "gaussian", "ideal"])
@pytest.mark.parametrize("shape", [(15, 8, 8), (16, 8, 8), (15, 7, 6)])
def test_reference_grid_equals_diffusers_filter_after_fftshift(shape, method):
    """diffusers' own `_get_free_init_freq_filter` (unchanged since 0.28, the version Animate3D pins)."""
    from diffusers.pipelines.free_init_utils import FreeInitMixin

    ref = FreeInitMixin()._get_free_init_freq_filter((1, 1, *shape), "cpu", method, 4, 0.25, 0.25)[0, 0]
    ours = torch.fft.fftshift(low_pass_filter(*shape, method=method, grid="reference")[:, 0], dim=(0, 1, 2))
    torch.testing.assert_close(ours, ref)


def test_reference_mix_equals_diffusers_on_its_own_layout():
    """The whole re-initialisation mix, on diffusers' [B, C, F, H, W] layout with 15 frames (Animate3D)."""
    from diffusers.pipelines.free_init_utils import FreeInitMixin

    g = torch.Generator().manual_seed(3)
    low, high = torch.randn(2, 15, 4, 8, 8, generator=g), torch.randn(2, 15, 4, 8, 8, generator=g)  # [V, F, C, H, W]
    mixin = FreeInitMixin()
    ref_lpf = mixin._get_free_init_freq_filter((1, 4, 15, 8, 8), "cpu", "butterworth", 4, 0.25, 0.25)
    ref = mixin._apply_freq_filter(low.transpose(1, 2), high.transpose(1, 2), ref_lpf).transpose(1, 2)
    ours = mix_frequencies(low, high, low_pass_filter(15, 8, 8, grid="reference"))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["butterworth", "gaussian"])
@pytest.mark.parametrize("shape", [(16, 8, 8), (4, 6, 10)])
def test_even_frame_counts_give_identical_filters_on_both_grids(shape, method):
    ref = low_pass_filter(*shape, method=method, grid="reference")
    torch.testing.assert_close(low_pass_filter(*shape, method=method, grid="centred"), ref, atol=0, rtol=0)
    torch.testing.assert_close(normalized_frequencies(16, "reference"), normalized_frequencies(16, "centred"))


def test_odd_frame_count_centred_filter_is_symmetric_and_reference_is_half_a_bin_off():
    def flip(x: torch.Tensor) -> torch.Tensor:  # f → −f on the unshifted grid
        return torch.roll(torch.flip(x, dims=(0, 1, 2)), shifts=(1, 1, 1), dims=(0, 1, 2))

    centred = low_pass_filter(15, 8, 8, grid="centred")[:, 0]  # MV-VDM re-initialises 15 frames
    torch.testing.assert_close(centred, flip(centred))
    assert normalized_frequencies(15, "centred")[0] == 0 and centred[0, 0, 0] == 1.0  # DC passes untouched
    reference = low_pass_filter(15, 8, 8, grid="reference")[:, 0]
    assert not torch.allclose(reference, flip(reference))
    torch.testing.assert_close(normalized_frequencies(15, "reference"), normalized_frequencies(15, "centred") - 1 / 15)
    assert reference[0, 0, 0] < 1.0


def test_mix_keeps_low_frequencies_of_one_and_high_of_the_other():
    """On the DC-centred grid the mixed spectrum is exactly the filtered blend (its inverse is real)."""
    g = torch.Generator().manual_seed(0)
    low, high = torch.randn(2, 15, 3, 8, 8, generator=g), torch.randn(2, 15, 3, 8, 8, generator=g)
    lpf = low_pass_filter(15, 8, 8, grid="centred")
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
    out = mix_frequencies(x, torch.zeros_like(x), low_pass_filter(15, 8, 8, grid="centred"))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)
    wiggle = x.clone()
    wiggle[:, 1::2] *= -1  # alternate frames: the highest temporal frequency
    assert mix_frequencies(wiggle, torch.zeros_like(x), low_pass_filter(15, 8, 8, grid="centred")).abs().max() < 0.9 * wiggle.abs().max()


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
    with pytest.raises(ValueError):
        FreeInitConfig(grid="shifted")  # type: ignore[arg-type]


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
    from a3d_cli.models.ddim import make_ddim_scheduler

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
