"""As-affine-as-possible regularisation of a point motion: a local prior that lets a smooth stretch through.

ARAP (`a3d_cli.gaussians.arap`) asks every neighbourhood to move rigidly, so it also resists a motion that
stretches or shears smoothly, which bending and twisting bodies do. This prior asks only that a point's
neighbourhood moves by *some* affine map. For a point i with K nearest rest neighbours, rest edges E_i
(K × 3, neighbour minus point) and deformed edges E_iᶠ, the best affine map leaves the residual P_i E_iᶠ,
where P_i = I − E_i E_i⁺ (K × K) projects out what an affine map of the rest edges can produce. P_i depends
on the rest pose only, so the energy

    E = Σ_f Σ_{i ∈ S} ‖P_i E_iᶠ‖²

is a constant quadratic form of the positions: nothing to solve per step, no host synchronisation. It is 0
for every affine motion (rigid or not) and grows where a point leaves the map its neighbours agree on:
a splat drifting alone, a tear, a crumple. With 3 neighbours every motion is affine locally (three edges
fix nine numbers), so K must exceed 3; 8 by default. Points are drawn per step as for ARAP (`NeighbourPrior`).

Examples:
    >>> rest = torch.rand(300, 3)
    >>> prior = LocalAffineRegularizer.from_points(rest)
    >>> stretch = torch.diag(torch.tensor([1.5, 1.0, 0.7]))  # an affine, non-rigid motion
    >>> float(prior((rest @ stretch.T + 0.2)[None])) < 1e-6
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from a3d_cli.gaussians.arap import NeighbourPrior, Neighbours, knn_neighbours

AFFINE_NEIGHBOURS = 8
"""Neighbours per point: more than 3, so that an affine map does not explain every motion."""


class LocalAffineRegularizer(NeighbourPrior):
    """The as-affine-as-possible prior on the k nearest static neighbours (see the module).

    Args:
        rest: [N, 3] static positions.
        neighbours: [N, K] k-NN table (no padding).
        sample_points: points scored per call, drawn with replacement (0 = all points).
    """

    def __init__(self, rest: Tensor, neighbours: Neighbours, sample_points: int = 512) -> None:
        k = neighbours.idx.shape[1]
        if k <= 3:
            raise ValueError(f"the local affine prior needs more than 3 neighbours per point, got {k}")
        super().__init__(rest, neighbours, k=k, sample_points=sample_points)
        self.projections = residual_projections(self.rest, neighbours.idx)
        """[N, K, K] P_i, what no affine map of point i's rest edges explains."""

    @classmethod
    def from_points(cls, rest: Tensor, k: int = AFFINE_NEIGHBOURS, sample_points: int = 512) -> LocalAffineRegularizer:
        """The k nearest static neighbours of every point."""
        return cls(rest, knn_neighbours(rest, k), sample_points=sample_points)

    def energy(self, deformed: Tensor, sample: Tensor, idx: Tensor, frame_weights: Tensor | None = None) -> Tensor:
        """Σ over frames and drawn points of ‖P_i E_iᶠ‖², frames weighted by `frame_weights` [F] (None = 1 each)."""
        return affine_residual_energy(deformed, sample, idx, self.projections.index_select(0, sample), frame_weights)


def residual_projections(rest: Tensor, idx: Tensor, chunk: int = 1 << 15) -> Tensor:
    """P_i = I − E_i E_i⁺ for every point: rest [N, 3], neighbour table idx [N, K] → [N, K, K].

    Edges that span fewer than three directions (neighbours in a plane, as on a surface) are handled by the
    pseudo-inverse: the affine map is then free off their span, where they say nothing. Computed in double,
    `chunk` points at a time, so the temporaries stay bounded whatever the splat count (the result itself
    takes N·K² floats).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 point, got {chunk}")
    n, k = idx.shape
    out = torch.empty(n, k, k, dtype=rest.dtype, device=rest.device)
    eye = torch.eye(k, dtype=torch.float64, device=rest.device)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        edges = (rest[idx[rows]] - rest[rows, None, :]).double()  # [B, K, 3]; double: near-flat neighbourhoods
        out[rows] = eye - edges @ torch.linalg.pinv(edges, rtol=1e-6)
    return out


def affine_residual_energy(
    deformed: Tensor, centre: Tensor, idx: Tensor, projections: Tensor, frame_weights: Tensor | None = None
) -> Tensor:
    """Σ_f Σ_s ‖P_s E_sᶠ‖²: deformed [F, N, 3], centre [S], idx [S, K] their neighbours, projections [S, K, K]."""
    edges = deformed[:, idx] - deformed[:, centre][:, :, None, :]  # [F, S, K, 3]
    residual = torch.einsum("skl,fslc->fskc", projections, edges).square().sum((-2, -1))  # [F, S]
    if frame_weights is not None:
        residual = residual * frame_weights[:, None]
    return residual.sum()
