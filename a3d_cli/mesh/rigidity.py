"""As-rigid-as-possible projection of a mesh deformation over its 1-ring graph (a clean-up for exports).

`a3d mesh-animate --rigidity λ` projects each frame's vertex positions onto the deformation of the rest mesh
closest to them whose 1-rings move as rigidly as possible. (The training-time ARAP loss of the motion fits
is `a3d_cli.gaussians.arap`; this is a solver, not a loss.) `mesh_frames` is the mesh of a clip, frame by
frame: each vertex follows its splat, after that projection when asked.

Examples:
    >>> x = arap_project(rest, moved, edges, weight=4.0)  # doctest: +SKIP
    >>> frames = mesh_frames(clip, binding, rigidity=4.0)  # doctest: +SKIP
    >>> offset_pct_of_radius(np.array([[0.0, 0.0, 0.09], [0.0, 0.0, 0.0]]), radius=0.9)
    (5.0, 10.0)
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from a3d_cli.geometry import kabsch_rotation

if TYPE_CHECKING:
    from a3d_cli.gaussians.motion_clip import MotionClip
    from a3d_cli.mesh.binding import MeshBinding
    from a3d_cli.progress import Progress


def mesh_frames(
    clip: MotionClip, binding: MeshBinding, rigidity: float, iterations: int = 8, progress: Progress | None = None
) -> np.ndarray:
    """The bound mesh's vertex positions at every frame of `clip`, in the normalized frame.

    Each vertex follows its vertex splat (`MeshBinding.vertex_positions`). With `rigidity` > 0 the vertex
    splats of every frame off the rest pose are first projected by `arap_project` over the mesh's 1-rings
    (a frame at clip position 0 is the rest pose and is left as it is).

    Args:
        clip: the motion clip of the static splats the binding was made with.
        binding: the mesh ↔ splat binding.
        rigidity: `arap_project`'s weight λ (0 = no projection).
        iterations: `arap_project`'s local/global iterations.
        progress: advanced by one per frame.

    Returns:
        [K, V, 3] float64, K = len(clip), V the mesh's vertices.
    """
    import torch

    w = binding.num_vertex_splats
    rest = clip.static.means[:w].double().cpu().numpy()  # [W, 3]
    frames = np.empty((len(clip), len(binding.vertex_splat), 3), dtype=np.float64)
    with torch.no_grad():
        for j in range(len(clip)):
            welded = clip.frame(j).means[:w].double().cpu().numpy()  # [W, 3]
            if rigidity > 0 and clip.timing.positions[j] > 0:
                welded = arap_project(rest, welded, binding.edges, rigidity, iterations)
            frames[j] = binding.vertex_positions(welded)
            if progress is not None:
                progress.update(1)
    return frames


def offset_pct_of_radius(offsets: np.ndarray, radius: float) -> tuple[float, float]:
    """Mean and largest length of [..., 3] offsets (normalized frame), in % of the object's `radius`.

    Why: a3d scales every asset to the same radius (`a3d_cli.mesh.normalize`), so lengths in % of it compare
    across assets: how far a mesh moves from its rest pose, how far a fitted skin misses the motion.
    """
    length = np.linalg.norm(offsets, axis=-1)
    return float(100.0 * length.mean() / radius), float(100.0 * length.max() / radius)


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
    torch.set_num_threads(1)  # a long chain of tiny ops: intra-op threads only add overhead
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
        rot = kabsch_rotation(cov)  # [W, 3, 3]
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


__all__ = ["arap_project", "mesh_frames", "offset_pct_of_radius"]
