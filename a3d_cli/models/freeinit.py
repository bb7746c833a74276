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

The filter lives on the unshifted FFT grid, with each axis' normalised frequency ``2·fftfreq(n)`` in
[-1, 1). For even lengths this is exactly diffusers' grid (``2i/n − 1`` after `fftshift`); for odd lengths —
MV-VDM re-initialises 15 frames, since frame 0 is the clean condition — diffusers' grid is off by one bin
half-width (its zero is not on the DC bin), so its filter is not symmetric and the mixed latent is not
exactly real. Ours is centred on DC for any length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

FreeInitMethod = Literal["butterworth", "gaussian", "ideal"]
FREEINIT_METHODS: tuple[str, ...] = ("butterworth", "gaussian", "ideal")


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

    def __post_init__(self) -> None:
        if self.iters < 0:
            raise ValueError(f"FreeInit iters must be >= 0, got {self.iters}")
        if self.method not in FREEINIT_METHODS:
            raise ValueError(f"FreeInit method must be one of {FREEINIT_METHODS}, got {self.method!r}")
        if not (0 < self.spatial_stop <= 1 and 0 < self.temporal_stop <= 1):
            raise ValueError("FreeInit stop frequencies must be in (0, 1]")
        if self.order < 1:
            raise ValueError(f"FreeInit order must be >= 1, got {self.order}")

    @property
    def passes(self) -> int:
        """How many times the denoising loop runs."""
        return max(1, self.iters)


def normalized_frequencies(n: int) -> Tensor:
    """Signed frequency of each FFT bin of a length-`n` axis, scaled to [-1, 1) (1 = Nyquist). [n] float64."""
    return 2.0 * torch.fft.fftfreq(n, dtype=torch.float64)


def squared_radius(num_frames: int, height: int, width: int, spatial_stop: float, temporal_stop: float) -> Tensor:
    """FreeInit's anisotropic squared frequency radius ``((d_s/d_t)·f_t)² + f_h² + f_w²``.

    Returns:
        [F, H, W] float64 on the unshifted FFT grid.
    """
    ft = normalized_frequencies(num_frames) * (spatial_stop / temporal_stop)  # [F]
    fh = normalized_frequencies(height)  # [H]
    fw = normalized_frequencies(width)  # [W]
    return ft[:, None, None] ** 2 + fh[None, :, None] ** 2 + fw[None, None, :] ** 2  # [F, H, W]


def low_pass_filter(
    num_frames: int,
    height: int,
    width: int,
    method: FreeInitMethod = "butterworth",
    order: int = 4,
    spatial_stop: float = 0.25,
    temporal_stop: float = 0.25,
) -> Tensor:
    """FreeInit's 3D low-pass filter for a ``[..., F, C, H, W]`` latent.

    With d² the squared radius of `squared_radius`:
    butterworth ``1 / (1 + (d²/d_s²)^n)``; gaussian ``exp(−d² / (2·d_s²))``; ideal ``[d² ≤ d_s²]`` (cut at
    the stop frequency itself; FreeInit's code compares d² with 2·d_s instead).

    Returns:
        [F, 1, H, W] float32, unshifted FFT order, broadcasting over channels.
    """
    d2 = squared_radius(num_frames, height, width, spatial_stop, temporal_stop)  # [F, H, W]
    if method == "butterworth":
        mask = 1.0 / (1.0 + (d2 / spatial_stop**2) ** order)
    elif method == "gaussian":
        mask = torch.exp(-d2 / (2 * spatial_stop**2))
    elif method == "ideal":
        mask = (d2 <= spatial_stop**2).to(torch.float64)
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
        [..., F, C, H, W] float32 (real part; exactly real up to rounding for a DC-symmetric filter).
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
