"""Refining a motion field with 4D score distillation: the optimisation behind `a3d sds` (Animate3D §3.4).

Pure domain code, with no run folder: the stage (`a3d_cli.stages.sds`) reads the static splats and the
coarse motion, builds an `SdsRefiner` and calls `refine_motion`; benchmarks and profilers use the refiner
directly. Every step (Animate3D `custom/threestudio-animate3d/configs/refine_frame_16.yaml`):

1. evaluate the motion field once for all 16 frames (positions do not depend on the view);
2. SDS branch: render a random set of 4 orthogonal views × 16 frames at 256², encode them with the VAE
   (gradients flow through the encoder; frame 0 — the static model — without gradients), and take the
   x0-reconstruction 4D-SDS loss (`a3d_cli.models.sds`), weight 0.01;
3. reconstruction branch: render the 4 fixed MV-VDM views × frames 1–15 and compare with the coarse
   motion's renders of the same views (colour and mask MSE, weight 100 each), plus ARAP over frames 1–15
   (weight 12);
4. one Adam step on the motion field only (grid 0.01, Δ heads 1e-4, global head 1e-3).

Differences from the reference, on purpose: ARAP scores frames 1–15 (the reference, by a variable mix-up,
scores frames 0–14 of a random view; frame 0 adds nothing, so only frame 15 differs), and the VAE encoder
runs in chunks of `vae_chunk` renders, each either kept for the backward pass or recomputed in it (activation
checkpointing) as memory allows (`vae_keep`): this changes memory and speed, not the numbers.

Examples:
    >>> refiner = SdsRefiner(static, refined_field(coarse, True, 0), denoiser, RefineSettings(prompt="a dog"), 0)  # doctest: +SKIP
    >>> history = refine_motion(refiner, steps=200)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from a3d_cli.errors import OptionError, require_finite_options
from a3d_cli.io.manifest import RESULT_NEUTRAL
from a3d_cli.models.mvvdm.shape import RESOLUTION
from a3d_cli.render.random_cameras import RandomCameraConfig

if TYPE_CHECKING:
    from torch import Tensor

    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_field import MotionField, MotionOutput
    from a3d_cli.models.sds import SdsDenoiser
    from a3d_cli.progress import Progress
    from a3d_cli.render.cameras import CameraSet

LOSS_TERMS = ("total", "sds", "rgb", "mask", "arap")
"""The weighted loss terms of one step, in the order the history records them."""


@dataclass(frozen=True)
class RefineSettings:
    """Every knob of one SDS refinement step. Defaults are the reference's refine-stage values
    (yanqinJiang/Animate3D `custom/threestudio-animate3d/configs/refine_frame_16.yaml` and
    `custom/threestudio-animate3d/guidance/animatemv_guidance.py`), written here only: `a3d sds`, `a3d animate` and the
    SDS math (`a3d_cli.models.sds`, which takes them as arguments) read them from this class."""

    prompt: str
    """What the object does ("a dog wags its tail"); the text condition of MV-VDM."""
    negative_prompt: str = ""
    """Text of the unconditional branch (the reference: empty)."""
    guidance_scale: float = 5.0
    """s in ε_c + s (ε_c - ε_u)."""
    std_rescale: float = 0.25
    """Blend weight of the CFG-std rescale of the x0 estimate (0 = off)."""
    min_step_percent: float = 0.02
    """Lowest diffusion timestep, as a fraction of the model's training steps (0.02 → t = 20)."""
    max_step_percent: float = 0.2
    """Highest diffusion timestep fraction (0.2 → t = 200)."""
    lambda_sds: float = 0.01
    """Weight of the 4D-SDS loss."""
    lambda_rgb: float = 100.0
    """Weight of the colour MSE against the coarse motion's renders."""
    lambda_mask: float = 100.0
    """Weight of the silhouette MSE against the coarse motion's renders."""
    lambda_arap: float = 12.0
    """Weight of the as-rigid-as-possible energy (k-NN neighbourhoods of the static splats)."""
    arap_neighbours: int = 3
    """Neighbours per splat in the ARAP energy."""
    arap_sample_points: int = 512
    """Splats scored by ARAP per step (drawn with replacement; 0 = all)."""
    render_size: int = RESOLUTION
    """Side in pixels of the SDS renders (MV-VDM's resolution)."""
    target_size: int = 1024
    """Side in pixels of the reconstruction-branch renders and their targets (the reference: 1024)."""
    cameras: RandomCameraConfig = field(default_factory=RandomCameraConfig)
    """Distributions of the random SDS camera sets (elevation 0–30°, fov 15–60°, relative distance 0.8–1)."""
    grid_lr: float = 0.01
    """Adam learning rate of the HexPlane grids."""
    head_lr: float = 1e-4
    """Adam learning rate of the Δposition/Δrotation/Δscale heads."""
    global_lr: float = 1e-3
    """Adam learning rate of the global rigid-motion heads."""
    vae_chunk: int = 16
    """Renders per VAE-encoder chunk; 0 = one chunk, every activation kept (`vae_keep` is then moot)."""
    vae_keep: int | None = field(default=None, metadata=RESULT_NEUTRAL)
    """Renders (from the first, in whole chunks) whose VAE-encoder activations are kept for the backward pass; the
    other chunks are recomputed there (activation checkpointing). None = as many as the GPU's spare memory holds,
    decided after the first step (none on the CPU); 0 = recompute all (the least memory). Result-neutral: a
    finished stage does not run again when only this changes."""
    cuda_graph: bool = field(default=True, metadata=RESULT_NEUTRAL)
    """On CUDA, replay the denoiser's guided call from a CUDA graph once the first step has shown that the
    recording fits beside the step's memory (`SdsRefiner`): same kernels and numbers, no launch gaps. Result-neutral."""

    def __post_init__(self) -> None:
        require_finite_options(self, {"guidance_scale": "--guidance"})  # a `< 0` check cannot see NaN
        if not self.prompt.strip():
            raise OptionError(
                "The SDS prompt is empty.", hint='Say what the object does: --prompt "a dog wags its tail".'
            )
        if not 0.0 <= self.min_step_percent <= self.max_step_percent <= 1.0:
            raise OptionError(
                f"The timestep range {self.min_step_percent}–{self.max_step_percent} is not inside 0–1 in increasing order.",
                hint="Use e.g. --min-step-percent 0.02 --max-step-percent 0.2.",
            )
        if not 0.0 <= self.std_rescale <= 1.0:
            raise OptionError(f"--std-rescale must be in [0, 1], got {self.std_rescale}.")
        for name in ("lambda_sds", "lambda_rgb", "lambda_mask", "lambda_arap", "grid_lr", "head_lr", "global_lr"):
            if getattr(self, name) < 0:
                raise OptionError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}.")
        for name in ("render_size", "target_size"):
            if getattr(self, name) < 8 or getattr(self, name) % 8:
                raise OptionError(
                    f"--{name.replace('_', '-')} must be a multiple of 8 (the VAE downsamples by 8), got {getattr(self, name)}."
                )
        for name, least in (("vae_chunk", 0), ("arap_sample_points", 0), ("arap_neighbours", 1)):
            if getattr(self, name) < least:
                raise OptionError(f"--{name.replace('_', '-')} must be >= {least}, got {getattr(self, name)}.")
        if self.vae_keep is not None and self.vae_keep < 0:
            raise OptionError(f"--vae-keep must be auto or >= 0, got {self.vae_keep}.")


