"""FreeInit (Wu et al. 2023): re-initialise a video's noise so it keeps the low frequencies of the last result.

Plain functions the sampling loop calls between passes; no model, no scheduler object. The loop:

1. pass 0 samples from the initial noise ε₀ as usual;
2. before pass k > 0, the previous result x₀ is diffused to the last training timestep with the *same*
   initial noise, ``z_T = √ᾱ_T·x₀ + √(1−ᾱ_T)·ε₀``; its low frequencies are kept and its high frequencies
   are replaced by those of fresh noise: ``FFT⁻¹[ LPF·FFT(z_T) + (1−LPF)·FFT(ε_new) ]``, with the FFT over
   frames × height × width;
3. the whole denoising loop runs again from that latent.

Layout: a3d's video latents are ``[..., F, C, H, W]`` (frames before channels), so the 3D FFT runs over dims
(-4, -2, -1) and the filter is ``[F, 1, H, W]``. diffusers' `FreeInitMixin` assumes ``[B, C, F, H, W]`` and
would filter over (C, H, W) on this layout.

Two frequency grids (`FreeInitGrid`); the filter is stored in unshifted FFT order either way:

* ``"reference"`` (default): diffusers 0.28's filter exactly, as Animate3D applies it to frames 1–15. Its
  grid is laid on the `fftshift`-ed spectrum with coordinate ``2i/n − 1`` at shifted index i. For even n
  that is the true normalised frequency; for odd n (MV-VDM re-initialises 15 frames, frame 0 being the
  clean condition) it is half a bin below it, so the filter is not centred on DC nor symmetric and the
  mixed latent is not exactly real (the real part is kept, as diffusers does). Its "ideal" filter keeps
  ``d² ≤ 2·d_s``. The released model's published samples were made with this filter.
* ``"centred"``: each axis' true normalised frequency ``2·fftfreq(n)`` in [-1, 1), centred on DC and
  symmetric for any n; the "ideal" filter keeps ``d² ≤ d_s²``, i.e. cuts at the stop frequency d_s itself
  (diffusers compares d² with 2·d_s, a different radius unless d_s = 2). Butterworth and Gaussian filters
  are identical to ``"reference"`` for even frame counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

FreeInitMethod = Literal["butterworth", "gaussian", "ideal"]
FREEINIT_METHODS: tuple[str, ...] = ("butterworth", "gaussian", "ideal")
FreeInitGrid = Literal["reference", "centred"]
FREEINIT_GRIDS: tuple[str, ...] = ("reference", "centred")


@dataclass(frozen=True)
class FreeInitConfig:
    """FreeInit settings (Animate3D uses diffusers' defaults: 3 passes, Butterworth n=4, d_s=d_t=0.25)."""

    iters: int = 3
    """Sampling passes in total; 0 or 1 = FreeInit off (one ordinary pass)."""
    method: FreeInitMethod = "butterworth"
    """Low-pass filter shape: butterworth, gaussian or ideal."""
    order: int = 4
    """Butterworth order n (larger = sharper cut-off)."""
    spatial_stop: float = 0.25
    """Normalised spatial stop frequency d_s in (0, 1]."""
    temporal_stop: float = 0.25
    """Normalised temporal stop frequency d_t in (0, 1]."""
    grid: FreeInitGrid = "reference"
    """Frequency grid: "reference" (diffusers 0.28, as Animate3D) or "centred" (on DC; see the module doc)."""

    def __post_init__(self) -> None:
        if self.iters < 0:
            raise ValueError(f"FreeInit iters must be >= 0, got {self.iters}")
        if self.method not in FREEINIT_METHODS:
            raise ValueError(f"FreeInit method must be one of {FREEINIT_METHODS}, got {self.method!r}")
        if not (0 < self.spatial_stop <= 1 and 0 < self.temporal_stop <= 1):
            raise ValueError("FreeInit stop frequencies must be in (0, 1]")
        if self.order < 1:
            raise ValueError(f"FreeInit order must be >= 1, got {self.order}")
        if self.grid not in FREEINIT_GRIDS:
            raise ValueError(f"FreeInit grid must be one of {FREEINIT_GRIDS}, got {self.grid!r}")

    @property
    def passes(self) -> int:
        """How many times the denoising loop runs."""
        return max(1, self.iters)


def normalized_frequencies(n: int, grid: FreeInitGrid = "reference") -> Tensor:
    """Frequency coordinate of each FFT bin of a length-`n` axis, in unshifted FFT order. [n] float64.

    "centred": the bin's signed frequency scaled to [-1, 1) (1 = Nyquist), ``2·fftfreq(n)``.
    "reference": diffusers' ``2i/n − 1`` at index i of the `fftshift`-ed axis, moved back to unshifted
    order; equal to "centred" for even n, half a bin (1/n) lower for odd n.
    """
    if grid == "centred":
        return 2.0 * torch.fft.fftfreq(n, dtype=torch.float64)
    if grid == "reference":
        shifted = 2.0 * torch.arange(n, dtype=torch.float64) / n - 1.0  # [n] on the fftshift-ed axis
        return torch.fft.ifftshift(shifted)
    raise ValueError(f"unknown FreeInit grid {grid!r}; use one of {FREEINIT_GRIDS}")


def squared_radius(
    num_frames: int,
    height: int,
    width: int,
    spatial_stop: float,
    temporal_stop: float,
    grid: FreeInitGrid = "reference",
) -> Tensor:
    """FreeInit's anisotropic squared frequency radius ``((d_s/d_t)·f_t)² + f_h² + f_w²``.

    Returns:
        [F, H, W] float64 in unshifted FFT order.
    """
    ft = normalized_frequencies(num_frames, grid) * (spatial_stop / temporal_stop)  # [F]
    fh = normalized_frequencies(height, grid)  # [H]
    fw = normalized_frequencies(width, grid)  # [W]
    return ft[:, None, None] ** 2 + fh[None, :, None] ** 2 + fw[None, None, :] ** 2  # [F, H, W]


def low_pass_filter(
    num_frames: int,
    height: int,
    width: int,
    method: FreeInitMethod = "butterworth",
    order: int = 4,
    spatial_stop: float = 0.25,
    temporal_stop: float = 0.25,
    grid: FreeInitGrid = "reference",
) -> Tensor:
    """FreeInit's 3D low-pass filter for a ``[..., F, C, H, W]`` latent.

    With d² the squared radius of `squared_radius` on `grid`:
    butterworth ``1 / (1 + (d²/d_s²)^n)``; gaussian ``exp(−d² / (2·d_s²))``; ideal ``[d² ≤ 2·d_s]`` on the
    "reference" grid (diffusers' and FreeInit's code) or ``[d² ≤ d_s²]`` on the "centred" grid (the cut at
    the stop frequency itself).

    Returns:
        [F, 1, H, W] float32, unshifted FFT order, broadcasting over channels.
    """
    d2 = squared_radius(num_frames, height, width, spatial_stop, temporal_stop, grid)  # [F, H, W]
    if method == "butterworth":
        mask = 1.0 / (1.0 + (d2 / spatial_stop**2) ** order)
    elif method == "gaussian":
        mask = torch.exp(-d2 / (2 * spatial_stop**2))
    elif method == "ideal":
        threshold = 2 * spatial_stop if grid == "reference" else spatial_stop**2
        mask = (d2 <= threshold).to(torch.float64)
    else:
        raise ValueError(f"unknown FreeInit filter {method!r}; use one of {FREEINIT_METHODS}")
    return mask[:, None].float()  # [F, 1, H, W]


FFT_DIMS = (-4, -2, -1)  # frames, height, width of [..., F, C, H, W]


def mix_frequencies(low: Tensor, high: Tensor, lpf: Tensor) -> Tensor:
    """Low frequencies of `low`, high frequencies of `high`: ``FFT⁻¹[lpf·FFT(low) + (1−lpf)·FFT(high)]``.

    Args:
        low: [..., F, C, H, W]; high: same shape.
        lpf: [F, 1, H, W] filter from `low_pass_filter`.

    Returns:
        [..., F, C, H, W] float32, the real part (exactly real up to rounding for a DC-symmetric filter;
        diffusers keeps the real part of its off-centre odd-length filter in the same way).
    """
    if low.shape != high.shape:
        raise ValueError(f"low {list(low.shape)} and high {list(high.shape)} differ")
    if low.ndim < 4 or lpf.shape != (low.shape[-4], 1, low.shape[-2], low.shape[-1]):
        raise ValueError(
            f"lpf must be [F, 1, H, W] for latents [..., F, C, H, W]; got {list(lpf.shape)} for {list(low.shape)}"
        )
    lpf = lpf.to(low.device, torch.float32)
    spec = torch.fft.fftn(low.float(), dim=FFT_DIMS) * lpf + torch.fft.fftn(high.float(), dim=FFT_DIMS) * (1 - lpf)
    return torch.fft.ifftn(spec, dim=FFT_DIMS).real


def reinitialize(
    latents: Tensor, initial_noise: Tensor, fresh_noise: Tensor, alpha_bar_T: float, lpf: Tensor
) -> Tensor:
    """The FreeInit noise for the next pass.

    Args:
        latents: [..., F, C, H, W] result of the previous pass (clean estimate x₀).
        initial_noise: [..., F, C, H, W] the noise pass 0 started from.
        fresh_noise: [..., F, C, H, W] new standard-normal noise.
        alpha_bar_T: ᾱ at the last training timestep (the diffusion target of step 2).
        lpf: [F, 1, H, W] filter.

    Returns:
        [..., F, C, H, W] float32 starting latent.
    """
    a = torch.tensor(alpha_bar_T, dtype=torch.float64)
    z_t = a.sqrt().item() * latents.float() + (1 - a).sqrt().item() * initial_noise.float()  # diffuse to T
    return mix_frequencies(z_t, fresh_noise, lpf)
