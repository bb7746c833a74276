"""As-rigid-as-possible (ARAP) regularisation of a point motion, as Animate3D uses it (from SC-GS).

For rest positions x⁰ [N, 3] and deformed positions xᶠ at frames f, each sampled point i with
neighbours j_k gets the rotation R_iᶠ that best maps its rest edges onto its deformed edges (Kabsch,
solved without an SVD so that it never waits on the host, and without gradient), and the energy is

    E = Σ_f Σ_{i ∈ S} Σ_k w_ik ‖(x_iᶠ − x_jkᶠ) − R_iᶠ (x_i⁰ − x_jk⁰)‖²,

a *sum* (not a mean) over frames, sampled points and edges — the reference's reduction, so its loss
weight (12 for splats, 4 for meshes) keeps its meaning. w_ik is 1 for a real edge, 0 for padding.

Two neighbourhood schemes (yanqinJiang/Animate3D `custom/threestudio-animate3d/systems/animate3d.py`,
`configs/motion_recon_frame_16.yaml` and `configs/mesh_animation_frame_16.yaml`):

* splats (`knn_neighbours`): the K = 3 nearest other splats in the static model, fixed for the whole
  fit. The reference also passes a radius (0.01) but keeps the first 3 neighbours whatever their
  distance, so with K = 3 the radius has no effect; we drop it.
* meshes (`mesh_one_ring` + `sample_neighbours`): each vertex's 1-ring from the faces, and every step
  K = 3 random ring members per vertex (fewer when the ring is smaller).

S is `sample_points` (512) points drawn uniformly *with replacement* each step, as in the reference.

Examples:
    >>> rest = torch.rand(200, 3)
    >>> reg = ArapRegularizer.from_points(rest)
    >>> rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90° about z
    >>> moved = rest @ rot.T + 0.5  # a rigid motion
    >>> float(reg(moved[None])) < 1e-8
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from a3d_cli.geometry import horn_rotation, kabsch_rotation


@dataclass(frozen=True)
class Neighbours:
    """A padded neighbour table.

    Attributes:
        idx: [N, M] neighbour indices; -1 marks padding (fewer than M neighbours).
    """

    idx: Tensor  # [N, M]

    @property
    def valid(self) -> Tensor:
        """[N, M] bool, True for real neighbours."""
        return self.idx >= 0


def knn_neighbours(points: Tensor, k: int = 3, chunk_elements: int = 1 << 26) -> Neighbours:
    """The k nearest *other* points of every point (exact, brute force in chunks).

    Args:
        points: [N, 3].
        k: neighbours per point (clamped to N - 1).
        chunk_elements: size of one block of the distance matrix (memory knob, ~256 MiB by default).

    Returns:
        `Neighbours` with idx [N, k], nearest first.
    """
    n = points.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return Neighbours(torch.full((n, 0), -1, dtype=torch.long, device=points.device))
    rows = max(1, chunk_elements // max(n, 1))
    out = []
    for start in range(0, n, rows):
        block = points[start : start + rows]  # [B, 3]
        d = torch.cdist(block, points)  # [B, N]
        ar = torch.arange(block.shape[0], device=points.device)
        d[ar, ar + start] = float("inf")  # never your own neighbour
        out.append(d.topk(k, dim=1, largest=False).indices)  # [B, k]
    return Neighbours(torch.cat(out, dim=0))


def mesh_one_ring(faces: Tensor, num_vertices: int) -> Neighbours:
    """Each vertex's 1-ring (vertices sharing an edge with it) from triangle faces.

    Args:
        faces: [T, 3] vertex indices.
        num_vertices: N (isolated vertices get an empty ring).

    Returns:
        `Neighbours` with idx [N, M], M the largest ring size, padded with -1.
    """
    f = faces.long()
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0)  # [3T, 2]
    edges = torch.cat([edges, edges.flip(1)], dim=0)  # both directions
    edges = edges[edges[:, 0] != edges[:, 1]]
    edges = torch.unique(edges, dim=0)  # sorted by source, then target
    src, dst = edges[:, 0], edges[:, 1]
    counts = torch.bincount(src, minlength=num_vertices)  # [N]
    m = int(counts.max()) if counts.numel() else 0
    starts = torch.cumsum(counts, 0) - counts  # [N]
    slot = torch.arange(src.shape[0], device=f.device) - starts[src]  # position of each edge in its ring
    idx = torch.full((num_vertices, m), -1, dtype=torch.long, device=f.device)
    idx[src, slot] = dst
    return Neighbours(idx)


def sample_neighbours(ring: Neighbours, k: int, generator: torch.Generator | None = None) -> Neighbours:
    """k random distinct members of each vertex's ring (the mesh path's per-step sampling).

    Args:
        ring: [N, M] padded rings.
        k: how many to keep; vertices with smaller rings keep all theirs, padded with -1.
        generator: random source (on the ring's device).

    Returns:
        `Neighbours` with idx [N, k].
    """
    n, m = ring.idx.shape
    r = torch.rand(n, m, generator=generator, device=ring.idx.device)  # [N, M]
    r = torch.where(ring.valid, r, r + 2.0)  # padding sorts last
    order = r.argsort(dim=1)[:, :k]  # [N, k']
    picked = ring.idx.gather(1, order)  # [N, k']
    if picked.shape[1] < k:
        picked = torch.cat([picked, picked.new_full((n, k - picked.shape[1]), -1)], dim=1)
    return Neighbours(picked)


def best_rotations(rest_edges: Tensor, edges: Tensor, weights: Tensor, squarings: int = 20) -> Tensor:
    """Per-point rotation that best maps weighted rest edges onto deformed edges (Kabsch), without host sync.

    Solved by `a3d_cli.geometry.horn_rotation` (no SVD: no device synchronisation, CUDA-graph safe); the
    same rotation as `best_rotations_svd` to float precision.

    Args:
        rest_edges: [B, K, 3].
        edges: [B, K, 3].
        weights: [B, K].
        squarings: repeated squarings of the shifted matrix (power 2^squarings).

    Returns:
        [B, 3, 3] proper rotations (det +1) R with R·rest ≈ edges; the identity where all weights are 0.
    """
    cov = torch.einsum("bki,bk,bkj->bij", rest_edges, weights, edges)  # [B, 3, 3] Σ w e⁰ eᵀ
    return horn_rotation(cov, squarings)


def best_rotations_svd(rest_edges: Tensor, edges: Tensor, weights: Tensor) -> Tensor:
    """The textbook Kabsch fit by SVD (reference for `best_rotations`; it synchronises on CUDA).

    Args:
        rest_edges: [B, K, 3].
        edges: [B, K, 3].
        weights: [B, K].

    Returns:
        [B, 3, 3] proper rotations (det +1) R with R·rest ≈ edges.
    """
    cov = torch.einsum("bki,bk,bkj->bij", rest_edges, weights, edges)  # [B, 3, 3] Σ w e⁰ eᵀ
    return kabsch_rotation(cov)


def arap_energy(rest: Tensor, deformed: Tensor, neighbours: Neighbours, sample: Tensor | None = None) -> Tensor:
    """ARAP energy of F deformed frames against the rest pose (sum over frames, points, edges).

    Args:
        rest: [N, 3] rest positions (frame 0; no gradient needed).
        deformed: [F, N, 3] positions at F frames.
        neighbours: [N, K] neighbour table.
        sample: [S] point indices to score (default: all N).

    Returns:
        scalar tensor; gradients flow into `deformed` only (rotations are treated as constants).
    """
    if sample is None:
        sample = torch.arange(rest.shape[0], device=rest.device)  # [N]
    return arap_energy_at(rest, deformed, sample, neighbours.idx[sample])


def arap_energy_at(
    rest: Tensor, deformed: Tensor, centre: Tensor, idx: Tensor, frame_weights: Tensor | None = None
) -> Tensor:
    """`arap_energy` for given points and their neighbour rows: fixed shapes, no randomness, no host sync.

    Args:
        rest: [N, 3] rest positions.
        deformed: [F, N, 3] positions at F frames.
        centre: [S] indices of the scored points.
        idx: [S, K] their neighbours (-1 = padding, weight 0).
        frame_weights: [F] weight of each frame's term (None = 1 each); the motion fit's padded steps
            give their padding frames weight 0.

    Returns:
        scalar tensor (see `arap_energy`).
    """
    w = (idx >= 0).to(deformed.dtype)  # [S, K]
    j = idx.clamp(min=0)  # [S, K]
    rest_edges = rest[centre][:, None, :] - rest[j]  # [S, K, 3]
    edges = deformed[:, centre][:, :, None, :] - deformed[:, j]  # [F, S, K, 3]
    f, s, k, _ = edges.shape
    with torch.no_grad():
        rot = best_rotations(
            rest_edges[None].expand(f, s, k, 3).reshape(f * s, k, 3),
            edges.detach().reshape(f * s, k, 3),
            w[None].expand(f, s, k).reshape(f * s, k),
        )
        rot = rot.reshape(f, s, 3, 3)
    rigid = torch.einsum("fsij,skj->fski", rot, rest_edges)  # [F, S, K, 3]
    residual = (edges - rigid).square().sum(-1) * w  # [F, S, K]
    if frame_weights is not None:
        residual = residual * frame_weights[:, None, None]
    return residual.sum()


def nonrigidity_pct(points: Tensor, k: int = 3) -> float:
    """How far a motion is from locally rigid, as the ARAP term measures it: the rms residual of every
    point's k nearest-neighbour edges after their best rotation, over frames 1 … F-1, in % of the rms rest
    edge length (0 for any rigid motion, about 100·s for a uniform stretch by s).

    Used to compare known motions across assets (examples/make_ground_truth_motion.py `--nonrigidity`,
    benchmarks/bench_reconstruct.py).

    Args:
        points: [F, N, 3] positions per frame; frame 0 is the rest state.
    """
    p = points.detach().float()
    nb = knn_neighbours(p[0], k)
    rest_len2 = (p[0][:, None] - p[0][nb.idx.clamp_min(0)]).square().sum(-1)[nb.valid]
    per_edge = float(arap_energy(p[0], p[1:], nb)) / max(int(nb.valid.sum()) * (p.shape[0] - 1), 1)
    return 100.0 * (per_edge / max(float(rest_len2.mean()), 1e-30)) ** 0.5


class NeighbourPrior(ABC):
    """A motion prior scored on sampled points and their rest neighbours: neighbours fixed at construction,
    points drawn per call. Subclasses say what a drawn neighbourhood costs (`energy`).

    A call is `draw` (the random part: which points, and in mesh mode which ring members) followed by
    `energy` (deterministic, fixed shapes): the motion fit draws eagerly and replays the energy inside
    a CUDA graph.

    Args:
        rest: [N, 3] static positions.
        neighbours: [N, M] table: the k-NN table (splats) or the full 1-rings (meshes).
        k: edges per point per call; with `resample` a fresh random k of the M are drawn per call.
        sample_points: points scored per call, drawn with replacement (0 = all points, deterministic).
        resample: draw k of the M neighbours per call (mesh 1-ring mode).
    """

    def __init__(
        self, rest: Tensor, neighbours: Neighbours, k: int = 3, sample_points: int = 512, resample: bool = False
    ) -> None:
        self.rest = rest.detach()
        self.neighbours = neighbours
        self.k = k
        self.sample_points = sample_points
        self.resample = resample

    def draw(
        self, generator: torch.Generator | None = None, out: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """The random part of one call: scored points [S] and their neighbour rows [S, K] (-1 = padding).

        Draw order (ring members first, then points) is the one `__call__` has always used, so a seed
        gives the same draws either way.

        Args:
            generator: random source (on the points' device).
            out: tensors of those shapes to draw into (the same numbers as a fresh draw). Why: a recorded
                CUDA graph reads its inputs from fixed addresses, so drawing straight into them saves a
                copy per input per step.
        """
        nbrs = sample_neighbours(self.neighbours, self.k, generator) if self.resample else self.neighbours
        n, dev = self.rest.shape[0], self.rest.device
        into_sample, into_idx = (None, None) if out is None else out
        if self.sample_points > 0:
            sample = torch.randint(0, n, (self.sample_points,), generator=generator, device=dev, out=into_sample)  # [S]
        else:
            sample = torch.arange(n, device=dev, out=into_sample)  # [N]
        return sample, torch.index_select(nbrs.idx, 0, sample, out=into_idx)  # [S, K]

    @abstractmethod
    def energy(self, deformed: Tensor, sample: Tensor, idx: Tensor, frame_weights: Tensor | None = None) -> Tensor:
        """The prior's energy of deformed [F, N, 3] at drawn points (`draw`), frames weighted by `frame_weights`
        [F] (None = 1 each); deterministic."""

    def __call__(self, deformed: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The energy of deformed [F, N, 3] at freshly drawn points (frames to score, frame 0 excluded by the caller)."""
        return self.energy(deformed, *self.draw(generator))


class ArapRegularizer(NeighbourPrior):
    """The reconstruction loss's ARAP term (the reference's prior); see `NeighbourPrior` for draw and call."""

    @classmethod
    def from_points(cls, rest: Tensor, k: int = 3, sample_points: int = 512) -> ArapRegularizer:
        """Splat scheme: the k nearest static neighbours."""
        return cls(rest, knn_neighbours(rest, k), k=k, sample_points=sample_points)

    @classmethod
    def from_mesh(cls, rest: Tensor, faces: Tensor, k: int = 3, sample_points: int = 512) -> ArapRegularizer:
        """Mesh scheme: k random 1-ring neighbours per vertex, redrawn every call (λ = 4 in the reference)."""
        return cls(rest, mesh_one_ring(faces, rest.shape[0]), k=k, sample_points=sample_points, resample=True)

    def energy(self, deformed: Tensor, sample: Tensor, idx: Tensor, frame_weights: Tensor | None = None) -> Tensor:
        """ARAP energy of deformed [F, N, 3] at drawn points (`draw`), frames weighted by `frame_weights` [F]
        (None = 1 each); deterministic."""
        return arap_energy_at(self.rest, deformed, sample, idx, frame_weights)
