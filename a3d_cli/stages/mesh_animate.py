"""`a3d mesh-animate RUN`: the input mesh, moved by the fitted motion, as an animated GLB and a vertex cache.

For mesh inputs, `a3d prepare` gave every welded mesh vertex its own splat (`static/binding.safetensors`:
splat `vertex_splat[v]` drives mesh vertex v; seam copies share one splat, so seams never tear). This stage
evaluates the motion field on the static splats at every frame, reads the vertex splats' centres — i.e. the
motion field evaluated at the mesh vertices — at every frame of the export clip (the continuous field
sampled at `--fps` over `--duration`, optionally made cyclic by `--loop`; see `gaussians.motion_clip`),
and writes:

- `export/animated.glb`: the processed mesh (`source/mesh.glb`: its texture atlas, vertex colours and
  UVs) in the asset's *original* coordinate frame (`source/normalization.json` undone), animated by one
  morph target per frame, or with `--skin` by a skeleton fitted to the motion (`mesh.skinning`: bones
  with linear-blend weights, optionally plus residual morph targets);
- `export/vertices.npy`: float32 [K, V, 3] positions of every mesh vertex at every exported frame, same
  frame and vertex order as the GLB, for DCC scripts (Blender, Houdini) that build their own caches.

Optionally (`--rigidity λ`, off by default) the per-frame vertex positions are projected onto an
as-rigid-as-possible deformation of the rest mesh over its 1-ring graph before export — a clean-up for
motions that were not trained with mesh ARAP (see `arap_project`).

Examples:
    >>> run(Path("RUN"), MeshAnimateOptions(fps=12))  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from a3d_cli.errors import InputError, OptionError
from a3d_cli.gaussians.motion_run import (
    NORMALIZATION_JSON,
    STATIC_PLY,
    MotionChoice,
    load_static_and_motion,
    motion_input,
)
from a3d_cli.stages.base import Runtime, StageContext, StageResult, ensure_run_dir, run_stage

if TYPE_CHECKING:
    from a3d_cli.mesh.surface import SurfaceMesh

DEFAULT_FPS = 24.0
DEFAULT_BONES = 32
BINDING = "static/binding.safetensors"
PROCESSED_MESH = "source/mesh.glb"
PREPARE = "a3d prepare MODEL -o RUN"


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

    def __post_init__(self) -> None:
        if self.motion not in ("auto", "coarse", "refined"):
            raise OptionError(f"--motion must be auto, coarse or refined, got {self.motion!r}.")
        if not (math.isfinite(self.fps) and 0 < self.fps <= 240):
            raise OptionError(f"--fps must be in (0, 240], got {self.fps}.")
        if self.duration is not None and not (math.isfinite(self.duration) and 0 < self.duration <= 600):
            raise OptionError(f"--duration must be in (0, 600] seconds, got {self.duration}.")
        if self.loop_mode not in ("blend", "pingpong"):
            raise OptionError(f"--loop-mode must be blend or pingpong, got {self.loop_mode!r}.")
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


# -- rigidity clean-up ----------------------------------------------------------------------------------


def arap_project(
    rest: np.ndarray,  # [W, 3]
    target: np.ndarray,  # [W, 3]
    edges: np.ndarray,  # [E, 2]
    weight: float,
    iterations: int = 8,
    cg_steps: int = 200,
) -> np.ndarray:
    """The deformation closest to `target` that keeps the rest mesh's 1-rings as rigid as possible.

    Minimises  Σ_i |x_i − y_i|² + λ Σ_i Σ_{j∈N(i)} |(x_i − x_j) − R_i (p_i − p_j)|²  by alternating the
    best rotations R_i (SVD of each 1-ring's edge covariance) and the linear solve
    (I + 2λ L) x = y + λ Σ_j (R_i + R_j)(p_i − p_j), L the graph Laplacian (conjugate gradients, warm-started).
    Rigid motions of the whole mesh are left unchanged (their energy is zero).

    Args:
        rest: [W, 3] rest positions p.
        target: [W, 3] positions y from the motion field.
        edges: [E, 2] undirected edges of the 1-ring graph.
        weight: λ ≥ 0 (0 returns `target`).
        iterations: local/global rounds.
        cg_steps: cap on conjugate-gradient steps per solve.

    Returns:
        [W, 3] float64 positions x.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a long chain of tiny ops: intra-op threads only add overhead (30x on 2 busy cores)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return _arap_project(rest, target, edges, weight, iterations, cg_steps)
    finally:
        torch.set_num_threads(threads)


def _arap_project(
    rest: np.ndarray, target: np.ndarray, edges: np.ndarray, weight: float, iterations: int, cg_steps: int
) -> np.ndarray:
    import torch

    y = torch.as_tensor(np.asarray(target), dtype=torch.float64)  # [W, 3]
    if weight <= 0 or len(edges) == 0:
        return y.numpy()
    p = torch.as_tensor(np.asarray(rest), dtype=torch.float64)  # [W, 3]
    e = torch.as_tensor(np.asarray(edges), dtype=torch.long)
    src = torch.cat([e[:, 0], e[:, 1]])  # [2E] directed edges i → j
    dst = torch.cat([e[:, 1], e[:, 0]])
    w = p.shape[0]
    ones = torch.ones(src.shape[0], dtype=torch.float64)
    degree = torch.zeros(w, dtype=torch.float64).index_add_(0, src, ones)  # [W]
    rest_edges = p[src] - p[dst]  # [2E, 3]
    # A = I + 2λL as one sparse matrix: diagonal 1 + 2λ·deg, off-diagonal −2λ per edge
    diag = torch.arange(w)
    a_mat = (
        torch.sparse_coo_tensor(
            torch.stack([torch.cat([diag, src]), torch.cat([diag, dst])]),
            torch.cat([1.0 + 2.0 * weight * degree, torch.full_like(ones, -2.0 * weight)]),
            (w, w),
            check_invariants=False,
        )
        .coalesce()
        .to_sparse_csr()
    )
    inv_diag = (1.0 / (1.0 + 2.0 * weight * degree))[:, None]  # [W, 1] Jacobi preconditioner

    x = y.clone()
    for _ in range(iterations):
        # local step: best rotation per vertex from its 1-ring
        cur_edges = x[src] - x[dst]  # [2E, 3]
        cov = torch.zeros(w, 3, 3, dtype=torch.float64).index_add_(
            0, src, rest_edges[:, :, None] * cur_edges[:, None, :]
        )  # [W, 3, 3] Σ p_ij x_ijᵀ
        u, _, vh = torch.linalg.svd(cov)
        rot = vh.transpose(-1, -2) @ u.transpose(-1, -2)  # [W, 3, 3]
        flip = torch.linalg.det(rot) < 0
        if flip.any():
            vh = vh.clone()
            vh[flip, 2] *= -1
            rot = vh.transpose(-1, -2) @ u.transpose(-1, -2)
        # global step: warm-started, Jacobi-preconditioned conjugate gradients on the SPD system
        rhs_edges = torch.einsum("eab,eb->ea", rot[src] + rot[dst], rest_edges)  # [2E, 3]
        b = y + weight * torch.zeros_like(y).index_add_(0, src, rhs_edges)  # [W, 3]
        r = b - a_mat @ x
        z = inv_diag * r
        d = z.clone()
        rz = (r * z).sum(0)  # [3] one system per coordinate
        tol = (1e-8 * b.norm()) ** 2
        for _ in range(cg_steps):
            if float((r * r).sum()) <= tol:
                break
            ad = a_mat @ d
            alpha = rz / (d * ad).sum(0).clamp_min(1e-300)
            x = x + alpha * d
            r = r - alpha * ad
            z = inv_diag * r
            rz_new = (r * z).sum(0)
            d = z + (rz_new / rz.clamp_min(1e-300)) * d
            rz = rz_new
    return x.numpy()


# -- appearance -------------------------------------------------------------------------------------


def mesh_material(mesh: SurfaceMesh) -> tuple[object, np.ndarray | None]:
    """The glTF material and optional COLOR_0 of a processed mesh, as `a3d prepare` stored them.

    Uniform vertex colours become the base-colour factor (linear), varying ones COLOR_0 (linear).

    Returns:
        (MeshMaterial, [V, 4] linear RGBA or None).
    """
    from PIL import Image

    from a3d_cli.mesh.appearance import srgb_to_linear
    from a3d_cli.mesh.gltf_animated import MeshMaterial

    rgba = np.asarray(mesh.vertex_colors, dtype=np.float64)  # [V, 4] sRGB
    linear = np.concatenate([srgb_to_linear(rgba[:, :3]), np.clip(rgba[:, 3:], 0, 1)], axis=1)  # [V, 4]
    uniform = bool(np.allclose(linear, linear[:1], atol=1.0 / 512))
    factor = tuple(float(c) for c in linear[0]) if uniform else (1.0, 1.0, 1.0, 1.0)
    texture = None
    translucent = bool((rgba[:, 3] < 1.0 - 1e-6).any())
    if mesh.texture is not None:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(mesh.texture), mode="RGBA").save(buf, format="PNG")
        texture = buf.getvalue()
        translucent = translucent or bool((mesh.texture[..., 3] < 255).any())
    material = MeshMaterial(
        base_color_factor=factor,  # type: ignore[arg-type]
        metallic_factor=0.0,
        roughness_factor=1.0,
        base_color_texture=texture,
        alpha_mode="BLEND" if translucent else "OPAQUE",
        name="a3d_material",
    )
    return material, (None if uniform else linear.astype(np.float32))


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
    motion_rel, producer = motion_input(run_dir, opts.motion)
    requires = {
        STATIC_PLY: PREPARE,
        BINDING: PREPARE,
        PROCESSED_MESH: PREPARE,
        NORMALIZATION_JSON: PREPARE,
        motion_rel: producer,
    }

    def body(ctx: StageContext) -> None:
        import torch

        from a3d_cli.gaussians.motion_clip import MotionClip, clip_timing, seam_jumps
        from a3d_cli.io.atomic import atomic_path
        from a3d_cli.mesh.binding import MeshBinding
        from a3d_cli.mesh.gltf_animated import write_animated_glb, write_skinned_glb
        from a3d_cli.mesh.normalize import Normalization
        from a3d_cli.mesh.skinning import bind_space_residual, fit_animation_skin
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
        timing = clip_timing(
            field.config.num_frames, motion_fps, opts.fps, opts.duration, opts.loop_mode if opts.loop else "off"
        )
        clip = MotionClip(field, static, timing)
        w = binding.num_vertex_splats

        # 2. every exported frame: the motion at the vertex splats (optionally made locally rigid) → vertices
        rest_welded = static.means[:w].double().cpu().numpy()  # [W, 3]
        ctx.progress.start("mesh-animate: frames", total=len(timing))
        frames = np.empty((len(timing), mesh.num_vertices, 3), dtype=np.float64)  # [K, V, 3] normalized
        with torch.no_grad():
            for j in range(len(timing)):
                welded = clip.frame(j).means[:w].double().cpu().numpy()  # [W, 3]
                if opts.rigidity > 0 and timing.positions[j] > 0:
                    welded = arap_project(rest_welded, welded, binding.edges, opts.rigidity, opts.rigidity_iterations)
                frames[j] = welded[binding.vertex_splat]
                ctx.progress.update(1)

        # 3. back to the asset's own frame; write the GLB (morph targets or a fitted skin) and the vertex cache
        base = norm.invert(mesh.vertices)  # [V, 3]
        frames_orig = norm.invert(frames)  # [K, V, 3]
        material, colors = mesh_material(mesh)
        glb = {"uvs": mesh.uvs, "colors": colors, "material": material, "fps": timing.key_rate,
               "interpolation": "STEP" if opts.interpolation == "step" else "LINEAR", "loop": timing.closes}  # fmt: skip
        if opts.skin:
            ctx.progress.start(f"mesh-animate: fitting {opts.bones} bones")
            fit = fit_animation_skin(base, frames_orig, opts.bones, welded=binding.vertex_splat)
            miss = fit.residual(base, frames_orig)  # [K, V, 3]
            deltas = bind_space_residual(fit.joints, fit.weights, fit.rotations, miss) if opts.residual else None
            write_skinned_glb(ctx.output("export/animated.glb"), base, mesh.faces, fit.joints, fit.weights,
                              fit.centres, fit.rotations, fit.translations, residual=deltas, **glb)  # fmt: skip
            err = np.linalg.norm(miss, axis=-1) * norm.scale / norm.radius * 100.0  # [K, V] % of the radius
            ctx.metrics.update(bones=fit.num_bones, skin_error_mean_pct_radius=float(err.mean()),
                               skin_error_max_pct_radius=float(err.max()))  # fmt: skip
        else:
            write_animated_glb(ctx.output("export/animated.glb"), base, mesh.faces, frames_orig,
                               morph_normals=opts.normals, **glb)  # fmt: skip
        with atomic_path(ctx.output("export/vertices.npy")) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, frames_orig.astype(np.float32))

        # 4. numbers for the manifest: how far the mesh moves, and how it jumps where a player repeats it
        disp = np.linalg.norm(frames - mesh.vertices[None], axis=-1)  # [K, V]
        ctx.metrics.update(
            frames=len(timing),
            vertices=mesh.num_vertices,
            faces=mesh.num_faces,
            fps=timing.key_rate,
            duration_s=timing.duration,
            loop=timing.loop,
            motion=motion_rel,
            max_displacement_pct_radius=float(100.0 * disp.max() / norm.radius),
            mean_displacement_pct_radius=float(100.0 * disp.mean() / norm.radius),
            **({"seam": seam_jumps(frames, timing.key_rate, timing.closes, norm.radius)} if len(timing) >= 3 else {}),
        )

    return run_stage("mesh-animate", run_dir, opts, body, rt, requires=requires)
