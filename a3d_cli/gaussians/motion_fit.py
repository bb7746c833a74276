"""Fitting a motion field to a multi-view video: the optimisation behind `a3d reconstruct` (Animate3D §3.3).

Pure domain code, with no run folder: the reconstruct stage's work (`a3d_cli.gaussians.video_fit`) calls
`fit_motion` here and scores its result with `score_fit`; benchmarks and the mesh path call it directly. The static
splats stay frozen and only the motion field trains. Each step renders the active frames × V views in one
rasterizer call and minimises `λ_rgb·MSE(render, target on grey) + λ_mask·MSE(alpha, mask) + λ_arap·prior`, the
prior being ARAP or the affine one (`motion_prior`).
Frames are added progressively, one every `steps_per_frame` steps (frame 0 is the static model and never
trained).

Examples:
    >>> fit = fit_motion(static, cameras, targets, masks, FitSettings(steps=100))  # doctest: +SKIP
    >>> rgb, alpha = render_all_frames(fit.field, static, cameras, 256)  # doctest: +SKIP
    >>> scores = score_fit(fit.field, static, cameras, targets)  # PSNR per view, and the static baseline's  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from a3d_cli.gaussians.fit_settings import FitSettings  # torch-free, re-exported
from a3d_cli.models.mvvdm.shape import NUM_FRAMES
from a3d_cli.phase_clock import PhaseClock
from a3d_cli.render.splats import render_splats

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from a3d_cli.gaussians.arap import NeighbourPrior
    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_field import MotionField
    from a3d_cli.progress import Progress
    from a3d_cli.render.cameras import CameraSet


# --- the fit -------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """Output of `fit_motion`.

    Attributes:
        field: the trained motion field (on the fit device).
        losses: per-step total loss (host floats, recorded every `log_every` steps).
        seconds: wall time of the optimisation loop.
        profile: seconds per phase when profiling was asked for (data, field, raster, loss, backward).
        graph_recordings: frame counts whose step was recorded as CUDA graphs (0 = eager throughout).
        graph_seconds: wall seconds of `seconds` spent recording them (and the optimiser step).
        graph_failure: why a recording failed, after which that part ran eagerly: the step's, then the
            optimiser step's, joined by "; " ("" = none failed).
        optimizer_replays: optimiser steps replayed from their CUDA graph (0 on the CPU, or where a
            parameter had no gradient at every step: then every step ran eagerly, which no failure reports).
        tile_list_overflows: times a whole-step recording's tile lists were found too short (and re-recorded
            longer); the steps between the overflow and its detection rendered without the lists' last entries.
    """

    field: MotionField
    losses: list[tuple[int, float]]
    seconds: float
    profile: dict[str, float]
    graph_recordings: int = 0
    graph_seconds: float = 0.0
    graph_failure: str = ""
    optimizer_replays: int = 0
    tile_list_overflows: int = 0


def active_frames(step: int, settings: FitSettings, generator: torch.Generator | None = None) -> list[int]:
    """Frames trained at `step`: the progressive schedule, then the per-step subset (host-side)."""
    import torch

    newest = min(step // settings.steps_per_frame, NUM_FRAMES - 2) + 1  # frames 1 … newest are active
    frames = list(range(1, newest + 1))
    k = settings.frames_per_step
    if k and len(frames) > k:
        earlier = torch.randperm(newest - 1, generator=generator)[: k - 1] + 1
        frames = sorted([*earlier.tolist(), newest])
    return frames


def motion_prior(rest: Tensor, settings: FitSettings) -> NeighbourPrior | None:
    """The local motion prior `settings.motion_prior` names, on the static positions rest [N, 3].

    None for the affine prior on 4 points or fewer: an affine map then explains every motion, so it costs nothing.
    """
    from a3d_cli.gaussians.arap import ArapRegularizer
    from a3d_cli.gaussians.local_affine import AFFINE_NEIGHBOURS, LocalAffineRegularizer

    if settings.motion_prior == "affine":
        if rest.shape[0] <= 4:
            return None
        k = settings.affine_neighbours or AFFINE_NEIGHBOURS  # the k-NN table holds at most N − 1 of them
        return LocalAffineRegularizer.from_points(rest, k=k, sample_points=settings.arap_samples)
    return ArapRegularizer.from_points(rest, k=settings.arap_neighbours, sample_points=settings.arap_samples)


def arap_weight(step: int, settings: FitSettings) -> float:
    """The ARAP weight at `step` (`FitSettings.arap_anneal`'s schedule; `lambda_arap` throughout when it is 1)."""
    return settings.lambda_arap * settings.arap_anneal ** (1.0 - 2.0 * step / max(settings.steps, 1))


def subsample_splats(static: Gaussians, max_splats: int, generator: torch.Generator) -> Gaussians:
    """At most `max_splats` random splats, scales enlarged by sqrt(N / M) so the surface stays covered.

    Why sqrt: splats sit on surfaces, so keeping M of N spreads them over the same area with N/M times
    the area each, i.e. sqrt(N/M) times the footprint radius.
    """
    import torch

    n = len(static)
    if max_splats <= 0 or n <= max_splats:
        return static
    idx = torch.randperm(n, generator=generator)[:max_splats].sort().values.to(static.means.device)
    sub = static.subset(idx)
    return sub.with_(scales=sub.scales * math.sqrt(n / max_splats))


def render_frames(
    field_or_none: MotionField | None,
    static: Gaussians,
    frames: list[int],
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    size: int,
    grad_mask: Tensor | None = None,  # [F, N]
) -> tuple[Tensor, Tensor, Tensor]:
    """Render frames × views in one rasterizer call.

    Returns:
        rgb [F, V, H, W, 3] on the grey background, alpha [F, V, H, W], deformed means [F, N, 3].
    """
    f = len(frames)
    if field_or_none is None:
        means = static.means[None].expand(f, -1, -1)
        quats, scales = static.quats, static.scales
    else:
        out = field_or_none(static, frames, grad_mask=grad_mask)
        means, quats, scales = out.means, out.quats, out.scales
    rgb, alpha = render_splats(static, means, quats, scales, viewmats, Ks, size)
    return rgb, alpha, means


def fit_motion(
    static: Gaussians,
    cameras: CameraSet,
    targets: Tensor,  # [V, F, H, W, 3]
    masks: Tensor,  # [V, F, H, W]
    settings: FitSettings,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    arap: NeighbourPrior | None = None,
    profile: bool = False,
    log_every: int = 10,
    on_step: Callable[[int, MotionField], None] | None = None,
) -> FitResult:
    """Fit a motion field to multi-view video targets (the reconstruct stage's optimisation loop).

    Usable on its own (benchmarks, the mesh path): everything lives on `static`'s device.

    Args:
        static: N frozen splats (the ones rendered; subsample before calling if needed).
        cameras: the V video cameras.
        targets: [V, F, H, W, 3] frames on the grey background, H = W = the render size.
        masks: [V, F, H, W] foreground masks in [0, 1].
        settings: schedule, learning rates, loss weights, field architecture.
        seed: seeds the field init and every random draw of the loop.
        progress: receives `update(loss=…, psnr=…)` every `log_every` steps.
        arap: the local motion prior; default `settings.motion_prior`'s k-NN scheme on `static.means`.
        profile: time the phases (synchronising the device; slower): data, field, raster, loss (image
            losses + ARAP), backward (+ optimiser step).
        on_step: called after each optimiser step with (step, field) — for baselines and tests.

    Returns:
        FitResult with the trained field.
    """
    import torch

    from a3d_cli.gaussians.motion_field import MotionField
    from a3d_cli.gaussians.motion_step import FitStep, OptimizerStep, graphs_usable

    device = static.means.device
    v, nf, h, w, _ = targets.shape
    if (v, nf) != (len(cameras), NUM_FRAMES) or h != w or masks.shape != targets.shape[:-1]:
        raise ValueError(
            f"targets must be [{len(cameras)}, {NUM_FRAMES}, S, S, 3] with masks [V, F, S, S]; got {list(targets.shape)}, {list(masks.shape)}"
        )
    gen = torch.Generator().manual_seed(seed)
    dev_gen = torch.Generator(device=device).manual_seed(seed + 1)
    motion = MotionField(settings.field, generator=gen).to(device)
    motion.hexplane_backend = settings.hexplane_backend
    graphed = settings.cuda_graphs and graphs_usable(device)
    opt = torch.optim.Adam(
        [
            {"params": motion.grid_parameters(), "lr": settings.lr_grid},
            {"params": motion.head_parameters(), "lr": settings.lr_heads},
            {"params": motion.global_parameters(), "lr": settings.lr_global},
        ],
        lr=0.0,
        eps=settings.adam_eps,
        fused=device.type == "cuda",  # one kernel per group instead of a dozen per group on CUDA
        capturable=graphed,  # lets `OptimizerStep` record it (the fused kernel's numbers are the same)
    )
    if arap is None and settings.lambda_arap > 0:
        arap = motion_prior(static.means, settings)
    prog = progress
    step_fn = FitStep(
        motion,
        static,
        cameras.viewmats.to(device),  # [V, 4, 4]
        cameras.Ks(w, h).to(device),  # [V, 3, 3]
        w,
        targets.to(device).transpose(0, 1).contiguous(),  # [F, V, H, W, 3]
        masks.to(device).transpose(0, 1).contiguous(),  # [F, V, H, W]
        settings,
        arap,
        cuda_graphs=settings.cuda_graphs,
        on_notice=None if prog is None else prog.log,
    )
    opt_step = OptimizerStep(opt, graphed, on_notice=None if prog is None else prog.log)
    clock = PhaseClock(device, ("data", "field", "raster", "loss", "backward"))

    if prog is not None:
        prog.start("reconstruct: fitting motion", total=settings.steps)
    losses: list[tuple[int, float]] = []
    start = time.perf_counter()
    pending = 0
    for step in range(settings.steps):
        clock.restart()
        frames = active_frames(step, settings, gen)  # host integers (a CPU generator): nothing is read back
        if profile:
            clock.mark("data")
        opt.zero_grad(set_to_none=True)
        step_fn.set_arap_weight(arap_weight(step, settings))  # a host float: nothing launched if unchanged
        loss, loss_rgb = step_fn(frames, dev_gen, clock.mark if profile else None)
        # the losses outlive the step only as values (read at log intervals): their autograd graph goes now
        loss, loss_rgb = loss.detach(), loss_rgb.detach()
        opt_step()
        if profile:
            clock.mark("backward")
        pending += 1
        if on_step is not None:
            on_step(step, motion)
        if (step + 1) % log_every == 0 or step + 1 == settings.steps:
            # the loop's only host read: one per log interval, both values in one transfer
            lv, mse = step_fn.read_back(loss, loss_rgb)
            losses.append((step + 1, lv))
            if prog is not None:
                prog.update(pending, loss=lv, psnr=-10 * math.log10(max(mse, 1e-12)), frames=float(frames[-1]))
            pending = 0
    seconds = time.perf_counter() - start
    motion.eval()
    return FitResult(
        field=motion,
        losses=losses,
        seconds=seconds,
        profile=clock.seconds if profile else {},
        graph_recordings=step_fn.recordings,
        graph_seconds=step_fn.record_seconds + opt_step.record_seconds,
        graph_failure="; ".join(f for f in (step_fn.failure, opt_step.failure) if f),
        optimizer_replays=opt_step.replays,
        tile_list_overflows=step_fn.list_overflows,
    )


def render_all_frames(
    motion: MotionField | None,
    static: Gaussians,
    cameras: CameraSet,
    size: int,
    chunk: int = 4,
    frame_count: int = NUM_FRAMES,
    on_device: bool = False,
) -> tuple[Tensor, Tensor]:
    """Frames 0 … frame_count − 1 (every frame by default) from every camera, without gradients.

    Returns:
        rgb [V, F, H, W, 3] on grey and alpha [V, F, H, W], on the CPU (on the splats' device with `on_device`).
    """
    import torch

    from a3d_cli.device import to_device_async

    device = static.means.device
    viewmats, Ks = to_device_async(cameras.viewmats, device), to_device_async(cameras.Ks(size, size), device)
    rgbs, alphas = [], []
    with torch.no_grad():
        for start in range(0, frame_count, chunk):
            frames = list(range(start, min(start + chunk, frame_count)))
            rgb, alpha, _ = render_frames(motion, static, frames, viewmats, Ks, size)
            rgbs.append(rgb)
            alphas.append(alpha)
    rgb, alpha = torch.cat(rgbs).transpose(0, 1), torch.cat(alphas).transpose(0, 1)
    return (rgb, alpha) if on_device else (rgb.cpu(), alpha.cpu())


def psnr(a: Tensor, b: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Peak signal-to-noise ratio (peak 1) of two images in [0, 1], reduced over `dims`."""
    import torch

    mse = (a - b).square().mean(dim=dims)
    return -10 * torch.log10(mse.clamp_min(1e-12))


@dataclass
class FitScores:
    """How well a fitted motion reproduces its video, against the static model as the baseline.

    Frame 0 is the static model itself (never trained), so the scores cover frames 1 … F − 1.

    Attributes:
        renders: [V, F, S, S, 3] every frame from every camera, the motion applied, on grey (CPU).
        psnr_per_view: [V] PSNR of the renders against the targets.
        psnr_static: [V] PSNR of the unmoved splats against the same targets: what the motion must beat.
    """

    renders: Tensor
    psnr_per_view: Tensor
    psnr_static: Tensor


def score_fit(motion: MotionField, static: Gaussians, cameras: CameraSet, targets: Tensor) -> FitScores:
    """Render every frame moved by `motion`, and the unmoved splats once (they look the same in every
    frame), at the targets' size, and score both.

    Args:
        motion: the fitted field.
        static: the splats to move (all of them, not only the subset the fit trained on).
        cameras: the V video cameras.
        targets: [V, F, S, S, 3] the frames the fit was given, on grey (CPU).
    """
    size, dims = targets.shape[2], (1, 2, 3, 4)
    # scored on the device, where the renders are: the host only copies the renders and 2 × V numbers back
    rgb, _ = render_all_frames(motion, static, cameras, size, on_device=True)  # [V, F, S, S, 3]
    still, _ = render_all_frames(None, static, cameras, size, frame_count=1, on_device=True)  # [V, 1, S, S, 3]
    truth = targets[:, 1:].to(rgb.device)
    moved, unmoved = psnr(rgb[:, 1:], truth, dims), psnr(still, truth, dims)  # still broadcasts over frames
    return FitScores(rgb.cpu(), moved.cpu(), unmoved.cpu())


__all__ = [
    "NUM_FRAMES",
    "FitResult",
    "FitScores",
    "FitSettings",
    "active_frames",
    "arap_weight",
    "fit_motion",
    "motion_prior",
    "psnr",
    "render_all_frames",
    "render_frames",
    "score_fit",
    "subsample_splats",
]