# -- rendering --------------------------------------------------------------------------------------------------------


def render_motion(static: Gaussians, motion: MotionOutput, cams: CameraSet, size: int) -> tuple[Tensor, Tensor]:
    """Render F moved frames from V cameras in one rasterizer call, on grey, view-major.

    Args:
        static: the N static splats (opacities and colours are frozen).
        motion: the field's output for F frames (means/quats/scales [F, N, ...]).
        cams: V cameras.
        size: square image side.

    Returns:
        (rgb [V, F, 3, H, W], alpha [V, F, 1, H, W]), differentiable w.r.t. the motion.
    """
    from a3d_cli.device import to_device_async
    from a3d_cli.render.splats import render_splats

    dev = static.means.device
    viewmats, ks = to_device_async(cams.viewmats, dev), to_device_async(cams.Ks(size, size), dev)  # no host wait
    rgb, alpha = render_splats(static, motion.means, motion.quats, motion.scales, viewmats, ks, size)
    # rgb [F, V, H, W, 3], alpha [F, V, H, W]
    return rgb.permute(1, 0, 4, 2, 3), alpha.transpose(0, 1)[:, :, None]


def coarse_targets(rgb: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """The reconstruction targets made from the coarse motion's renders, as the reference reads them back.

    The reference saves the coarse renders as RGBA PNGs and loads them with mask = alpha > 0.5 and the
    colour composited on grey through that mask.

    Args:
        rgb: [V, F, 3, H, W] renders on grey.
        alpha: [V, F, 1, H, W].

    Returns:
        (target rgb [V, F, 3, H, W], target mask [V, F, 1, H, W]), detached.
    """
    from a3d_cli.render.cameras import MVVDM_BACKGROUND

    mask = (alpha.detach() > 0.5).to(rgb.dtype)  # [V, F, 1, H, W]
    return rgb.detach() * mask + MVVDM_BACKGROUND * (1 - mask), mask


# -- the denoiser -----------------------------------------------------------------------------------------------------


def encode_checkpointed(denoiser: SdsDenoiser, images: Tensor, noise: Tensor, chunk: int, keep: int = 0) -> Tensor:
    """VAE-encode with gradients chunk by chunk, keeping the first chunks' activations and recomputing the
    others' in the backward pass (activation checkpointing).

    Why: the encoder's activations for 60 renders at 256² take tens of GB, and recomputing them costs a forward
    pass. The chunks are the same whichever are kept, so the numbers do not depend on `keep`.

    Args:
        images: [B, 3, H, W] in [0, 1].
        noise: [B, C, h, w] posterior draws (fixed, so the recomputation matches).
        chunk: renders per chunk; 0 = plain autograd over all of them at once (everything kept).
        keep: renders whose activations are kept, counting whole chunks from the first (rounded down).

    Returns:
        [B, C, h, w] latents.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    if chunk <= 0 or not torch.is_grad_enabled() or not images.requires_grad:
        return denoiser.encode(images, noise)
    parts = [
        denoiser.encode(images[a:b], noise[a:b])
        if kept
        else checkpoint(denoiser.encode, images[a:b], noise[a:b], use_reentrant=False)
        for a, b, kept in encoder_chunks(images.shape[0], chunk, keep)
    ]
    return torch.cat(parts, dim=0)


def encoder_chunks(renders: int, chunk: int, keep: int) -> list[tuple[int, int, bool]]:
    """(start, end, kept) of each chunk `encode_checkpointed` encodes: a chunk is kept when it lies whole within
    the first `keep` renders; `chunk` <= 0 is one chunk of everything, kept."""
    if chunk <= 0:
        return [(0, renders, True)]
    return [(a, min(a + chunk, renders), min(a + chunk, renders) <= keep) for a in range(0, renders, chunk)]


def kept_render_count(renders: int, chunk: int, keep: int) -> int:
    """Renders whose activations `encode_checkpointed` keeps."""
    return sum(b - a for a, b, kept in encoder_chunks(renders, chunk, keep) if kept)


def affordable_kept_renders(
    denoiser: SdsDenoiser, size: int, renders: int, chunk: int, device: str, set_aside: int = 0
) -> int:
    """How many renders' VAE-encoder activations fit in this process's spare GPU memory, less `set_aside` bytes
    promised elsewhere (0 off CUDA).

    Measured, not estimated: one chunk of blank renders is encoded with gradients and the allocator says what
    that holds (`a3d_cli.models.activation_memory`). A chunk's shape is one the step encodes anyway, so a
    compiled encoder (`--compile`) is not compiled again for it. The spare memory counts from the stage's peak
    so far, so call this after a step has run with every chunk recomputed.
    """
    import torch

    from a3d_cli.models.activation_memory import held_after_forward, spare_bytes

    spare = spare_bytes(device)
    if spare is None or spare <= set_aside:
        return 0
    spare -= set_aside
    batch = max(1, min(chunk, renders))
    c, h, w = denoiser.latent_shape(size, size)
    images = torch.zeros(batch, 3, size, size, device=device, requires_grad=True)
    try:
        held = held_after_forward(denoiser.encode, images, torch.zeros(batch, c, h, w, device=device))
    except torch.OutOfMemoryError:  # no room for even one chunk more: keep none
        held = None
    if not held:
        return 0
    return min(renders, spare * batch // held)


def sds_loss_of_renders(
    denoiser: SdsDenoiser,
    rgb: Tensor,
    cams: CameraSet,
    settings: RefineSettings,
    post: Tensor,
    t: int,
    noise: Tensor,
    keep: int = 0,
) -> Tensor:
    """The unweighted 4D-SDS loss of renders, with gradients into them: what one refinement step asks of MV-VDM.

    Frame 0 (the static model) is encoded without gradients and conditions the denoiser (its latents stay
    clean, its images feed the image encoder); frames 1…F-1 are encoded with gradients in chunks of
    `settings.vae_chunk`, the first `keep` renders' activations kept and the rest recomputed in the backward.

    Args:
        denoiser: the diffusion prior.
        rgb: [V, F, 3, H, W] renders in [0, 1].
        cams: the V cameras they were rendered from.
        settings: prompt, guidance scale, std rescale, VAE chunk.
        post: [V, F, C, h, w] standard-normal VAE posterior draws.
        t: the diffusion timestep.
        noise: [V, F-1, C, h, w] standard-normal diffusion noise for frames 1…F-1.
        keep: moving renders whose VAE-encoder activations are kept (`encode_checkpointed`).

    Returns:
        the scalar loss (`a3d_cli.models.sds.sds_loss`; the caller weights it by `lambda_sds`).
    """
    import torch

    from a3d_cli.models.sds import PreparesCondition, SdsCondition, sds_loss

    v, f = rgb.shape[:2]
    c, h, w = post.shape[-3:]
    cond = SdsCondition(settings.prompt, settings.negative_prompt, rgb[:, 0].detach(), cams)
    if isinstance(denoiser, PreparesCondition):  # its host-side work first, before the encoder is queued
        denoiser.prepare_condition(cond)
    with torch.no_grad():
        z0 = denoiser.encode(rgb[:, 0], post[:, 0])  # [V, C, h, w] static frame: no gradient
    moving = encode_checkpointed(
        denoiser,
        rgb[:, 1:].reshape(v * (f - 1), 3, *rgb.shape[-2:]),
        post[:, 1:].reshape(v * (f - 1), c, h, w),
        settings.vae_chunk,
        keep,
    )
    z = torch.cat([z0[:, None], moving.reshape(v, f - 1, c, h, w)], dim=1).float()  # [V, F, C, h, w]
    loss, _ = sds_loss(denoiser, z, cond, t, noise, settings.guidance_scale, settings.std_rescale)
    return loss


# -- the optimisation -------------------------------------------------------------------------------------------------


@dataclass
class StepLosses:
    """Weighted loss terms of one step (tensors, so reading them is the caller's choice of sync)."""

    total: Tensor
    sds: Tensor
    rgb: Tensor
    mask: Tensor
    arap: Tensor
    t: int


def refined_field(coarse: MotionField, scale_offsets: bool, seed: int) -> MotionField:
    """A copy of the coarse field, with a fresh zero-output Δscale head when `scale_offsets` asks for one."""
    import torch

    from a3d_cli.gaussians.motion_field import MotionField

    cfg = dataclasses.replace(coarse.config, use_delta_scale=scale_offsets or coarse.config.use_delta_scale)
    refined = MotionField(cfg, generator=torch.Generator().manual_seed(seed))
    missing, unexpected = refined.load_state_dict(coarse.state_dict(), strict=False)
    stray = [k for k in missing if not k.startswith("delta_scale.")] + list(unexpected)
    if stray:  # pragma: no cover - the two configs differ only in the Δscale head
        raise RuntimeError(f"coarse motion does not fit the refined field: {stray}")
    return refined


class SdsRefiner:
    """One motion field being refined: holds the optimiser, the fixed targets and the random sources.

    How many renders' VAE-encoder activations each step keeps (`vae_keep`) is the settings' number, or with
    `settings.vae_keep=None` none in the first step and then as many as the spare GPU memory holds
    (`affordable_kept_renders`). A step that runs out of GPU memory while keeping some is run again with none
    kept, from the same random state, and keeping stays off (`vae_keep_fell_back`): the result is the same.

    Args:
        static: N frozen splats on the device.
        field: the motion field to refine (its parameters are the only ones optimised).
        denoiser: the diffusion prior (frozen, no gradients); None only when `settings.lambda_sds` is 0.
        settings: loss weights, timestep range, render sizes, learning rates.
        seed: seeds cameras, timesteps and noise.
    """

    def __init__(
        self, static: Gaussians, field: MotionField, denoiser: SdsDenoiser | None, settings: RefineSettings, seed: int
    ) -> None:
        import torch

        from a3d_cli.gaussians.arap import ArapRegularizer
        from a3d_cli.models.sds import timestep_range
        from a3d_cli.render.cameras import mvvdm_cameras

        self.static, self.field, self.denoiser, self.settings = static, field, denoiser, settings
        dev = static.means.device
        self.device = dev
        self.num_frames = field.config.num_frames
        self.frames = torch.arange(self.num_frames)
        self.cpu_gen = torch.Generator().manual_seed(seed)  # cameras, timesteps
        self.dev_gen = torch.Generator(device=dev).manual_seed(seed + 1)  # noise, ARAP samples
        if denoiser is None and settings.lambda_sds > 0:
            raise ValueError("a denoiser is needed when lambda_sds > 0")
        num_train = 1000 if denoiser is None else denoiser.alphas_cumprod.shape[0]
        self.t_min, self.t_max = timestep_range(num_train, settings.min_step_percent, settings.max_step_percent)
        self.fixed_cams = mvvdm_cameras()
        with torch.no_grad():
            rgb, alpha = render_motion(static, field(static, self.frames), self.fixed_cams, settings.target_size)
        self.target_rgb, self.target_mask = coarse_targets(rgb[:, 1:], alpha[:, 1:])  # frames 1…F-1
        self.arap = ArapRegularizer.from_points(
            static.means, k=settings.arap_neighbours, sample_points=settings.arap_sample_points
        )
        groups = [
            {"params": field.grid_parameters(), "lr": settings.grid_lr},
            {"params": field.head_parameters(), "lr": settings.head_lr},
            {"params": field.global_parameters(), "lr": settings.global_lr},
        ]
        self.optimizer = torch.optim.Adam([g for g in groups if g["params"]], eps=1e-15)
        self.vae_keep = settings.vae_keep or 0
        """Moving renders whose VAE-encoder activations the next step keeps."""
        self.vae_keep_fell_back = False
        """A step ran out of GPU memory keeping activations and was run again without."""
        self._plan_vae_keep = settings.vae_keep is None and denoiser is not None and settings.vae_chunk > 0
        self._vae_keep_changed = False
        self.guided_graph = False
        """The denoiser was asked to record its guided call as a CUDA graph (decided after the first step)."""
        from a3d_cli.models.sds import GraphsGuidance

        graphs = isinstance(denoiser, GraphsGuidance)
        if graphs:
            denoiser.use_guided_graph(False)  # eager until this refiner's first step has shown that a recording fits
        self._plan_guided_graph = settings.cuda_graph and graphs
        self._graph_note: str | None = None
        self.graph_replays = 0
        """Guided calls the CUDA graph served (counted when `release_guided_graph` ends the refinement)."""
        self.graph_ran_out_of_memory = False
        """Recording the guided call ran out of GPU memory (noted when `release_guided_graph` ends the refinement)."""

    def sds_term(self, motion: MotionOutput) -> tuple[Tensor, int]:
        """The unweighted 4D-SDS loss of this step's random views (gradients into `motion`)."""
        import torch

        from a3d_cli.models.sds import sample_timestep
        from a3d_cli.render.random_cameras import sample_orthogonal_cameras

        s, den = self.settings, self.denoiser
        assert den is not None
        cams = sample_orthogonal_cameras(s.cameras, generator=self.cpu_gen)
        rgb, _ = render_motion(self.static, motion, cams, s.render_size)  # [V, F, 3, H, W]
        v, f = rgb.shape[:2]
        c, h, w = den.latent_shape(s.render_size, s.render_size)
        post = torch.randn(v, f, c, h, w, generator=self.dev_gen, device=self.device)  # VAE posterior draws
        t = sample_timestep(self.t_min, self.t_max, self.cpu_gen)
        noise = torch.randn(v, f - 1, c, h, w, generator=self.dev_gen, device=self.device)
        return sds_loss_of_renders(den, rgb, cams, s, post, t, noise, self.vae_keep), t

    def moving_renders(self) -> int:
        """Renders per step that the VAE encodes with gradients (views × frames 1…F-1)."""
        return self.settings.cameras.num_views * (self.num_frames - 1)

    def step(self) -> StepLosses:
        """One optimisation step of all loss terms (see the class docstring for the VAE activations kept)."""
        import torch

        if self.vae_keep > 0:
            state = (self.cpu_gen.get_state(), self.dev_gen.get_state())
            try:
                return self._step()
            except torch.OutOfMemoryError:
                pass  # retried below, once the failed step's tensors are gone with this frame's exception
            self.cpu_gen.set_state(state[0])
            self.dev_gen.set_state(state[1])
            self.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            self.vae_keep, self.vae_keep_fell_back, self._plan_vae_keep = 0, True, False
            self._vae_keep_changed = True
        losses = self._step()
        set_aside = self._record_guided_graph() if self._plan_guided_graph else 0
        if self._plan_vae_keep:
            self._plan_vae_keep, self._vae_keep_changed = False, True
            assert self.denoiser is not None
            s = self.settings
            self.vae_keep = affordable_kept_renders(
                self.denoiser, s.render_size, self.moving_renders(), s.vae_chunk, str(self.device), set_aside
            )
        return losses

    def _record_guided_graph(self) -> int:
        """After the first step: have the denoiser record its guided call as a CUDA graph when the recording
        (what the first call took, `guided_call_bytes`) fits in the spare GPU memory; it has the first claim on
        that memory, before the VAE activations. Returns the bytes set aside for it (0 when not recorded).

        Why the check: the recording keeps its memory for the whole stage, where the eager call gives it back
        before the backward pass; on a card that is only just big enough the stage would otherwise not fit.
        """
        from a3d_cli.models.activation_memory import spare_bytes
        from a3d_cli.models.sds import GraphsGuidance

        self._plan_guided_graph = False
        den = self.denoiser
        assert isinstance(den, GraphsGuidance)  # planned only for such a denoiser (__init__)
        spare = spare_bytes(str(self.device))
        if den.guided_call_bytes is None or spare is None:  # off CUDA: nothing to record
            return 0
        if spare < den.guided_call_bytes:
            self._graph_note = (
                "sds: too little spare GPU memory to record the guided call as a CUDA graph; it runs eagerly"
            )
            return 0
        den.use_guided_graph()
        self.guided_graph = True
        self._graph_note = "sds: recording the guided call as a CUDA graph, replayed from the third step on"
        return den.guided_call_bytes

    def release_guided_graph(self) -> None:
        """Drop the denoiser's recording of its guided call, keeping its counts here: a denoiser cached for the
        next job must not hold the recording's memory through the stages after this one."""
        from a3d_cli.models.sds import GraphsGuidance

        den = self.denoiser
        if isinstance(den, GraphsGuidance):
            self.graph_replays, self.graph_ran_out_of_memory = den.graph_replays, den.graph_ran_out_of_memory
            den.use_guided_graph(False)

    def take_memory_notes(self) -> list[str]:
        """The lines to log once the steps have decided or dropped keeping VAE activations (`vae_keep_message`)
        and recording the guided call; each is returned once."""
        notes = []
        if self._vae_keep_changed:
            self._vae_keep_changed = False
            notes.append(self.vae_keep_message())
        if self._graph_note is not None:
            notes.append(self._graph_note)
            self._graph_note = None
        return notes

    def vae_keep_message(self) -> str:
        """One line on the VAE activations the steps keep now (for the progress log when that changes)."""
        if self.vae_keep_fell_back:
            return "sds: out of GPU memory keeping VAE activations; recomputing them from here on (same result)"
        total = self.moving_renders()
        kept = kept_render_count(total, self.settings.vae_chunk, self.vae_keep)
        if kept == 0:
            why = "too little spare GPU memory to keep them" if self.device.type == "cuda" else "none kept on the CPU"
            return f"sds: recomputing the VAE encoder's activations in each backward pass ({why})"
        return f"sds: keeping the VAE encoder's activations of {kept} of {total} renders per step (spare GPU memory)"

    def _step(self) -> StepLosses:
        import torch.nn.functional as F  # noqa: N812

        s = self.settings
        motion = self.field(self.static, self.frames)  # [F, N, ...]
        zero = motion.means.new_zeros(())
        rgb_l, mask_l = zero, zero
        # the reconstruction branch first: its render reads a count back from the GPU (the rasterizer sizes its
        # tile lists), and here that wait is short; after the SDS branch it would drain the denoiser's work.
        # (The order in which autograd then sums the branches' gradients changes their last bits, not more.)
        if s.lambda_rgb > 0 or s.lambda_mask > 0:
            moving = dataclasses.replace(
                motion, means=motion.means[1:], quats=motion.quats[1:], scales=motion.scales[1:]
            )
            rgb, alpha = render_motion(self.static, moving, self.fixed_cams, s.target_size)  # [V, F-1, ...]
            rgb_l, mask_l = F.mse_loss(rgb, self.target_rgb), F.mse_loss(alpha, self.target_mask)
        sds, t = self.sds_term(motion) if s.lambda_sds > 0 else (zero, -1)
        arap = self.arap(motion.means[1:], generator=self.dev_gen) if s.lambda_arap > 0 else zero
        losses = StepLosses(
            total=zero,
            sds=s.lambda_sds * sds,
            rgb=s.lambda_rgb * rgb_l,
            mask=s.lambda_mask * mask_l,
            arap=s.lambda_arap * arap,
            t=t,
        )
        losses.total = losses.sds + losses.rgb + losses.mask + losses.arap
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.optimizer.step()
        return losses

    def render_fixed_views(self, size: int, first_frame: int = 0) -> Tensor:
        """The refined motion from MV-VDM's 4 fixed views, without gradients: rgb [V, F, 3, H, W]."""
        import torch

        with torch.no_grad():
            rgb, _ = render_motion(
                self.static, self.field(self.static, self.frames[first_frame:]), self.fixed_cams, size
            )
        return rgb

    def psnr_vs_coarse(self) -> float:
        """PSNR (dB) of the refined motion's fixed-view renders against the coarse motion's (frames 1…F-1)."""
        import torch

        mse = float(torch.nn.functional.mse_loss(self.render_fixed_views(self.settings.target_size, 1), self.target_rgb))
        return -10 * math.log10(max(mse, 1e-12))


def refine_motion(
    refiner: SdsRefiner, steps: int, *, log_every: int = 10, progress: Progress | None = None
) -> list[dict[str, float]]:
    """Run `steps` refinement steps; sample the mean loss terms every `log_every` steps. The denoiser's CUDA-graph
    recording, if any, is released at the end, even when a step fails (`SdsRefiner.release_guided_graph`).

    Args:
        refiner: the motion being refined.
        steps: optimisation steps.
        log_every: steps per history sample (one host sync each).
        progress: receives `start("sds", steps)` and `update(loss=…, sds=…, t=…)` per sample.

    Returns:
        History: one dict per sample with "step" and the mean of each of `LOSS_TERMS` over the interval.
    """
    import torch

    if progress is not None:
        progress.start("sds", total=steps)
    history: list[dict[str, float]] = []
    pending: list[StepLosses] = []
    try:
        for i in range(steps):
            pending.append(refiner.step())
            for note in refiner.take_memory_notes() if progress is not None else ():
                progress.log(note)
            if (i + 1) % log_every == 0 or i + 1 == steps:
                with torch.no_grad():  # one host sync per logging interval
                    terms = [torch.stack([p.total, p.sds, p.rgb, p.mask, p.arap]) for p in pending]
                    stacked = torch.stack(terms).mean(0).tolist()
                entry = dict(zip(LOSS_TERMS, stacked, strict=True))
                history.append({"step": i + 1, **entry})
                if progress is not None:
                    progress.update(len(pending), loss=entry["total"], sds=entry["sds"], t=float(pending[-1].t))
                pending.clear()
    finally:
        refiner.release_guided_graph()
    return history


def summarise_history(history: list[dict[str, float]]) -> dict[str, object]:
    """Each loss term at the start and the end (means of the first/last samples), and the whole curve."""
    if not history:
        return {"steps": 0}
    k = max(1, min(3, len(history) // 2))
    first = {key: sum(h[key] for h in history[:k]) / k for key in LOSS_TERMS}
    last = {key: sum(h[key] for h in history[-k:]) / k for key in LOSS_TERMS}
    return {
        "loss_start": first,
        "loss_end": last,
        "loss_curve": [{"step": h["step"], **{key: h[key] for key in LOSS_TERMS}} for h in history],
    }


__all__ = [
    "LOSS_TERMS",
    "RefineSettings",
    "SdsRefiner",
    "StepLosses",
    "coarse_targets",
    "encode_checkpointed",
    "refine_motion",
    "refined_field",
    "render_motion",
    "sds_loss_of_renders",
    "summarise_history",
]
