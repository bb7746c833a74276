"""`reconstruct`: fit a motion field to a multi-view video — Animate3D's stage 1 (coarse 4DGS).

Reads `static/gaussians.ply` (from `a3d prepare`) and a video of 4 views × 16 frames: `RUN/mvvideo/` (from
`a3d mvvideo`) or any folder given as `video` with the same naming, `v{view}_f{frame:02d}.png`
(view 0..3, frame 00..15; `v{view}_f{frame}.png` without the zero is read too), RGB on the 0.5 grey
background (MV-VDM output) or RGBA, read by `a3d_cli.io.video_frames`. Writes:

    motion/coarse.safetensors     the fitted motion field (`a3d_cli.gaussians.motion_io` format)
    motion/coarse_preview.mp4     per frame: the 4 target views (top) above the 4 renders (bottom)

How (Animate3D, arXiv 2407.11398, §3.3; yanqinJiang/Animate3D
`custom/threestudio-animate3d/configs/motion_recon_frame_16.yaml`, `systems/animate3d.py`): the static splats stay frozen and only the motion field trains.
Each step renders the active frames × 4 views in one rasterizer call and minimises
`λ_rgb·MSE(render, target on grey) + λ_mask·MSE(alpha, mask) + λ_arap·prior`, the prior on the static splats'
k nearest neighbours (ARAP, or the affine one: `FitSettings.motion_prior`).
Frames are added progressively, one every `steps_per_frame` steps (frame 0 is the static model and never
trained). Frames without alpha get masks from `a3d_cli.io.masks` (known grey, border connectivity, the
static silhouette, temporal vote). Cameras come from `cameras.json` next to the frames, else
`static/views/cameras.json` (MV-VDM's fixed views).

Presets: "reference" (Animate3D's schedule: 800 steps at 256², all splats; for a GPU; with a coarse HexPlane
level, the affine motion prior annealed, and a heavier RGB loss), "quickstart" (CPU: fewer splats, 128², 2
frames per step, fewer steps) and "animate3d" (Animate3D's settings, every one). "auto" picks quickstart on the
CPU and reference on a GPU. Every knob is a field of `FitSettings`; the loop itself
(`fit_motion`) lives in `a3d_cli.gaussians.motion_fit`, and the phases around it (targets, fit, scoring,
each timed) in `a3d_cli.gaussians.video_fit`.

Examples:
    >>> run(Path("RUN"), ReconstructOptions(), Runtime(device="cuda"))  # doctest: +SKIP
    >>> run(Path("RUN"), ReconstructOptions(video="my_frames/", preset="quickstart", steps=100))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from a3d_cli.errors import OptionError
from a3d_cli.gaussians.fit_settings import FitSettings
from a3d_cli.gaussians.motion_field_config import MotionFieldConfig
from a3d_cli.io.paths import resolve_inside
from a3d_cli.io.video_frames import list_video_frames, read_cameras, read_video_frames
from a3d_cli.models.mvvdm.shape import FPS
from a3d_cli.run_layout import CAMERAS_JSON, COARSE_MOTION, COARSE_PREVIEW, MVVIDEO_DIR, STATIC_PLY, VIEWS_CAMERAS
from a3d_cli.stages import producers
from a3d_cli.stages.base import Runtime, StageContext, StageResult, run_stage
from a3d_cli.stages.reconstruct_defaults import DEFAULT_PRESET, DEFAULT_PREVIEW, PRESET_NAMES, PresetName

RECIPE = 1
"""The version of what `reconstruct` writes for given inputs and options: bump it with any change that alters
those files, so runs made before re-run `reconstruct` once (docs/ARCHITECTURE.md, "Recipes")."""
MASK_SIZE = 256  # frames larger than this and the fit resolution are reduced on read (masks work at this size)


# --- settings (the knobs are `FitSettings`, in `a3d_cli.gaussians.fit_settings`) -------------------------


REFERENCE_ARAP_ANNEAL = 4.0
"""The reference preset's `FitSettings.arap_anneal`: the prior's weight falls from 48 towards 3 (Animate3D: 12
throughout)."""
REFERENCE_AFFINE_NEIGHBOURS = 32
"""The reference preset's `FitSettings.affine_neighbours`, chosen for its fit on every splat of a prepared model."""
REFERENCE_LAMBDA_RGB = 300.0
"""The reference preset's `FitSettings.lambda_rgb` (Animate3D: 100, the same as the mask's)."""
ANIMATE3D_GRAD_FRACTION = 0.1
"""Animate3D's gradient sparsification (`FitSettings.grad_fraction`): the only setting where `FitSettings()` differs."""
_WITH_COARSE_LEVEL = MotionFieldConfig().with_coarse_level(True)
"""Animate3D's two HexPlane levels behind a coarse one (`COARSE_GRID`): the reference and quickstart presets' field."""

