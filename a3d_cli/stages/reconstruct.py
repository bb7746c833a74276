"""`reconstruct`: fit a motion field to a multi-view video — Animate3D's stage 1 (coarse 4DGS).

Reads `static/gaussians.ply` (from `a3d prepare`) and a video of 4 views × 16 frames: `RUN/mvvideo/` (from
`a3d mvvideo`) or any folder given as `video` with the same naming, `v{view}_f{frame:02d}.png`
(view 0..3, frame 00..15; `v{view}_f{frame}.png` without the zero is read too). Frames are RGB on the 0.5
grey background (MV-VDM output) or RGBA. Writes:

    motion/coarse.safetensors     the fitted motion field (`a3d_cli.gaussians.motion_io` format)
    motion/coarse_preview.mp4     per frame: the 4 target views (top) above the 4 renders (bottom)

How (shared/reference/animate3d.md §3.3): the static splats stay frozen and only the motion field trains.
Each step renders the active frames × 4 views in one rasterizer call and minimises
`λ_rgb·MSE(render, target on grey) + λ_mask·MSE(alpha, mask) + λ_arap·ARAP(k-NN of the static splats)`.
Frames are added progressively, one every `steps_per_frame` steps (frame 0 is the static model and never
trained). Frames without alpha get masks from `a3d_cli.io.masks` (known grey, border connectivity, the
static silhouette, temporal vote). Cameras come from `cameras.json` next to the frames, else
`static/views/cameras.json` (MV-VDM's fixed views).

Presets: "reference" (Animate3D's settings: 800 steps at 256², all splats; for a GPU) and "quickstart"
(CPU: fewer splats, 128², 2 frames per step, fewer steps; a minute or two on 2 cores). "auto" picks
quickstart on the CPU and reference on a GPU. Every knob is a field of `FitSettings`.

Examples:
    >>> run(Path("RUN"), ReconstructOptions(), Runtime(device="cuda"))  # doctest: +SKIP
    >>> run(Path("RUN"), ReconstructOptions(video="my_frames/", preset="quickstart", steps=100))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from a3d_cli.errors import InputError, OptionError
from a3d_cli.gaussians.motion_field import MotionFieldConfig
from a3d_cli.io.masks import MaskOptions
from a3d_cli.stages.base import Runtime, StageContext, StageResult, run_stage

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from a3d_cli.gaussians.arap import ArapRegularizer
    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_field import MotionField
    from a3d_cli.render.cameras import CameraSet
    from a3d_cli.stages.progress import Progress

NUM_VIEWS = 4
NUM_FRAMES = 16
BACKGROUND = 0.5  # MV-VDM's grey
STATIC_PLY = "static/gaussians.ply"
STATIC_CAMERAS = "static/views/cameras.json"
VIDEO_DIR = "mvvideo"
MOTION_OUT = "motion/coarse.safetensors"
PREVIEW_OUT = "motion/coarse_preview.mp4"
FRAME_NAME = re.compile(r"^v(\d+)_f(\d+)\.png$", re.IGNORECASE)
PresetName = Literal["auto", "reference", "quickstart"]


# --- settings -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitSettings:
    """Every knob of the motion fit. Defaults are Animate3D's `motion_recon_frame_16.yaml`."""

    steps: int = 800
    """Optimisation steps."""
    steps_per_frame: int = 50
    """Progressive schedule: at step s the frames 1 … min(s // steps_per_frame, 14) + 1 are active."""
    frames_per_step: int = 0
    """Frames rendered per step: 0 = all active frames (reference); k > 0 = the newest active frame plus
    k - 1 random earlier ones (cheaper steps; the reference's mesh path uses 2)."""
    resolution: int = 256
    """Render and target size in pixels (targets are resized when the video differs)."""
    max_splats: int = 0
    """Fit on at most this many splats (random subset, scales enlarged to keep coverage; 0 = all). The
    saved field moves every splat: it is a function of position."""
    lr_grid: float = 0.01
    """Adam learning rate of the HexPlane planes (constant)."""
    lr_heads: float = 1e-4
    """Adam learning rate of the Δposition / Δrotation (/ Δscale) heads (constant)."""
    lr_global: float = 1e-3
    """Adam learning rate of the global rigid-motion heads (constant)."""
    adam_eps: float = 1e-15
    """Adam epsilon (the reference's 1e-15)."""
    lambda_rgb: float = 100.0
    """Weight of MSE(render, target composited on grey)."""
    lambda_mask: float = 100.0
    """Weight of MSE(rendered alpha, foreground mask)."""
    lambda_arap: float = 12.0
    """Weight of the ARAP energy (a sum over sampled points, edges and frames)."""
    arap_neighbours: int = 3
    """k nearest static splats per point in the ARAP term."""
    arap_samples: int = 512
    """Points scored by ARAP per step (drawn with replacement)."""
    grad_fraction: float = 1.0
    """Fraction of splats whose motion gets gradients from the image losses per step (the reference
    passes a random 10 %; 1.0 = all; see docs/reconstruct.md for the measurement)."""
    hexplane_backend: Literal["auto", "torch", "matmul"] = "auto"
    """HexPlane sampling backend (`kernels.hexplane`): "torch" (`grid_sample`) or "matmul" (time planes as
    dense matrix products: same numbers, no atomic adds in the backward); "auto" = "torch"."""
    field: MotionFieldConfig = dc_field(default_factory=MotionFieldConfig)
    """The motion field's architecture."""
    masks: MaskOptions = dc_field(default_factory=MaskOptions)
    """How masks are computed for frames without alpha."""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.steps_per_frame < 1 or self.frames_per_step < 0:
            raise OptionError("steps must be >= 0, steps_per_frame >= 1 and frames_per_step >= 0.")
        if not 16 <= self.resolution <= 2048:
            raise OptionError(f"--resolution must be between 16 and 2048 pixels (got {self.resolution}).")
        if self.max_splats < 0:
            raise OptionError(f"--max-splats must be >= 0 (got {self.max_splats}).")
        if self.hexplane_backend not in ("auto", "torch", "matmul"):
            raise OptionError(f"hexplane_backend must be auto, torch or matmul (got {self.hexplane_backend!r}).")
        if not 0.0 < self.grad_fraction <= 1.0:
            raise OptionError(f"--grad-fraction must be in (0, 1] (got {self.grad_fraction}).")
        if self.field.num_frames != NUM_FRAMES:
            raise OptionError(f"the motion field must have {NUM_FRAMES} frames (got {self.field.num_frames}).")


