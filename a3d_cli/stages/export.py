"""`a3d export RUN`: the animated splats as a per-frame 3DGS PLY sequence and an orbiting preview video.

Reads `static/gaussians.ply` and a motion file (`motion/refined.safetensors` when present, else
`motion/coarse.safetensors`), samples the continuous motion at `--fps` over `--duration` (optionally made
cyclic by `--loop`; see `gaussians.motion_clip`), and writes:

- `export/gaussians/frame_0000.ply …`: one standard 3DGS PLY per clip frame, numbered by the clip's frame
  index (a number in the file name is what splat-viewer timelines, e.g. SuperSplat's, sort by), with +Y up
  or, with `--ply-convention inria`, +Y down as the original 3DGS viewers expect;
- `export/gaussians/sequence.json`: fps, duration, loop mode, per frame its time and motion position;
- `export/preview.mp4`: novel views — one full azimuth orbit at an elevation the training views never
  used (30° by default; MV-VDM's are at 15°) while the animation loops.

Coordinate frame of the PLYs (`--space`): by default the asset's *original* frame (the inverse of
`source/normalization.json`: positions, scales, rotations and view-dependent SH colour all mapped back), so
the sequence lines up with the model the user gave and with `export/animated.glb`. `--space normalized`
keeps a3d's working frame (that of `static/gaussians.ply` and of every `cameras.json`).

Examples:
    >>> run(Path("RUN"), ExportOptions(size=256))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from a3d_cli.errors import OptionError
from a3d_cli.gaussians.motion_clip import check_clip_options
from a3d_cli.gaussians.motion_run import MotionChoice, load_static_and_motion, motion_kind
from a3d_cli.gaussians.ply_convention import PLY_CONVENTIONS, PlyConvention
from a3d_cli.run_layout import (
    EXPORT_PREVIEW,
    EXPORT_SEQUENCE,
    EXPORT_SPLATS_DIR,
    MOTION_FILES,
    NORMALIZATION_JSON,
    STATIC_PLY,
    export_splat_frame,
    export_splat_frame_name,
)
from a3d_cli.stages import producers
from a3d_cli.stages.base import Runtime, StageContext, StageResult, ensure_run_dir, run_stage

if TYPE_CHECKING:
    from a3d_cli.gaussians.container import Gaussians

RECIPE = 1
"""The version of what `export` writes for given inputs and options: bump it with any change that alters
those files, so runs made before re-run `export` once (docs/ARCHITECTURE.md, "Recipes")."""
DEFAULT_FPS = 24.0
_FRAMES_RE = re.compile(r"^\s*(all|\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*)\s*$")


@dataclass(frozen=True)
class ExportOptions:
    """Options of `a3d export`."""

    motion: MotionChoice = "auto"
    """Which motion file: "refined" (after `a3d sds`), "coarse" (after `a3d reconstruct`), or "auto" (refined
    when present, else coarse)."""
    frames: str = "all"
    """Clip frames to export: "all", or indices and ranges such as "0-7" or "0,4,8-15"."""
    fps: float = DEFAULT_FPS
    """Rate at which the continuous motion is sampled into PLY frames and preview frames (24 = 3 × the
    motion's 8 fps, so every training frame is one of them)."""
    duration: float | None = None
    """Seconds the motion plays over; None keeps its own ((F − 1) / 8 s). Longer is slow motion."""
    loop: bool = False
    """Make the clip cyclic (see `loop_mode`): the last frame flows into the first."""
    loop_mode: Literal["blend", "pingpong"] = "blend"
    """How `loop` closes the clip: "blend" (time-periodic blend of position and velocity) or "pingpong"."""
    ply_convention: PlyConvention = "yup"
    """Axes of the PLYs: "yup" (a3d's and glTF's +Y up) or "inria" (+Y down, as the original 3DGS viewers)."""
    size: int = 512
    """Preview video width and height in pixels."""
    space: Literal["original", "normalized"] = "original"
    """Coordinate frame of the PLY sequence: the input asset's own, or a3d's normalized working frame."""
    preview: bool = True
    """Render `export/preview.mp4` (costs one rasterization per preview frame)."""
    elevation_deg: float = 30.0
    """Elevation of the preview orbit (the training views sit at 15°)."""
    preview_loops: int = 3
    """The preview plays the animation this many times during its one full orbit."""
    background: float = 1.0
    """Grey level of the preview background (1 = white)."""

    def __post_init__(self) -> None:
        if self.motion not in ("auto", "coarse", "refined"):
            raise OptionError(f"--motion must be auto, coarse or refined, got {self.motion!r}.")
        if not _FRAMES_RE.match(self.frames):
            raise OptionError(
                f"--frames {self.frames!r} is not a frame list.", hint='Use "all", a range "0-7" or a list "0,4,8-15".'
            )
        check_clip_options(self.fps, self.duration, self.loop_mode)
        if self.ply_convention not in PLY_CONVENTIONS:
            raise OptionError(f"--ply-convention must be yup or inria, got {self.ply_convention!r}.")
        if not 16 <= self.size <= 4096:
            raise OptionError(f"--size must be between 16 and 4096 pixels, got {self.size}.")
        if self.space not in ("original", "normalized"):
            raise OptionError(f"--space must be original or normalized, got {self.space!r}.")
        if not -89.0 <= self.elevation_deg <= 89.0:
            raise OptionError(f"--elevation must be within ±89°, got {self.elevation_deg}.")
        if not 1 <= self.preview_loops <= 100:
            raise OptionError(f"--loops must be between 1 and 100, got {self.preview_loops}.")
        if not 0.0 <= self.background <= 1.0:
            raise OptionError(f"--background must be in [0, 1], got {self.background}.")


def parse_frames(spec: str, num_frames: int) -> list[int]:
    """Frame indices of a `--frames` spec, sorted and unique.

    Raises:
        OptionError: an index outside [0, num_frames) or a reversed range.
    """
    if spec.strip() == "all":
        return list(range(num_frames))
    picked: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi) if hi.strip() else int(lo)
        if a > b:
            raise OptionError(f"--frames range {part.strip()} runs backwards.", hint="Write ranges low-high, e.g. 0-7.")
        if b >= num_frames:
            raise OptionError(
                f"--frames asks for frame {b}, but the clip has {num_frames} frames (0-{num_frames - 1}).",
                hint="The clip has fps × duration frames (+1 unless it loops); see export/gaussians/sequence.json.",
            )
        picked.update(range(a, b + 1))
    return sorted(picked)