PRESETS: dict[str, tuple[str, FitSettings]] = {
    "reference": (
        "Animate3D's schedule and size (800 steps, 256², all splats, all active frames per step) with four measured "
        "changes (GPU): a coarse HexPlane level in front of its two, the affine motion prior on 32 neighbours instead "
        "of ARAP, its weight annealed from 4× towards ¼×, and the RGB loss weighted 300 instead of 100.",
        FitSettings(
            field=_WITH_COARSE_LEVEL,
            motion_prior="affine",
            affine_neighbours=REFERENCE_AFFINE_NEIGHBOURS,
            arap_anneal=REFERENCE_ARAP_ANNEAL,
            lambda_rgb=REFERENCE_LAMBDA_RGB,
        ),
    ),
    "quickstart": (
        "CPU: 300 steps, 128², at most 2000 splats, 2 frames per step, Δ-head LR 1e-3, the reference's field "
        "(coarse level included): sized for a CPU.",
        FitSettings(
            steps=300,
            steps_per_frame=18,
            frames_per_step=2,
            resolution=128,
            max_splats=2000,
            lr_heads=1e-3,
            field=_WITH_COARSE_LEVEL,
        ),  # fmt: skip
    ),
    "animate3d": (
        "Animate3D's `motion_recon_frame_16.yaml`, every setting: two HexPlane levels, ARAP at a constant 12, image "
        "gradients to a random 10 % of the splats per step.",
        FitSettings(grad_fraction=ANIMATE3D_GRAD_FRACTION),
    ),
}


@dataclass(frozen=True)
class ReconstructOptions:
    """Options of `a3d reconstruct` (None = the preset's value).

    Attributes:
        video: folder of `v{view}_f{frame:02d}.png` frames; None reads RUN/mvvideo/.
        preset: "auto" (quickstart on CPU, reference on GPU), "reference", "quickstart" or "animate3d".
        steps: optimisation steps (the progressive schedule is scaled to match).
        resolution: render/target size in pixels.
        max_splats: fit on at most this many splats (0 = all).
        frames_per_step: frames rendered per step (0 = all active frames).
        grad_fraction: fraction of splats receiving image-loss gradients per step.
        hexplane_backend: "torch" or "matmul" HexPlane sampling (see `FitSettings.hexplane_backend`).
        cuda_graphs: replay the step as CUDA graphs on CUDA (see `FitSettings.cuda_graphs`; None = the preset's, on).
        graph_frame_counts: frame counts the graphed step is recorded at (see `FitSettings.graph_frame_counts`;
            None = the preset's, 4, 8, 12 and 15; () = one recording per frame count).
        graph_whole_step: record the rasterizer inside the step's graph (`FitSettings.graph_whole_step`; None = the
            preset's, on).
        arap_anneal: the motion prior's weight schedule (`FitSettings.arap_anneal`; 1 = constant, Animate3D's).
        motion_prior: the local motion prior, "arap" or "affine" (`FitSettings.motion_prior`; None = the preset's).
        affine_neighbours: neighbours per point of the affine prior (`FitSettings.affine_neighbours`).
        coarse_level: True puts the coarse HexPlane level (`COARSE_GRID`) in front of the field's levels, False
            removes it (Animate3D's field); None = the preset's.
        preview: write motion/coarse_preview.mp4.
        settings: a complete `FitSettings` instead of a preset (the fields above still override it).
    """

    video: str | None = None
    preset: PresetName = DEFAULT_PRESET
    steps: int | None = None
    resolution: int | None = None
    max_splats: int | None = None
    frames_per_step: int | None = None
    grad_fraction: float | None = None
    hexplane_backend: str | None = None
    cuda_graphs: bool | None = None
    graph_frame_counts: tuple[int, ...] | None = None
    graph_whole_step: bool | None = None
    arap_anneal: float | None = None
    motion_prior: str | None = None
    affine_neighbours: int | None = None
    coarse_level: bool | None = None
    preview: bool = DEFAULT_PREVIEW
    settings: FitSettings | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise OptionError(f"--preset must be one of {', '.join(PRESET_NAMES)} (got {self.preset!r}).")

    def resolve(self, device: str) -> tuple[str, FitSettings]:
        """The preset name and the complete settings for a device."""
        name = self.preset if self.preset != "auto" else ("quickstart" if device == "cpu" else "reference")
        base = self.settings if self.settings is not None else PRESETS[name][1]
        if self.settings is not None:
            name = "custom"
        changes: dict[str, Any] = {}
        if self.steps is not None:
            changes["steps"] = self.steps
            changes["steps_per_frame"] = max(1, round(self.steps * base.steps_per_frame / max(base.steps, 1)))
        for key in (
            "resolution",
            "max_splats",
            "frames_per_step",
            "grad_fraction",
            "hexplane_backend",
            "cuda_graphs",
            "graph_frame_counts",
            "graph_whole_step",
            "arap_anneal",
            "motion_prior",
            "affine_neighbours",
        ):
            if getattr(self, key) is not None:
                changes[key] = getattr(self, key)
        if self.coarse_level is not None:
            changes["field"] = base.field.with_coarse_level(self.coarse_level)
        settings = replace(base, **changes)
        if self.affine_neighbours is not None and settings.motion_prior != "affine":
            raise OptionError(
                f"--affine-neighbours applies to the affine motion prior only; this fit uses {settings.motion_prior}.",
                hint="add --motion-prior affine, or leave --affine-neighbours out",
            )
        return name, settings


