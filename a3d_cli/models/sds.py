"""4D score distillation (4D-SDS) as plain functions, plus the small protocol a denoiser must meet.

The refinement stage renders V views × F frames of the moving object, encodes them into latents z
[V, F, C, h, w] and asks a multi-view video diffusion model (MV-VDM) what those latents should look like:

1. draw one timestep t ~ U{t_min … t_max} (`timestep_range`);
2. noise frames 1…F-1 only, z_t = √ᾱ_t z + √(1-ᾱ_t) ε; frame 0 stays the clean condition;
3. predict the noise with and without the condition, and guide it: ε̂ = ε_c + s (ε_c - ε_u)
   (the reference's form: the effective weight on ε_c is 1 + s);
4. estimate the clean video, ẑ0 = (z_t - √(1-ᾱ_t) ε̂) / √ᾱ_t (DDIM's `pred_original_sample`);
5. CFG-std rescale (weight r): ẑ0 ← r · ẑ0 · std(ẑ0^{ε_c}) / std(ẑ0) + (1 - r) · ẑ0, the stds taken over
   views, frames 1…F-1, channels and pixels;
6. frame 0 of ẑ0 is the clean z itself;
7. loss = ½ ‖z - sg(ẑ0)‖² summed, divided by V·F, times F / (F - 1) (mean per moving frame).

Its gradient w.r.t. z is (z - ẑ0) / (V (F - 1)): an "x0-reconstruction" form of SDS that pulls the
renders toward the denoiser's one-step estimate of the clean video (Animate3D, Jiang et al. 2024, §3.4;
yanqinJiang/Animate3D `custom/threestudio-animate3d/guidance/animatemv_guidance.py`). MV-VDM behind this
protocol is `a3d_cli.models.mvvdm.denoiser.MvvdmDenoiser`. The reference's s, r and timestep range are the
defaults of `a3d_cli.gaussians.motion_refine.RefineSettings`, their one home.

Layout: latents are [V, F, C, h, w] everywhere in this module (views, frames, latent channels, pixels).

Examples:
    >>> ac = torch.linspace(0.99, 0.01, 1000)
    >>> z = torch.randn(4, 16, 4, 8, 8)
    >>> noisy = noise_moving_frames(z, torch.randn(4, 15, 4, 8, 8), 100, ac)
    >>> torch.equal(noisy[:, 0], z[:, 0])
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from a3d_cli.render.cameras import CameraSet


@dataclass(frozen=True)
class SdsCondition:
    """Everything the denoiser is conditioned on for one SDS step.

    Attributes:
        prompt: the text prompt (the conditional branch).
        negative_prompt: the text of the unconditional branch ("" in the reference).
        first_frames: [V, 3, H, W] frame-0 renders in [0, 1] (the image-prompt condition).
        cameras: the V views in a3d's convention (OpenCV c2w, world +Y up); the denoiser converts to its
            own camera convention (MV-VDM uses the c2w only).
    """

    prompt: str
    negative_prompt: str
    first_frames: Tensor  # [V, 3, H, W]
    cameras: CameraSet


@runtime_checkable
class SdsDenoiser(Protocol):
    """What 4D-SDS needs from a multi-view video diffusion model (MV-VDM and test stand-ins fit it).

    A denoiser may also be a `PreparesCondition` and a `GraphsGuidance`; the refiner uses those where it finds them.

    Attributes:
        alphas_cumprod: [T] ᾱ_t of the model's training noise schedule (fp32).
    """

    alphas_cumprod: Tensor  # [T]

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of the latents of an H×W image."""
        ...

    def encode(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        """Images [B, 3, H, W] in [0, 1] → scaled latents [B, C, h, w], differentiable w.r.t. the images.

        `noise` [B, C, h, w] is the standard-normal draw of the VAE posterior sample (None: the mean), so
        that recomputing the encoding (activation checkpointing) gives the same latents.
        """
        ...

    def predict_noise(self, noisy: Tensor, t: int, cond: SdsCondition) -> tuple[Tensor, Tensor]:
        """(ε_c, ε_u), each [V, F, C, h, w] fp32, for noisy latents [V, F, C, h, w] at timestep t.

        Frame 0 of `noisy` is the clean condition latent. Runs without gradients, in whatever precision
        the model uses; ε_u is the unconditional branch (negative prompt, zero image embeddings).
        """
        ...


@runtime_checkable
class PreparesCondition(Protocol):
    """A denoiser whose condition needs host-side work (MV-VDM: CLIP's preprocessing reads the frame-0 renders
    back), which the refiner has done before it queues the VAE encoder, so that the wait is for the renders alone."""

    def prepare_condition(self, cond: SdsCondition) -> None:
        """Encode `cond` now, for the next `predict_noise` with this same `cond`."""
        ...


@runtime_checkable
class GraphsGuidance(Protocol):
    """A denoiser that can replay its guided call from a CUDA graph.

    Attributes:
        guided_call_bytes: on CUDA, an upper bound of the memory one eager guided call takes above what was
            allocated before it (what a recording keeps for as long as it lives); None until measured.
        graph_replays: guided calls the recording has served.
        graph_ran_out_of_memory: recording ran out of GPU memory, and the call has run eagerly since.
    """

    guided_call_bytes: int | None
    graph_replays: int
    graph_ran_out_of_memory: bool

    def use_guided_graph(self, on: bool = True) -> None:
        """Record the guided call and replay it from now on (`on`), or drop the recording and run eagerly."""
        ...


def timestep_range(num_train_timesteps: int, min_percent: float, max_percent: float) -> tuple[int, int]:
    """The inclusive integer timestep range, as the reference derives it: (int(T·min), int(T·max)).

    Examples:
        >>> timestep_range(1000, 0.02, 0.2)
        (20, 200)
    """
    if not 0.0 <= min_percent <= max_percent <= 1.0:
        raise ValueError(f"need 0 <= min_percent <= max_percent <= 1, got {min_percent}, {max_percent}")
    return int(num_train_timesteps * min_percent), min(int(num_train_timesteps * max_percent), num_train_timesteps - 1)


def sample_timestep(t_min: int, t_max: int, generator: torch.Generator | None = None) -> int:
    """One timestep drawn uniformly from the integers t_min…t_max (both included)."""
    return int(torch.randint(t_min, t_max + 1, (1,), generator=generator).item())


def _alpha(alphas_cumprod: Tensor, t: int, like: Tensor) -> Tensor:
    return alphas_cumprod[int(t)].to(device=like.device, dtype=torch.float32)


def noise_moving_frames(latents: Tensor, noise: Tensor, t: int, alphas_cumprod: Tensor) -> Tensor:
    """Diffuse frames 1…F-1 to timestep t; frame 0 stays clean (the condition frame).

    Args:
        latents: [V, F, C, h, w] clean latents.
        noise: [V, F-1, C, h, w] standard normal.
        t: timestep index into `alphas_cumprod`.
        alphas_cumprod: [T].

    Returns:
        [V, F, C, h, w] with z_t = √ᾱ_t z + √(1-ᾱ_t) ε on frames ≥ 1.
    """
    if noise.shape != latents[:, 1:].shape:
        raise ValueError(f"noise must be {tuple(latents[:, 1:].shape)} (frames 1…F-1), got {tuple(noise.shape)}")
    a = _alpha(alphas_cumprod, t, latents)
    moving = a.sqrt() * latents[:, 1:] + (1.0 - a).sqrt() * noise  # [V, F-1, C, h, w]
    return torch.cat([latents[:, :1], moving], dim=1)


def classifier_free_guidance(eps_cond: Tensor, eps_uncond: Tensor, scale: float) -> Tensor:
    """The reference's SDS guidance, ε̂ = ε_c + s (ε_c - ε_u) (note: not ε_u + s (ε_c - ε_u))."""
    return eps_cond + scale * (eps_cond - eps_uncond)


def predict_x0(eps: Tensor, noisy: Tensor, t: int, alphas_cumprod: Tensor) -> Tensor:
    """DDIM's clean-sample estimate for an ε-prediction: (z_t - √(1-ᾱ_t) ε) / √ᾱ_t."""
    a = _alpha(alphas_cumprod, t, noisy)
    return (noisy - (1.0 - a).sqrt() * eps) / a.sqrt()


def cfg_std_rescale(x0_guided: Tensor, x0_cond: Tensor, rescale: float, eps: float = 1e-8) -> Tensor:
    """Pull the guided x0 estimate's spread back toward the unguided one (the reference's variant).

    factor = (std(x0_cond) + eps) / (std(x0_guided) + eps) over views, frames 1…F-1, channels and pixels
    (torch's unbiased std, as in the reference); result = rescale · factor · x0_guided + (1 - rescale) · x0_guided.

    Args:
        x0_guided: [V, F, C, h, w] estimate from the guided noise.
        x0_cond: [V, F, C, h, w] estimate from the conditional noise alone.
        rescale: blend weight r in [0, 1]; 0 returns x0_guided unchanged.

    Returns:
        [V, F, C, h, w].
    """
    if rescale == 0.0:
        return x0_guided
    factor = (x0_cond[:, 1:].std() + eps) / (x0_guided[:, 1:].std() + eps)  # scalar
    return rescale * factor * x0_guided + (1.0 - rescale) * x0_guided


def x0_reconstruction_loss(latents: Tensor, x0_target: Tensor) -> Tensor:
    """½ ‖z - sg(ẑ0)‖² over frames 1…F-1, divided by V·F, times F/(F-1): the reference's normalisation.

    Frame 0 contributes nothing (its target is z itself), so only frames ≥ 1 are summed.

    Args:
        latents: [V, F, C, h, w] encoded renders (carry gradients).
        x0_target: [V, F, C, h, w] target (detached here).

    Returns:
        scalar loss.
    """
    v, f = latents.shape[:2]
    diff = latents[:, 1:] - x0_target[:, 1:].detach()  # [V, F-1, C, h, w]
    return 0.5 * diff.float().square().sum() / (v * f) * f / (f - 1)


@dataclass(frozen=True)
class SdsTarget:
    """The denoiser's verdict for one SDS step.

    Attributes:
        x0: [V, F, C, h, w] target latents (frame 0 = the clean input), no gradient.
        noisy: [V, F, C, h, w] the noised latents the denoiser saw.
        t: the timestep.
    """

    x0: Tensor  # [V, F, C, h, w]
    noisy: Tensor  # [V, F, C, h, w]
    t: int


@torch.no_grad()
def sds_target(
    denoiser: SdsDenoiser,
    latents: Tensor,
    cond: SdsCondition,
    t: int,
    noise: Tensor,
    guidance_scale: float,
    std_rescale: float,
) -> SdsTarget:
    """Steps 2–6 of 4D-SDS: noise, guided prediction, x0 estimate, std rescale, clean frame 0.

    Args:
        denoiser: the diffusion model (no gradients flow through it).
        latents: [V, F, C, h, w] clean latents of the renders (frame 0 = static model).
        cond: prompt, frame-0 images, cameras.
        t: timestep.
        noise: [V, F-1, C, h, w] standard normal for frames 1…F-1.
        guidance_scale: s in ε_c + s (ε_c - ε_u).
        std_rescale: r of `cfg_std_rescale` (0 disables it).

    Returns:
        `SdsTarget`.
    """
    z = latents.detach().float()
    ac = denoiser.alphas_cumprod
    noisy = noise_moving_frames(z, noise.float(), t, ac)  # [V, F, C, h, w]
    eps_c, eps_u = denoiser.predict_noise(noisy, t, cond)
    eps = classifier_free_guidance(eps_c.float(), eps_u.float(), guidance_scale)
    x0 = predict_x0(eps, noisy, t, ac)  # [V, F, C, h, w]
    if std_rescale > 0.0:
        x0 = cfg_std_rescale(x0, predict_x0(eps_c.float(), noisy, t, ac), std_rescale)
    x0 = torch.cat([z[:, :1], x0[:, 1:]], dim=1)
    return SdsTarget(x0=x0, noisy=noisy, t=t)


def sds_loss(
    denoiser: SdsDenoiser,
    latents: Tensor,
    cond: SdsCondition,
    t: int,
    noise: Tensor,
    guidance_scale: float,
    std_rescale: float,
) -> tuple[Tensor, SdsTarget]:
    """The full 4D-SDS loss of latents [V, F, C, h, w] (unweighted; the stage multiplies by λ_sds).

    Returns:
        (scalar loss with gradients into `latents`, the `SdsTarget` it was measured against).

    Examples:
        >>> s = RefineSettings(prompt="a dog runs")                                         # doctest: +SKIP
        >>> loss, target = sds_loss(denoiser, z, cond, 100, eps, s.guidance_scale, s.std_rescale)  # doctest: +SKIP
        >>> (s.lambda_sds * loss).backward()                                                # doctest: +SKIP
    """
    target = sds_target(denoiser, latents, cond, t, noise, guidance_scale, std_rescale)
    return x0_reconstruction_loss(latents, target.x0), target


__all__ = [
    "GraphsGuidance",
    "PreparesCondition",
    "SdsCondition",
    "SdsDenoiser",
    "SdsTarget",
    "cfg_std_rescale",
    "classifier_free_guidance",
    "noise_moving_frames",
    "predict_x0",
    "sample_timestep",
    "sds_loss",
    "sds_target",
    "timestep_range",
    "x0_reconstruction_loss",
]
