"""`a3d mesh-animate RUN`: the input mesh, moved by the fitted motion, as an animated GLB and a vertex cache.

For mesh inputs, `a3d prepare` gave every welded mesh vertex its own splat (`static/binding.safetensors`:
splat `vertex_splat[v]` drives mesh vertex v; seam copies share one splat, so seams never tear). This stage
evaluates the motion field on the static splats at every frame, reads the vertex splats' centres — i.e. the
motion field evaluated at the mesh vertices — at every frame of the export clip (the continuous field
sampled at `--fps` over `--duration`, optionally made cyclic by `--loop`; see `gaussians.motion_clip`),
and writes:

- `export/animated.glb`: the processed mesh (`source/mesh.glb`: its texture atlas, the PNG copied as stored
  where that is what would be written, `mesh.store.read_processed_mesh`; vertex colours and UVs) in the
  asset's *original* coordinate frame (`source/normalization.json` undone), animated by one
  morph target per frame, or with `--skin` by a skeleton fitted to the motion (`mesh.skinning`: bones
  with linear-blend weights, optionally plus residual morph targets);
- `export/vertices.npy`: float32 [K, V, 3] positions of every mesh vertex at every exported frame, same
  frame and vertex order as the GLB, for DCC scripts (Blender, Houdini) that build their own caches.

Optionally (`--rigidity λ`, off by default) the per-frame vertex positions are projected onto an
as-rigid-as-possible deformation of the rest mesh over its 1-ring graph before export — a clean-up for
motions that were not trained with mesh ARAP (`a3d_cli.mesh.rigidity.arap_project`).

With `--max-texture-size N` (off by default) a texture longer than N texels a side is reduced to N, its aspect
kept, for phones and WebGL (`a3d_cli.mesh.texture_limit`).

Examples:
    >>> run(Path("RUN"), MeshAnimateOptions(fps=12))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from a3d_cli.errors import InputError, OptionError
from a3d_cli.gaussians.motion_clip import check_clip_options
from a3d_cli.gaussians.motion_run import MotionChoice, load_static_and_motion, motion_kind
from a3d_cli.io.manifest import ADDED_OPTION
from a3d_cli.mesh.texture_limit import check_max_texture_size
from a3d_cli.run_layout import (
    BINDING,
    EXPORT_GLB,
    EXPORT_VERTICES,
    MOTION_FILES,
    NORMALIZATION_JSON,
    PROCESSED_MESH,
    STATIC_PLY,
)
from a3d_cli.stages.base import Runtime, StageContext, StageResult, ensure_run_dir, run_stage
from a3d_cli.stages.producers import MOTION_PRODUCERS, PREPARE

RECIPE = 2
"""The version of what `mesh-animate` writes for given inputs and options: bump it with any change that alters
those files, so runs made before re-run `mesh-animate` once (docs/ARCHITECTURE.md, "Recipes")."""
DEFAULT_FPS = 24.0
DEFAULT_BONES = 32


@dataclass(frozen=True)
class MeshAnimateOptions:
    """Options of `a3d mesh-animate`."""

    motion: MotionChoice = "auto"
    """Which motion file: "refined", "coarse", or "auto" (refined when present, else coarse)."""
    fps: float = DEFAULT_FPS
    """Rate at which the continuous motion field is sampled into GLB keys and vertex-cache frames (24 = 3 × the
    motion's 8 fps, so every training frame is a key, and film-smooth playback)."""
    duration: float | None = None
    """Seconds the motion plays over; None keeps its own ((F − 1) / 8 s). Longer is slow motion."""
    interpolation: Literal["linear", "step"] = "linear"
    """"linear" blends neighbouring keys (smooth playback), "step" shows each key exactly."""
    loop: bool = False
    """Make the clip cyclic (see `loop_mode`): the last frame flows into the first."""
    loop_mode: Literal["blend", "pingpong"] = "blend"
    """How `loop` closes the clip: "blend" (time-periodic blend of position and velocity) or "pingpong"
    (forwards then backwards, twice as long)."""
    normals: bool = True
    """Store per-frame normal deltas too (correct shading while moving; about doubles the file size)."""
    skin: bool = False
    """Write a skinned GLB (bones fitted to the motion, linear-blend skinning) instead of morph targets."""
    bones: int = DEFAULT_BONES
    """Bones of the fitted skin (at most 4 influence each vertex)."""
    residual: bool = False
    """With `skin`: also store what the skin misses as one morph target per frame (exact, larger file)."""
    rigidity: float = 0.0
    """Weight λ of an ARAP projection of each frame over the mesh 1-ring graph (0 = export the motion as is;
    the reference trains its mesh motion with a 1-ring ARAP weight of 4)."""
    rigidity_iterations: int = 8
    """Local/global ARAP iterations per frame when `rigidity` > 0."""
    max_texture_size: int | None = field(default=None, metadata=ADDED_OPTION)
    """Longest side in texels of the texture written: a longer one is reduced, aspect kept
    (`a3d_cli.mesh.texture_limit`); None keeps the atlas as `prepare` wrote it."""

    def __post_init__(self) -> None:
        if self.motion not in ("auto", "coarse", "refined"):
            raise OptionError(f"--motion must be auto, coarse or refined, got {self.motion!r}.")
        check_clip_options(self.fps, self.duration, self.loop_mode)
        if not 1 <= self.bones <= 254:
            raise OptionError(f"--bones must be between 1 and 254, got {self.bones}.")
        if self.residual and not self.skin:
            raise OptionError("--residual corrects a skin; it needs --skin.", hint="Add --skin, or drop --residual.")
        if self.interpolation not in ("linear", "step"):
            raise OptionError(f"--interpolation must be linear or step, got {self.interpolation!r}.")
        if not (math.isfinite(self.rigidity) and 0.0 <= self.rigidity <= 1e4):
            raise OptionError(f"--rigidity must be between 0 and 10000, got {self.rigidity}.")
        if not 1 <= self.rigidity_iterations <= 100:
            raise OptionError(f"--rigidity-iterations must be between 1 and 100, got {self.rigidity_iterations}.")
        check_max_texture_size(self.max_texture_size)


# -- the stage ----------------------------------------------------------------------------------------


def check_mesh_run(run_dir: Path) -> None:
    """Refuse runs prepared from 3D Gaussians (they have no mesh to animate), with the command that fits.

    Raises:
        InputError: the run has static splats but no mesh binding (exit code 2).
    """
    run_dir = Path(run_dir)
    if (run_dir / STATIC_PLY).is_file() and not (run_dir / BINDING).exists():
        raise InputError(
            f"The run folder {run_dir} was prepared from 3D Gaussians, so it has no mesh to animate.",
            hint="Use `a3d export RUN` for the animated splats (PLY sequence + preview video).",
        )


def run(run_dir: Path, opts: MeshAnimateOptions | None = None, rt: Runtime | None = None) -> StageResult:
    """Animate the run's mesh with its fitted motion; write `export/animated.glb` and `export/vertices.npy`.

    Examples:
        >>> run(Path("RUN"), MeshAnimateOptions(interpolation="step"))  # doctest: +SKIP
    """
    opts = opts or MeshAnimateOptions()
    ensure_run_dir(run_dir, create=False)
    check_mesh_run(run_dir)
    kind = motion_kind(run_dir, opts.motion)
    motion_rel = MOTION_FILES[kind]
    requires = {
        STATIC_PLY: PREPARE,
        BINDING: PREPARE,
        PROCESSED_MESH: PREPARE,
        NORMALIZATION_JSON: PREPARE,
        motion_rel: MOTION_PRODUCERS[kind],
    }

    def body(ctx: StageContext) -> None:

        from a3d_cli.gaussians.motion_clip import MotionClip, clip_timing, seam_jumps
        from a3d_cli.io.atomic import atomic_path
        from a3d_cli.mesh.binding import MeshBinding
        from a3d_cli.mesh.gltf_animated import mesh_material, write_animated_glb, write_skinned_glb
        from a3d_cli.mesh.normalize import read_normalization
        from a3d_cli.mesh.rigidity import mesh_frames, offset_pct_of_radius
        from a3d_cli.mesh.skinning import bind_space_residual, fit_animation_skin
        from a3d_cli.mesh.store import read_processed_mesh
        from a3d_cli.mesh.texture_limit import limit_texture

        # 1. inputs: splats + motion (digest checked), binding, processed mesh, normalization
        static, field, motion_fps = load_static_and_motion(ctx, motion_rel)
        binding = MeshBinding.load(ctx.input(BINDING))
        if binding.num_splats != len(static):
            raise InputError(
                f"The mesh binding covers {binding.num_splats} splats but static/gaussians.ply has {len(static)}.",
                hint="static/gaussians.ply was replaced after `a3d prepare`; re-run `a3d prepare --force`.",
            )
        mesh_path = ctx.input(PROCESSED_MESH)
        processed = read_processed_mesh(mesh_path, expected_vertices=len(binding.vertex_splat))
        if opts.max_texture_size is not None:  # a texture longer a side is decoded and reduced
            ctx.progress.start(f"mesh-animate: texture to at most {opts.max_texture_size} px a side")
            processed = limit_texture(processed, opts.max_texture_size, str(mesh_path))
        mesh = processed.mesh  # its atlas kept as the PNG prepare wrote, where that is what would be written
        norm = read_normalization(ctx.run_dir)
        timing = clip_timing(
            field.config.num_frames, motion_fps, opts.fps, opts.duration, opts.loop_mode if opts.loop else "off"
        )
        clip = MotionClip(field, static, timing)

        # 2. every exported frame: the motion at the vertex splats (optionally made locally rigid) → vertices
        ctx.progress.start("mesh-animate: frames", total=len(timing))
        frames = mesh_frames(clip, binding, opts.rigidity, opts.rigidity_iterations, ctx.progress)  # [K, V, 3]

        # 3. back to the asset's own frame; write the GLB (morph targets or a fitted skin) and the vertex cache
        base = norm.invert(mesh.vertices)  # [V, 3]
        frames_orig = norm.invert(frames)  # [K, V, 3]
        material, colors = mesh_material(mesh, processed.atlas)
        glb = {"uvs": processed.uvs, "colors": colors, "material": material, "fps": timing.key_rate,
               "interpolation": "STEP" if opts.interpolation == "step" else "LINEAR", "loop": timing.closes,
               "normal_groups": mesh.normal_groups}  # fmt: skip
        if opts.skin:
            ctx.progress.start(f"mesh-animate: fitting {opts.bones} bones")
            fit = fit_animation_skin(base, frames_orig, opts.bones, welded=binding.vertex_splat)
            miss = fit.residual(base, frames_orig)  # [K, V, 3]
            deltas = bind_space_residual(fit.joints, fit.weights, fit.rotations, miss) if opts.residual else None
            write_skinned_glb(ctx.output(EXPORT_GLB), base, mesh.faces, fit.joints, fit.weights,
                              fit.centres, fit.rotations, fit.translations, residual=deltas, **glb)  # fmt: skip
            err_mean, err_max = offset_pct_of_radius(miss * norm.scale, norm.radius)  # miss: original frame
            ctx.metrics.update(
                bones=fit.num_bones, skin_error_mean_pct_radius=err_mean, skin_error_max_pct_radius=err_max
            )
        else:
            write_animated_glb(ctx.output(EXPORT_GLB), base, mesh.faces, frames_orig,
                               morph_normals=opts.normals, **glb)  # fmt: skip
        with atomic_path(ctx.output(EXPORT_VERTICES)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, frames_orig.astype(np.float32))

        # 4. numbers for the manifest: how far the mesh moves, and how it jumps where a player repeats it
        disp_mean, disp_max = offset_pct_of_radius(frames - mesh.vertices[None], norm.radius)
        ctx.metrics.update(
            frames=len(timing),
            vertices=mesh.num_vertices,
            faces=mesh.num_faces,
            fps=timing.key_rate,
            duration_s=timing.duration,
            loop=timing.loop,
            motion=motion_rel,
            max_displacement_pct_radius=disp_max,
            mean_displacement_pct_radius=disp_mean,
            **({"seam": seam_jumps(frames, timing.key_rate, timing.closes, norm.radius)} if len(timing) >= 3 else {}),
        )

    return run_stage("mesh-animate", run_dir, opts, body, rt, requires=requires, recipe=RECIPE)