# -- the stage ----------------------------------------------------------------------------------------


def run(run_dir: Path, opts: ExportOptions | None = None, rt: Runtime | None = None) -> StageResult:
    """Export the animated splats of a run folder (PLY sequence + preview video).

    Examples:
        >>> run(Path("RUN"), ExportOptions(frames="0-7", size=256, loop=True))  # doctest: +SKIP
    """
    opts = opts or ExportOptions()
    ensure_run_dir(run_dir, create=False)
    kind = motion_kind(run_dir, opts.motion)
    motion_rel = MOTION_FILES[kind]
    requires = {STATIC_PLY: producers.PREPARE, motion_rel: producers.MOTION_PRODUCERS[kind]}
    if opts.space == "original":
        requires[NORMALIZATION_JSON] = producers.PREPARE

    def body(ctx: StageContext) -> None:
        import torch

        from a3d_cli.gaussians.motion_clip import MotionClip, clip_timing, seam_jumps
        from a3d_cli.gaussians.ply import convention_rotation, write_ply
        from a3d_cli.gaussians.transform import similarity_gaussians
        from a3d_cli.io.atomic import atomic_write_text
        from a3d_cli.mesh.normalize import NORMALIZED_RADIUS, read_normalization
        from a3d_cli.render.splats import render_orbit

        # 1. inputs: static splats, the motion fitted on them, the clip and the frames asked for
        static, field, motion_fps = load_static_and_motion(ctx, motion_rel)
        timing = clip_timing(
            field.config.num_frames, motion_fps, opts.fps, opts.duration, opts.loop_mode if opts.loop else "off"
        )
        clip = MotionClip(field, static, timing)
        frame_ids = parse_frames(opts.frames, len(timing))
        to_original = None
        if opts.space == "original":
            norm = read_normalization(ctx.run_dir)
            to_original = norm.to_original_similarity()
        axes = torch.from_numpy(convention_rotation(opts.ply_convention)).float()

        # 2. every exported frame: the splats at its time, written as a PLY
        ctx.progress.start("export: frames", total=len(frame_ids))
        deformed: list[Gaussians] = []
        with torch.no_grad():
            for j in frame_ids:
                g = clip.frame(j)
                deformed.append(g)
                out = g if to_original is None else similarity_gaussians(g, *to_original)
                if opts.ply_convention != "yup":
                    out = similarity_gaussians(out, 1.0, axes, torch.zeros(3))
                write_ply(ctx.output(export_splat_frame(j)), out)
                ctx.progress.update(1)
        times = timing.motion_times()
        sequence = {
            "format": "a3d-splat-sequence",
            "version": 2,
            "fps": timing.key_rate,
            "duration": timing.duration,
            "loop": timing.loop,
            "space": opts.space,
            "axes": opts.ply_convention,
            "motion": motion_rel,
            "num_gaussians": len(static),
            "frames": [
                {"file": export_splat_frame_name(j), "frame": j, "seconds": float(timing.seconds[j]),
                 "position": float(timing.positions[j]), "time": float(times[j])}
                for j in frame_ids
            ],  # fmt: skip
        }
        atomic_write_text(ctx.output(EXPORT_SEQUENCE), json.dumps(sequence, indent=2))

        # 3. the orbiting preview
        if opts.preview:
            ctx.progress.start("export: preview", total=opts.preview_loops * len(frame_ids))
            with torch.no_grad():
                video = render_orbit(
                    deformed, opts.size, opts.elevation_deg, opts.preview_loops, opts.background, ctx.progress
                )
            ctx.write_video(EXPORT_PREVIEW, video, fps=timing.key_rate)
        means = torch.stack([g.means for g in deformed]).double().cpu().numpy()  # [K, N, 3] normalized
        seam = seam_jumps(means, timing.key_rate, timing.closes, NORMALIZED_RADIUS) if len(frame_ids) == len(timing) >= 3 else None
        ctx.metrics.update(
            frames=len(frame_ids), num_gaussians=len(static), motion=motion_rel, fps=timing.key_rate,
            duration_s=timing.duration, loop=timing.loop, **({"seam": seam} if seam else {}),
        )  # fmt: skip

    return run_stage("export", run_dir, opts, body, rt, requires=requires, clear=(EXPORT_SPLATS_DIR,), recipe=RECIPE)


__all__ = ["ExportOptions", "parse_frames", "run"]
