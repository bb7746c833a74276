"""`a3d mesh-animate RUN`: the input mesh, moved by the fitted motion, as an animated GLB and a vertex cache.

For mesh inputs, `a3d prepare` gave every welded mesh vertex its own splat (`static/binding.safetensors`:
splat `vertex_splat[v]` drives mesh vertex v; seam copies share one splat, so seams never tear). This stage
evaluates the motion field on the static splats at every frame, reads the vertex splats' centres — i.e. the
motion field evaluated at the mesh vertices — and writes:

- `export/animated.glb`: the processed mesh (`source/mesh.glb`: its texture atlas, vertex colours and
  UVs) with one morph target per frame and an animation `a3d_motion` playing them at `--fps` (default:
  the motion's own rate, 8 fps for MV-VDM's 16 frames), in the asset's *original* coordinate frame
  (`source/normalization.json` undone);
- `export/vertices.npy`: float32 [F, V, 3] positions of every mesh vertex at every frame, same frame and
  vertex order as the GLB, for DCC scripts (Blender, Houdini) that build their own caches.

Optionally (`--rigidity λ`, off by default) the per-frame vertex positions are projected onto an
as-rigid-as-possible deformation of the rest mesh over its 1-ring graph before export — a clean-up for
motions that were not trained with mesh ARAP (`a3d_cli.mesh.rigidity.arap_project`).

Examples:
    >>> run(Path("RUN"), MeshAnimateOptions(fps=12))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from a3d_cli.errors import InputError, OptionError
from a3d_cli.gaussians.motion_run import MotionChoice, load_static_and_motion, motion_kind
from a3d_cli.run_layout import (
    BINDING,
    EXPORT_GLB,
    EXPORT_VERTICES,
    MOTION_FILES,
    NORMALIZATION_JSON,
    PROCESSED_MESH,
    STATIC_PLY,
)
from a3d_cli.stages.producers import MOTION_PRODUCERS, PREPARE
from a3d_cli.stages.base import Runtime, StageContext, StageResult, ensure_run_dir, run_stage



@dataclass(frozen=True)
class MeshAnimateOptions:
    """Options of `a3d mesh-animate`."""

    motion: MotionChoice = "auto"
    """Which motion file: "refined", "coarse", or "auto" (refined when present, else coarse)."""
    fps: float | None = None
    """Animation rate in the GLB; None uses the motion file's (8 fps, the video's effective rate)."""
    interpolation: Literal["linear", "step"] = "linear"
    """"linear" blends neighbouring frames (smooth playback), "step" shows each frame exactly."""
    loop: bool = True
    """End the animation with a key back to frame 0, so looping players wrap around cleanly."""
    normals: bool = True
    """Store per-frame normal deltas too (correct shading while moving; about doubles the file size)."""
    rigidity: float = 0.0
    """Weight λ of an ARAP projection of each frame over the mesh 1-ring graph (0 = export the motion as is;
    the reference trains its mesh motion with a 1-ring ARAP weight of 4)."""
    rigidity_iterations: int = 8
    """Local/global ARAP iterations per frame when `rigidity` > 0."""

    def __post_init__(self) -> None:
        if self.motion not in ("auto", "coarse", "refined"):
            raise OptionError(f"--motion must be auto, coarse or refined, got {self.motion!r}.")
        if self.fps is not None and not (math.isfinite(self.fps) and 0 < self.fps <= 240):
            raise OptionError(f"--fps must be in (0, 240], got {self.fps}.")
        if self.interpolation not in ("linear", "step"):
            raise OptionError(f"--interpolation must be linear or step, got {self.interpolation!r}.")
        if not (math.isfinite(self.rigidity) and 0.0 <= self.rigidity <= 1e4):
            raise OptionError(f"--rigidity must be between 0 and 10000, got {self.rigidity}.")
        if not 1 <= self.rigidity_iterations <= 100:
            raise OptionError(f"--rigidity-iterations must be between 1 and 100, got {self.rigidity_iterations}.")


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
        import torch

        from a3d_cli.io.atomic import atomic_path
        from a3d_cli.mesh.binding import MeshBinding
        from a3d_cli.mesh.gltf_animated import mesh_material, write_animated_glb
        from a3d_cli.mesh.rigidity import arap_project
        from a3d_cli.mesh.normalize import Normalization
        from a3d_cli.mesh.store import load_processed_mesh

        # 1. inputs: splats + motion (digest checked), binding, processed mesh, normalization
        static, field, motion_fps = load_static_and_motion(ctx, motion_rel)
        binding = MeshBinding.load(ctx.input(BINDING))
        if binding.num_splats != len(static):
            raise InputError(
                f"The mesh binding covers {binding.num_splats} splats but static/gaussians.ply has {len(static)}.",
                hint="static/gaussians.ply was replaced after `a3d prepare`; re-run `a3d prepare --force`.",
            )
        mesh = load_processed_mesh(ctx.input(PROCESSED_MESH), expected_vertices=len(binding.vertex_splat))
        norm = Normalization.from_json(json.loads(ctx.input(NORMALIZATION_JSON).read_text()))
        num_frames = field.config.num_frames
        fps = opts.fps or motion_fps
        w = binding.num_vertex_splats

        # 2. every frame: the motion at the vertex splats (optionally made locally rigid) → mesh vertices
        rest_welded = static.means[:w].double().cpu().numpy()  # [W, 3]
        ctx.progress.start("mesh-animate: frames", total=num_frames)
        frames = np.empty((num_frames, mesh.num_vertices, 3), dtype=np.float64)  # [F, V, 3] normalized
        with torch.no_grad():
            for k in range(num_frames):
                welded = field.deform(static, k).means[:w].double().cpu().numpy()  # [W, 3]
                if opts.rigidity > 0 and k > 0:
                    welded = arap_project(rest_welded, welded, binding.edges, opts.rigidity, opts.rigidity_iterations)
                frames[k] = welded[binding.vertex_splat]
                ctx.progress.update(1)

        # 3. back to the asset's own frame; write the GLB and the vertex cache
        base = norm.invert(mesh.vertices)  # [V, 3]
        frames_orig = norm.invert(frames)  # [F, V, 3]
        material, colors = mesh_material(mesh)
        write_animated_glb(
            ctx.output(EXPORT_GLB),
            base,
            mesh.faces,
            frames_orig,
            uvs=mesh.uvs,
            colors=colors,
            material=material,  # type: ignore[arg-type]
            fps=fps,
            interpolation="STEP" if opts.interpolation == "step" else "LINEAR",
            loop=opts.loop,
            morph_normals=opts.normals,
        )
        with atomic_path(ctx.output(EXPORT_VERTICES)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, frames_orig.astype(np.float32))

        # 4. numbers for the manifest: how far the mesh moves, relative to its normalized radius
        disp = np.linalg.norm(frames - mesh.vertices[None], axis=-1)  # [F, V]
        ctx.metrics.update(
            frames=num_frames,
            vertices=mesh.num_vertices,
            faces=mesh.num_faces,
            fps=fps,
            motion=motion_rel,
            max_displacement_pct_radius=float(100.0 * disp.max() / norm.radius),
            mean_displacement_pct_radius=float(100.0 * disp.mean() / norm.radius),
        )

    return run_stage("mesh-animate", run_dir, opts, body, rt, requires=requires)