PRESETS: dict[str, tuple[str, FitSettings]] = {
    "reference": (
        "Animate3D's settings: 800 steps, 256², all splats, all active frames per step (GPU).",
        FitSettings(),
    ),
    "quickstart": (
        "CPU: 300 steps, 128², at most 2000 splats, 2 frames per step, Δ-head LR 1e-3; about a minute on 2 cores.",
        FitSettings(steps=300, steps_per_frame=18, frames_per_step=2, resolution=128, max_splats=2000, lr_heads=1e-3),
    ),
}


@dataclass(frozen=True)
class ReconstructOptions:
    """Options of `a3d reconstruct` (None = the preset's value).

    Attributes:
        video: folder of `v{view}_f{frame:02d}.png` frames; None reads RUN/mvvideo/.
        preset: "auto" (quickstart on CPU, reference on GPU), "reference" or "quickstart".
        steps: optimisation steps (the progressive schedule is scaled to match).
        resolution: render/target size in pixels.
        max_splats: fit on at most this many splats (0 = all).
        frames_per_step: frames rendered per step (0 = all active frames).
        grad_fraction: fraction of splats receiving image-loss gradients per step.
        hexplane_backend: "torch" or "matmul" HexPlane sampling (see `FitSettings.hexplane_backend`).
        preview: write motion/coarse_preview.mp4.
        settings: a complete `FitSettings` instead of a preset (the fields above still override it).
    """

    video: str | None = None
    preset: PresetName = "auto"
    steps: int | None = None
    resolution: int | None = None
    max_splats: int | None = None
    frames_per_step: int | None = None
    grad_fraction: float | None = None
    hexplane_backend: str | None = None
    preview: bool = True
    settings: FitSettings | None = None

    def __post_init__(self) -> None:
        if self.preset not in ("auto", *PRESETS):
            raise OptionError(f"--preset must be auto, reference or quickstart (got {self.preset!r}).")

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
        for key in ("resolution", "max_splats", "frames_per_step", "grad_fraction", "hexplane_backend"):
            if getattr(self, key) is not None:
                changes[key] = getattr(self, key)
        return name, replace(base, **changes)


@dataclass(frozen=True)
class _Recorded:
    """What goes into the manifest: the options as given and the settings that actually ran."""

    options: ReconstructOptions
    preset: str
    settings: FitSettings