@dataclass(frozen=True)
class RecordedOptions:
    """What goes into the manifest (and its params digest): the options as given and the settings that actually ran
    (`a3d info` reads a recorded entry back into this class, `stages/outlook.py`)."""

    options: ReconstructOptions
    preset: str
    settings: FitSettings


def run(run_dir: Path, opts: ReconstructOptions, rt: Runtime | None = None) -> StageResult:
    """Fit the coarse motion of RUN's static splats to a multi-view video.

    Args:
        run_dir: the run folder (after `a3d prepare`).
        opts: ReconstructOptions (preset and overrides; `video` for frames outside RUN).
        rt: device, seed, force, progress.

    Returns:
        StageResult; metrics: preset, steps, splats, psnr_per_view (frames 1-15, each view), psnr,
        psnr_static (the static model's PSNR on the same frames), masks ("alpha" or "computed"), fit_seconds,
        cuda_graph_recordings (frame counts whose step was replayed as CUDA graphs; 0 on the CPU),
        cuda_graph_seconds (of fit_seconds, the time spent recording them), cuda_graph_failure (why a
        recording failed, the step's or the optimiser step's, after which that part ran eagerly; "" = none
        failed), cuda_graph_optimizer_replays (optimiser steps replayed from their graph), tile_list_overflows
        (whole-step recordings whose tile lists were found too short and recorded again), seconds_per_phase.

    Raises:
        InputError: bad video folder (missing views or frames, gaps, wrong count, mixed sizes).
        RunFolderError: RUN has no static splats (run `a3d prepare` first) or no video.
    """
    rt = rt or Runtime()
    run_dir = Path(run_dir)
    preset, settings = opts.resolve(rt.device)
    requires = {STATIC_PLY: producers.PREPARE}
    external: list[Path] = []
    if opts.video is None:
        video_dir = run_dir / MVVIDEO_DIR
        requires[MVVIDEO_DIR] = producers.MVVIDEO
    else:
        video_dir = Path(opts.video).expanduser()
    # 0. cheap checks before the run folder is locked or touched
    if opts.video is not None or video_dir.is_dir():
        files = list_video_frames(video_dir)
        if opts.video is not None:
            external = [p for row in files for p in row]
            if (video_dir / CAMERAS_JSON).is_file():
                external.append(video_dir / CAMERAS_JSON)

    def body(ctx: StageContext) -> None:
        _reconstruct(ctx, video_dir, preset, settings, opts.preview)

    return run_stage(
        "reconstruct",
        run_dir,
        RecordedOptions(opts, preset, settings),
        body,
        rt,
        requires=requires,
        external_inputs=external,
        recipe=RECIPE,
    )


def _reconstruct(ctx: StageContext, video_dir: Path, preset: str, s: FitSettings, preview: bool) -> None:
    from a3d_cli.gaussians.motion_io import save_motion
    from a3d_cli.gaussians.ply import read_ply
    from a3d_cli.gaussians.video_fit import FitInputs, VideoFit, fit_video_motion

    def read() -> FitInputs:
        video = read_video_frames(video_dir, max_size=max(s.resolution, MASK_SIZE))  # bounded memory
        fallback = resolve_inside(ctx.run_dir, VIEWS_CAMERAS)  # a link out of RUN is refused, never read
        cams = read_cameras(video_dir, fallback=fallback)
        return FitInputs(video, cams, read_ply(ctx.input(STATIC_PLY)).to(ctx.device))

    def write(out: VideoFit) -> None:
        extra = {"stage": "reconstruct", "preset": preset}
        save_motion(ctx.output(COARSE_MOTION), out.fit.field, out.static, extra=extra)
        if preview:
            ctx.write_video(COARSE_PREVIEW, out.preview(), fps=FPS)

    out = fit_video_motion(read, s, device=ctx.device, seed=ctx.seed, progress=ctx.progress, write=write, note=preset)
    fit, per_view = out.fit, out.scores.psnr_per_view
    ctx.metrics.update(
        masks=out.masks_source,
        preset=preset,
        steps=s.steps,
        splats=len(out.static),
        fit_splats=out.fit_splats,
        resolution=s.resolution,
        psnr_per_view=[round(float(p), 3) for p in per_view],
        psnr=round(float(per_view.mean()), 3),
        psnr_static=round(float(out.scores.psnr_static.mean()), 3),
        fit_seconds=round(fit.seconds, 2),
        seconds_per_phase={name: round(t, 3) for name, t in out.seconds.items()},
        cuda_graph_recordings=fit.graph_recordings,
        cuda_graph_seconds=round(fit.graph_seconds, 3),
        cuda_graph_failure=fit.graph_failure,
        cuda_graph_optimizer_replays=fit.optimizer_replays,
        tile_list_overflows=fit.tile_list_overflows,
        final_loss=fit.losses[-1][1] if fit.losses else None,
    )


__all__ = ["PRESETS", "RecordedOptions", "ReconstructOptions", "run"]
