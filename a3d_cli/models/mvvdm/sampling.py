"""MV-VDM's sampling loop, model-free: DDIM + classifier-free guidance + clean frame 0 + FreeInit.

The noise predictor is any ``eps_fn(x, t) -> eps`` on ``[B, V, F, C, h, w]`` batches, where B = 2 holds
(unconditional, conditional) when guidance is on and B = 1 holds the conditional branch otherwise. This
keeps the loop testable with analytic denoisers and reusable by other samplers.

Per pass: frame 0 of every view is the clean condition latent; frames 1…F−1 start from noise; after every
DDIM step frame 0 is overwritten with the condition again (Animate3D's I2V recipe). FreeInit re-noises
frames 1…F−1 only, between passes.

Nothing in a DDIM step waits on the GPU: the scheduler reads its ᾱ table with a host integer timestep
(diffusers' `DDIMScheduler.step` takes either; a device tensor would make it copy the timestep back and
test it on the host every step), while the noise predictor gets the same timestep as a 0-d device tensor.
With `graphed_guide`, the guided prediction (the CFG-batched UNet call and the guidance blend, fixed shapes)
is recorded once as a CUDA graph (`a3d_cli.models.speed.cuda_graph`) and replayed for every later step of
every FreeInit pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from a3d_cli.models.freeinit import FreeInitConfig, low_pass_filter, reinitialize
from a3d_cli.models.mvvdm.shape import NUM_FRAMES
from a3d_cli.models.speed.cuda_graph import GraphedFunction

EpsFn = Callable[[Tensor, Tensor], Tensor]
GuideFn = Callable[[Tensor, Tensor], Tensor]  # (latents [V, F, C, h, w], t 0-d) -> guided ε [V, F, C, h, w]
StepCallback = Callable[[int, int, Tensor], None]  # (pass index, step index, latents [V, F, C, h, w])


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings (defaults: Animate3D's `configs/inference/inference.yaml`)."""

    steps: int = 25
    """DDIM steps per pass."""
    guidance_scale: float = 7.5
    """CFG scale s: ε = ε_u + s·(ε_c − ε_u); s ≤ 1 runs the conditional branch only."""
    num_frames: int = NUM_FRAMES
    """Frames per view, frame 0 being the clean condition."""
    freeinit: FreeInitConfig = field(default_factory=FreeInitConfig)
    """FreeInit settings; `freeinit.passes` denoising loops in total."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2 (frame 0 is the condition), got {self.num_frames}")

    @property
    def guided(self) -> bool:
        return self.guidance_scale > 1.0

    @property
    def unet_evaluations(self) -> int:
        """UNet calls of one video (a CFG pair is one batched call)."""
        return self.steps * self.freeinit.passes


def classifier_free_guidance(eps_uncond: Tensor, eps_cond: Tensor, scale: float) -> Tensor:
    """ε_u + s·(ε_c − ε_u)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def guided_eps(eps_fn: EpsFn, x: Tensor, t: Tensor, scale: float) -> Tensor:
    """One (CFG-batched) noise prediction for a single video.

    Args:
        x: [V, F, C, h, w] latents.

    Returns:
        [V, F, C, h, w] float32 guided noise.
    """
    if scale > 1.0:
        eps = eps_fn(torch.stack([x, x]), t).float()  # [2, V, F, C, h, w]: (uncond, cond)
        return classifier_free_guidance(eps[0], eps[1], scale)
    return eps_fn(x[None], t)[0].float()


def denoise(
    eps_fn: EpsFn,
    latents: Tensor,  # [V, F, C, h, w] float32, frame 0 = condition
    cond: Tensor,  # [V, C, h, w] clean condition latent
    scheduler,  # a diffusers scheduler with timesteps already set
    guidance_scale: float,
    on_step: Callable[[int, Tensor], None] | None = None,
    guide: GuideFn | None = None,
) -> Tensor:
    """One full DDIM pass (η = 0) with frame 0 pinned to the condition.

    Args:
        guide: the guided prediction to call (default `guided_eps(eps_fn, ·, ·, guidance_scale)`; the
            sampler passes a CUDA-graph replay of it).

    Returns:
        [V, F, C, h, w] float32 clean latents.
    """
    if guide is None:

        def guide(x: Tensor, t: Tensor) -> Tensor:
            return guided_eps(eps_fn, x, t, guidance_scale)

    x = latents.float().clone()
    x[:, 0] = cond
    timesteps = scheduler.timesteps.to(x.device)  # [T] for the network, as 0-d views
    host_steps = [int(t) for t in scheduler.timesteps.tolist()]  # for the scheduler's table lookups
    for i, step_t in enumerate(host_steps):
        model_in = scheduler.scale_model_input(x, step_t)
        eps = guide(model_in, timesteps[i])
        x = scheduler.step(eps, step_t, x, eta=0.0).prev_sample.float()
        x[:, 0] = cond  # the condition frame stays clean
        if on_step is not None:
            on_step(i, x)
    return x


def sample_latents(
    eps_fn: EpsFn,
    cond: Tensor,  # [V, C, h, w]
    scheduler,
    config: SamplingConfig,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    guide: GuideFn | None = None,
) -> Tensor:
    """Sample one multi-view video latent, with FreeInit between passes.

    Randomness, in order: the initial noise of frames 1…F−1, then one fresh noise draw per FreeInit
    re-initialisation, all from `generator` on the CPU (so a seed gives the same noise on every device).

    Args:
        guide: the guided prediction (default: `guided_eps` over `eps_fn`); `graphed_guide` makes the
            CUDA-graph replay of it, shared by every step of every pass.

    Returns:
        [V, F, C, h, w] float32 clean latents; frame 0 equals `cond`.
    """
    cond = cond.float()
    v, c, h, w = cond.shape
    rest = (v, config.num_frames - 1, c, h, w)  # frames 1…F−1
    device = cond.device
    noise0 = torch.randn(rest, generator=generator, dtype=torch.float32).to(device)  # [V, F−1, C, h, w]
    fi = config.freeinit
    lpf = low_pass_filter(
        config.num_frames - 1, h, w, fi.method, fi.order, fi.spatial_stop, fi.temporal_stop, fi.grid
    )
    alpha_bar_T = float(scheduler.alphas_cumprod[-1])

    x = torch.cat([cond[:, None], noise0 * scheduler.init_noise_sigma], dim=1)  # [V, F, C, h, w]
    for k in range(fi.passes):
        if k > 0:
            fresh = torch.randn(rest, generator=generator, dtype=torch.float32).to(device)
            x = torch.cat([cond[:, None], reinitialize(x[:, 1:], noise0, fresh, alpha_bar_T, lpf)], dim=1)
        scheduler.set_timesteps(config.steps, device=device)

        def on_step(i: int, lat: Tensor, k: int = k) -> None:
            if callback is not None:
                callback(k, i, lat)

        x = denoise(eps_fn, x, cond, scheduler, config.guidance_scale, on_step, guide)
    return x


def graphed_guide(eps_fn: EpsFn, guidance_scale: float) -> GraphedFunction:
    """The guided prediction as a `GraphedFunction`: its first call runs eagerly, later calls replay a graph.

    `eps_fn` must keep `GraphedFunction`'s contract (CUDA tensors, fixed shapes, no host reads); drop the
    returned object once sampling is over to free the recording's memory.
    """

    def guided(x: Tensor, t: Tensor) -> Tensor:
        return guided_eps(eps_fn, x, t, guidance_scale)

    return GraphedFunction(guided, eager_calls=1)