# --- inputs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoFrames:
    """A multi-view video read from disk.

    Attributes:
        rgb: [V, F, H, W, 3] in [0, 1] (RGBA frames composited on the grey background).
        alpha: [V, F, H, W] alpha when every frame has one, else None.
        files: [V][F] the frame files.
    """

    rgb: Tensor  # [V, F, H, W, 3]
    alpha: Tensor | None  # [V, F, H, W]
    files: list[list[Path]]


def list_video_frames(folder: Path, views: int = NUM_VIEWS, frames: int = NUM_FRAMES) -> list[list[Path]]:
    """The frame files of a video folder, checked for completeness (no pixels read).

    Raises:
        InputError: missing folder, no frames, missing views, wrong frame count, gaps, duplicates.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"The video folder {folder} does not exist.", hint="Run `a3d mvvideo RUN` or pass --video DIR."
        )
    found: dict[tuple[int, int], Path] = {}
    for path in sorted(folder.iterdir()):
        m = FRAME_NAME.match(path.name)
        if not m:
            continue
        key = (int(m.group(1)), int(m.group(2)))
        if key in found:
            raise InputError(
                f"{folder} has two files for view {key[0]} frame {key[1]}: {found[key].name} and {path.name}."
            )
        found[key] = path
    naming = "frames must be named v{view}_f{frame:02d}.png, view 0-3, frame 00-15"
    if not found:
        raise InputError(f"{folder} has no video frames.", hint=naming)
    present_views = sorted({v for v, _ in found})
    missing_views = [v for v in range(views) if v not in present_views]
    if missing_views or present_views[-1] >= views:
        raise InputError(
            f"{folder} has views {present_views}; reconstruct needs exactly views 0-{views - 1}"
            + (f" (missing {missing_views})." if missing_views else "."),
            hint=naming,
        )
    for v in range(views):
        idx = sorted(f for vv, f in found if vv == v)
        if len(idx) != frames or idx[-1] != frames - 1:
            gaps = [f for f in range(max(idx[-1] + 1, frames)) if f not in idx]
            if len(idx) != frames and not [g for g in gaps if g < idx[-1]]:
                raise InputError(
                    f"View {v} in {folder} has {len(idx)} frames; reconstruct needs {frames}.", hint=naming
                )
            raise InputError(
                f"View {v} in {folder} is missing frame(s) {gaps[:8]} (frames must be 0-{frames - 1} with no gaps).",
                hint=naming,
            )
    return [[found[(v, f)] for f in range(frames)] for v in range(views)]


def read_video_frames(folder: Path, background: float = BACKGROUND) -> VideoFrames:
    """Read and check a 4-view × 16-frame video folder.

    Raises:
        InputError: naming problems (see `list_video_frames`), unreadable images, mixed resolutions,
            non-square frames.
    """
    import torch
    from PIL import Image

    from a3d_cli.io.images import load_png

    files = list_video_frames(folder)
    ref = files[0][0]
    with Image.open(ref) as im:
        size0 = im.size
    for row in files:  # cheap header pass first: nothing is decoded before the sizes agree
        for path in row:
            try:
                with Image.open(path) as im:
                    size = im.size
            except OSError as exc:
                raise InputError(f"{path} is not a readable image ({exc}).") from exc
            if size != size0:
                raise InputError(
                    f"{path.name} is {size[0]}×{size[1]} but {ref.name} is {size0[0]}×{size0[1]}; all frames must have one size.",
                    hint="Resize the frames to one resolution (MV-VDM writes 256×256).",
                )
    if size0[0] != size0[1]:
        raise InputError(
            f"The frames in {folder} are {size0[0]}×{size0[1]}; reconstruct needs square frames.",
            hint="Crop or pad them to a square around the object.",
        )
    imgs = [[load_png(p) for p in row] for row in files]
    has_alpha = all(img.shape[-1] == 4 for row in imgs for img in row)
    stack = torch.stack([torch.stack(row) for row in imgs])  # [V, F, H, W, C]
    if has_alpha:
        alpha = stack[..., 3]  # [V, F, H, W]
        rgb = stack[..., :3] * alpha[..., None] + background * (1 - alpha[..., None])
        return VideoFrames(rgb=rgb, alpha=alpha, files=files)
    return VideoFrames(rgb=stack[..., :3], alpha=None, files=files)


def read_cameras(video_dir: Path, run_dir: Path) -> CameraSet:
    """Cameras of the video: `cameras.json` beside the frames, else the static views', else MV-VDM's."""
    import json

    from a3d_cli.render.cameras import CameraSet, mvvdm_cameras

    for path in (Path(video_dir) / "cameras.json", Path(run_dir) / STATIC_CAMERAS):
        if path.is_file():
            try:
                cams = CameraSet.from_json(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{path} is not a readable cameras file ({exc}).") from exc
            if len(cams) != NUM_VIEWS:
                raise InputError(f"{path} describes {len(cams)} cameras; the video has {NUM_VIEWS} views.")
            return cams
    return mvvdm_cameras()


# --- the fit -------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """Output of `fit_motion`.

    Attributes:
        field: the trained motion field (on the fit device).
        losses: per-step total loss (host floats, recorded every `log_every` steps).
        seconds: wall time of the optimisation loop.
        profile: seconds per phase when profiling was asked for (data, field, raster, arap, backward).
    """

    field: MotionField
    losses: list[tuple[int, float]]
    seconds: float
    profile: dict[str, float]


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


def render_splats(
    static: Gaussians,
    means: Tensor,  # [F, N, 3]
    quats: Tensor,  # [F, N, 4] or [N, 4]
    scales: Tensor,  # [F, N, 3] or [N, 3]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    size: int,
) -> tuple[Tensor, Tensor]:
    """Render moved splats (static colours and opacities) into V square views, on the grey background.

    Returns:
        rgb [F, V, H, W, 3] and alpha [F, V, H, W].
    """
    import torch

    from kernels import rasterize

    colors, sh_degree = static.colors, None
    if static.sh_rest is not None:
        colors, sh_degree = static.sh_coeffs(), static.sh_degree
    bg = torch.full((viewmats.shape[0], 3), BACKGROUND, device=means.device, dtype=means.dtype)
    r = rasterize(
        means, quats, scales, static.opacities, colors, viewmats, Ks, size, size, sh_degree=sh_degree, backgrounds=bg
    )
    return r.colors, r.alphas[..., 0]


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
    arap: ArapRegularizer | None = None,
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
        arap: the ARAP term; default the k-NN scheme on `static.means`.
        profile: time the phases (synchronising the device; slower).
        on_step: called after each optimiser step with (step, field) — for baselines and tests.

    Returns:
        FitResult with the trained field.
    """
    import torch

    from a3d_cli.gaussians.arap import ArapRegularizer
    from a3d_cli.gaussians.motion_field import MotionField

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
    opt = torch.optim.Adam(
        [
            {"params": motion.grid_parameters(), "lr": settings.lr_grid},
            {"params": motion.head_parameters(), "lr": settings.lr_heads},
            {"params": motion.global_parameters(), "lr": settings.lr_global},
        ],
        lr=0.0,
        eps=settings.adam_eps,
    )
    if arap is None and settings.lambda_arap > 0:
        arap = ArapRegularizer.from_points(
            static.means, k=settings.arap_neighbours, sample_points=settings.arap_samples
        )
    viewmats = cameras.viewmats.to(device)  # [V, 4, 4]
    Ks = cameras.Ks(w, h).to(device)  # [V, 3, 3]
    tgt = targets.to(device).transpose(0, 1)  # [F, V, H, W, 3]
    msk = masks.to(device).transpose(0, 1)  # [F, V, H, W]
    timings = dict.fromkeys(("data", "field", "raster", "arap", "backward"), 0.0)

    def tick(name: str, t0: float) -> float:
        if not profile:
            return t0
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        timings[name] += t1 - t0
        return t1

    prog = progress
    if prog is not None:
        prog.start("reconstruct: fitting motion", total=settings.steps)
    losses: list[tuple[int, float]] = []
    start = time.perf_counter()
    pending = 0
    for step in range(settings.steps):
        t = tick("data", time.perf_counter()) if profile else 0.0
        frames = active_frames(step, settings, gen)
        f_idx = torch.tensor(frames, device=device)
        batch_rgb, batch_mask = tgt[f_idx], msk[f_idx]  # [f, V, H, W, 3], [f, V, H, W]
        t = tick("data", t)
        out = motion(static, frames)
        means, quats, scales = out.means, out.quats, out.scales  # [f, N, ·]
        if settings.grad_fraction < 1.0:
            # the reference's sparsification: image-loss gradients reach a random subset of splats only
            keep = torch.rand(len(frames), len(static), 1, generator=dev_gen, device=device) < settings.grad_fraction
            means = torch.where(keep, means, means.detach())
            quats = torch.where(keep, quats, quats.detach())
            scales = torch.where(keep, scales, scales.detach())
        t = tick("field", t)
        rgb, alpha = render_splats(static, means, quats, scales, viewmats, Ks, w)
        loss_rgb = torch.nn.functional.mse_loss(rgb, batch_rgb)
        loss = settings.lambda_rgb * loss_rgb + settings.lambda_mask * torch.nn.functional.mse_loss(alpha, batch_mask)
        t = tick("raster", t)
        if arap is not None and settings.lambda_arap > 0:
            loss = loss + settings.lambda_arap * arap(out.means, dev_gen)  # un-sparsified, as the reference
        t = tick("arap", t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tick("backward", t)
        pending += 1
        if on_step is not None:
            on_step(step, motion)
        if (step + 1) % log_every == 0 or step + 1 == settings.steps:
            lv, mse = float(loss.detach()), float(loss_rgb.detach())  # one host sync per log interval
            losses.append((step + 1, lv))
            if prog is not None:
                prog.update(pending, loss=lv, psnr=-10 * math.log10(max(mse, 1e-12)), frames=float(frames[-1]))
            pending = 0
    seconds = time.perf_counter() - start
    motion.eval()
    return FitResult(field=motion, losses=losses, seconds=seconds, profile=timings if profile else {})


def render_all_frames(
    motion: MotionField | None, static: Gaussians, cameras: CameraSet, size: int, chunk: int = 4
) -> tuple[Tensor, Tensor]:
    """Every frame from every camera, without gradients.

    Returns:
        rgb [V, F, H, W, 3] on grey and alpha [V, F, H, W], on the CPU.
    """
    import torch

    device = static.means.device
    viewmats, Ks = cameras.viewmats.to(device), cameras.Ks(size, size).to(device)
    rgbs, alphas = [], []
    with torch.no_grad():
        for start in range(0, NUM_FRAMES, chunk):
            frames = list(range(start, min(start + chunk, NUM_FRAMES)))
            rgb, alpha, _ = render_frames(motion, static, frames, viewmats, Ks, size)
            rgbs.append(rgb.cpu())
            alphas.append(alpha.cpu())
    return torch.cat(rgbs).transpose(0, 1), torch.cat(alphas).transpose(0, 1)


def psnr(a: Tensor, b: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Peak signal-to-noise ratio (peak 1) of two images in [0, 1], reduced over `dims`."""
    import torch

    mse = (a - b).square().mean(dim=dims)
    return -10 * torch.log10(mse.clamp_min(1e-12))


# --- the stage -----------------------------------------------------------------------------------------


def _resize(images: Tensor, size: int) -> Tensor:
    """[..., H, W, C] → [..., size, size, C] (area-averaged down, bilinear up)."""
    import torch.nn.functional as F

    lead, (h, w, c) = images.shape[:-3], images.shape[-3:]
    if h == size and w == size:
        return images
    x = images.reshape(-1, h, w, c).permute(0, 3, 1, 2)
    x = F.interpolate(
        x, size=(size, size), mode="area" if size < h else "bilinear", align_corners=None if size < h else False
    )
    return x.permute(0, 2, 3, 1).reshape(*lead, size, size, c)


def run(run_dir: Path, opts: ReconstructOptions, rt: Runtime | None = None) -> StageResult:
    """Fit the coarse motion of RUN's static splats to a multi-view video.

    Args:
        run_dir: the run folder (after `a3d prepare`).
        opts: ReconstructOptions (preset and overrides; `video` for frames outside RUN).
        rt: device, seed, force, progress.

    Returns:
        StageResult; metrics: preset, steps, splats, psnr_per_view (frames 1-15, each view), psnr,
        psnr_static (the static model's PSNR on the same frames), masks ("alpha" or "computed"), fit_seconds.

    Raises:
        InputError: bad video folder (missing views or frames, gaps, wrong count, mixed sizes).
        RunFolderError: RUN has no static splats (run `a3d prepare` first) or no video.
    """
    rt = rt or Runtime()
    run_dir = Path(run_dir)
    preset, settings = opts.resolve(rt.device)
    requires = {STATIC_PLY: "a3d prepare MODEL -o RUN"}
    external: list[Path] = []
    if opts.video is None:
        video_dir = run_dir / VIDEO_DIR
        requires[VIDEO_DIR] = "a3d mvvideo RUN --prompt ..."
    else:
        video_dir = Path(opts.video).expanduser()
    # 0. cheap checks before the run folder is locked or touched
    if opts.video is not None or video_dir.is_dir():
        files = list_video_frames(video_dir)
        if opts.video is not None:
            external = [p for row in files for p in row]
            if (video_dir / "cameras.json").is_file():
                external.append(video_dir / "cameras.json")

    def body(ctx: StageContext) -> None:
        _reconstruct(ctx, video_dir, preset, settings, opts.preview)

    return run_stage(
        "reconstruct", run_dir, _Recorded(opts, preset, settings), body, rt, requires=requires, external_inputs=external
    )


def _reconstruct(ctx: StageContext, video_dir: Path, preset: str, s: FitSettings, preview: bool) -> None:
    import torch

    from a3d_cli.gaussians.motion_io import save_motion
    from a3d_cli.gaussians.ply import read_ply
    from a3d_cli.io.masks import foreground_masks, mask_from_alpha

    progress = ctx.progress
    device = torch.device(ctx.device)
    # 1. inputs: video (checked), cameras, static splats
    progress.start("reconstruct: reading the video", total=None)
    video = read_video_frames(video_dir)
    cams = read_cameras(video_dir, ctx.run_dir)
    static_all = read_ply(ctx.input(STATIC_PLY)).to(device)
    native = video.rgb.shape[2]

    # 2. masks: alpha when the frames have it, else computed against the static silhouette
    if video.alpha is not None:
        masks = mask_from_alpha(video.alpha)
        ctx.metrics["masks"] = "alpha"
    else:
        with torch.no_grad():
            viewmats, Ks = cams.viewmats.to(device), cams.Ks(native, native).to(device)
            _, static_alpha, _ = render_frames(None, static_all, [0], viewmats, Ks, native)  # [1, V, H, W]
        masks = foreground_masks(video.rgb.to(device), static_alpha[0], s.masks).cpu()  # on the fit device
        ctx.metrics["masks"] = "computed"
    targets = _resize(video.rgb, s.resolution)  # [V, F, S, S, 3]
    masks = _resize(masks[..., None], s.resolution)[..., 0]  # [V, F, S, S]

    # 3. fit on (a subset of) the splats
    gen = torch.Generator().manual_seed(ctx.seed)
    train = subsample_splats(static_all, s.max_splats, gen)
    progress.log(f"fitting on {len(train)} of {len(static_all)} splats at {s.resolution}², {s.steps} steps ({preset})")
    fit = fit_motion(train, cams, targets, masks, s, seed=ctx.seed, progress=progress)

    # 4. score every frame with all splats, save
    progress.start("reconstruct: scoring and writing", total=None)
    rgb, _ = render_all_frames(fit.field, static_all, cams, s.resolution)  # [V, F, S, S, 3]
    rgb_static, _ = render_all_frames(None, static_all, cams, s.resolution)
    per_view = psnr(rgb[:, 1:], targets[:, 1:], dims=(1, 2, 3, 4))  # [V]
    static_psnr = psnr(rgb_static[:, 1:], targets[:, 1:], dims=(1, 2, 3, 4))  # [V]
    save_motion(ctx.output(MOTION_OUT), fit.field, static_all, extra={"stage": "reconstruct", "preset": preset})
    if preview:
        from a3d_cli.io.video import write_mp4

        top = torch.cat(list(targets), dim=2)  # [F, S, V·S, 3]
        bottom = torch.cat(list(rgb), dim=2)  # [F, S, V·S, 3]
        write_mp4(ctx.output(PREVIEW_OUT), torch.cat([top, bottom], dim=1).clamp(0, 1), fps=8.0)
    ctx.metrics.update(
        preset=preset,
        steps=s.steps,
        splats=len(static_all),
        fit_splats=len(train),
        resolution=s.resolution,
        psnr_per_view=[round(float(p), 3) for p in per_view],
        psnr=round(float(per_view.mean()), 3),
        psnr_static=round(float(static_psnr.mean()), 3),
        fit_seconds=round(fit.seconds, 2),
        final_loss=fit.losses[-1][1] if fit.losses else None,
    )


__all__ = [
    "PRESETS",
    "FitResult",
    "FitSettings",
    "ReconstructOptions",
    "VideoFrames",
    "active_frames",
    "fit_motion",
    "list_video_frames",
    "read_cameras",
    "read_video_frames",
    "render_all_frames",
    "render_frames",
    "run",
    "subsample_splats",
]
