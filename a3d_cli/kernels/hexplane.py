"""HexPlane (K-Planes) feature sampling: the PyTorch reference and its front door.

A HexPlane factorises a 4D feature field over (x, y, z, t) into six 2D planes, one per pair of axes
(xy, xz, xt, yz, yt, zt). A point's feature at one level is the elementwise *product* of the six
bilinear plane samples; several levels (resolutions) are concatenated. This is the motion field's
encoder in Animate3D (Jiang et al. 2024, arXiv 2407.11398; yanqinJiang/Animate3D
`custom/threestudio-animate3d/geometry/gaussian_4d.py`) and 4DGaussians (hustvl/4DGaussians `scene/hexplane.py`).

Two facts this module exploits, because the motion field always asks for N static points at F times:

* the three spatial planes (xy, xz, yz) do not depend on t, so they are sampled once for the N points
  and broadcast over the F frames;
* the three time planes (xt, yt, zt) are sampled on an [F, N] grid in one `grid_sample` call each.

Coordinates are expected in [-1, 1] (grid corners, `align_corners=True`); points outside are clamped
to the border (`padding_mode="border"`), as in the reference.

Plane tensor layout: plane p over axes (a, b) (`PLANE_AXES[p]`) is `[C, R_b, R_a]` — the first axis
runs along the plane's width, as `grid_sample` expects (x indexes W).

Examples:
    >>> levels = [init_hexplane_level((8, 8, 8, 4), channels=4)]
    >>> feats = hexplane_features(levels, torch.zeros(10, 3), torch.linspace(-1, 1, 3))
    >>> feats.shape
    torch.Size([3, 10, 4])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

# Pairs of input axes (0 x, 1 y, 2 z, 3 t), in the order K-Planes / 4DGaussians / Animate3D use.
PLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
SPATIAL_PLANES: tuple[int, ...] = (0, 1, 3)  # xy, xz, yz: independent of time
TIME_PLANES: tuple[int, ...] = (2, 4, 5)  # xt, yt, zt

Backend = Literal["auto", "torch", "matmul"]


def plane_shapes(resolution: Sequence[int], channels: int) -> list[tuple[int, int, int]]:
    """Shapes `[C, R_b, R_a]` of the six planes of one level.

    Args:
        resolution: (R_x, R_y, R_z, R_t) grid resolution along each input axis.
        channels: feature channels C per plane.
    """
    if len(resolution) != 4:
        raise ValueError(f"a HexPlane level needs 4 resolutions (x, y, z, t), got {list(resolution)}")
    return [(channels, int(resolution[b]), int(resolution[a])) for a, b in PLANE_AXES]


def init_hexplane_level(
    resolution: Sequence[int],
    channels: int,
    *,
    spatial_range: tuple[float, float] = (0.1, 0.5),
    time_value: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """The six planes of one level, initialised as in K-Planes.

    Why this init: time planes start at a constant (1 by default), so the product over planes is the
    same at every time and the field starts time-invariant; spatial planes start uniform in
    `spatial_range`, which keeps the product away from zero so gradients reach every plane.

    Returns:
        six tensors `[C, R_b, R_a]` in `PLANE_AXES` order.
    """
    planes = []
    for p, shape in enumerate(plane_shapes(resolution, channels)):
        plane = torch.empty(shape, device=device)
        if p in TIME_PLANES:
            plane.fill_(time_value)
        else:
            plane.uniform_(spatial_range[0], spatial_range[1], generator=generator)
        planes.append(plane)
    return planes


def _sample_grid(plane: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of one plane at a `_plane_grid` grid: plane [C, R_b, R_a], grid [1, 1, M, 2] → [M, C]."""
    out = F.grid_sample(
        plane.unsqueeze(0), grid.to(plane.dtype), mode="bilinear", padding_mode="border", align_corners=True
    )  # [1, C, 1, M]
    return out.reshape(out.shape[1], -1).transpose(0, 1)  # [M, C]; a view, whose backward is one too


def _plane_grid(u: Tensor, v: Tensor) -> Tensor:
    """`grid_sample`'s grid [1, 1, M, 2] of coordinates u (along the plane's width) and v, both [*S] in [-1, 1]."""
    return torch.stack([u.reshape(1, 1, -1), v.reshape(1, 1, -1)], dim=-1)


def _sample_plane(plane: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Bilinear samples of one plane.

    Args:
        plane: [C, R_b, R_a].
        u: [*S] coordinate along the plane's first axis (width), in [-1, 1].
        v: [*S] coordinate along the second axis (height), in [-1, 1]; same shape as u.

    Returns:
        [*S, C].
    """
    return _sample_grid(plane, _plane_grid(u, v)).reshape(*u.shape, plane.shape[0])


def _check_level(planes: Sequence[Tensor], level: int) -> None:
    if len(planes) != 6:
        raise ValueError(f"HexPlane level {level} must have 6 planes, got {len(planes)}")
    c = planes[0].shape[0]
    for p, plane in enumerate(planes):
        if plane.ndim != 3 or plane.shape[0] != c:
            raise ValueError(
                f"HexPlane level {level} plane {p} must have shape [C={c}, R_b, R_a], got {list(plane.shape)}"
            )


def _check_points(xyz: Tensor, t: Tensor) -> None:
    """Shape checks shared by every backend."""
    if xyz.ndim != 2 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz must have shape [N, 3], got {list(xyz.shape)}")
    if t.ndim != 1:
        raise ValueError(f"t must have shape [F], got {list(t.shape)}")


def _spatial_product(planes: Sequence[Tensor], grids: Sequence[Tensor]) -> Tensor:
    """Product of a level's three spatial-plane samples (xy, xz, yz) → [N, C], by `grid_sample`.

    grids: the N points' `_plane_grid` of each spatial plane, in `SPATIAL_PLANES` order (`_spatial_grids`).
    """
    spatial = None
    for p, grid in zip(SPATIAL_PLANES, grids, strict=True):
        sample = _sample_grid(planes[p], grid)  # [N, C]
        spatial = sample if spatial is None else spatial * sample
    return spatial


def _spatial_grids(xyz: Tensor) -> tuple[Tensor, ...]:
    """The spatial planes' grids of N points xyz [N, 3] (the same at every level)."""
    return tuple(_plane_grid(xyz[:, PLANE_AXES[p][0]], xyz[:, PLANE_AXES[p][1]]) for p in SPATIAL_PLANES)


def hexplane_features_ref(levels: Sequence[Sequence[Tensor]], xyz: Tensor, t: Tensor) -> Tensor:
    """PyTorch implementation of multi-level HexPlane sampling (`grid_sample`, bilinear, border, corners).

    Args:
        levels: L levels, each six planes `[C_l, R_b, R_a]` in `PLANE_AXES` order.
        xyz: [N, 3] point coordinates, already mapped to the grid's [-1, 1] cube.
        t: [F] times in [-1, 1].

    Returns:
        [F, N, sum_l C_l] features: per level the product over the six planes, levels concatenated.
    """
    _check_points(xyz, t)
    n, f = xyz.shape[0], t.shape[0]
    coords = [xyz[:, 0], xyz[:, 1], xyz[:, 2]]  # 3 × [N]
    t_grid = t.to(xyz.dtype).reshape(f, 1).expand(f, n)  # [F, N]
    grids = _spatial_grids(xyz)
    out = []
    for level, planes in enumerate(levels):
        _check_level(planes, level)
        feat = _spatial_product(planes, grids).unsqueeze(0)  # [1, N, C]
        for p in TIME_PLANES:
            a, _ = PLANE_AXES[p]
            u = coords[a].unsqueeze(0).expand(f, n)  # [F, N]
            feat = feat * _sample_plane(planes[p], u, t_grid)  # [F, N, C]
        out.append(feat.expand(f, n, feat.shape[-1]))
    return torch.cat(out, dim=-1)  # [F, N, D]


def _corner_weights(coord: Tensor, res: int) -> tuple[Tensor, Tensor]:
    """1D linear interpolation of [M] coordinates in [-1, 1] on `res` grid points: the lower corner [M] (long)
    and the upper corner's weight [M] (the lower one's is 1 − that).

    Same rule as `grid_sample(align_corners=True, padding_mode="border")`: corners at ±1, clamped outside.
    """
    p = (coord.clamp(-1.0, 1.0) + 1.0) * (0.5 * (res - 1))  # [M] in [0, res - 1]
    i0 = p.floor().clamp(max=res - 2).long()  # [M]
    return i0, p - i0


def _linear_weights(coord: Tensor, res: int) -> Tensor:
    """Dense 1D linear-interpolation weights: [M] coordinates in [-1, 1] → [M, res] (two non-zeros a row)."""
    i0, frac = _corner_weights(coord, res)
    w = torch.zeros(coord.shape[0], res, dtype=coord.dtype, device=coord.device)
    w.scatter_(1, i0.unsqueeze(1), (1.0 - frac).unsqueeze(1))
    w.scatter_add_(1, i0.unsqueeze(1) + 1, frac.unsqueeze(1))
    return w


@dataclass(frozen=True)
class InterpolationMatrix:
    """A constant sparse matrix [M, K] that mixes the K rows of a table into M rows, with its transpose kept.

    Why: looking a fixed set of points up in a grid is this product, and its backward is the transpose's
    product. Both as sparse products (cuSPARSE on CUDA) read each row once and need no atomic adds, where
    `grid_sample`'s backward adds every sample into the grid atomically and a dense product multiplies
    mostly zeros.

    Attributes:
        matrix: CSR [M, K], a few non-zeros per row.
        transpose: CSR [K, M], the same entries.
    """

    matrix: Tensor
    transpose: Tensor

    @classmethod
    def from_rows(cls, cols: Tensor, values: Tensor, width: int) -> InterpolationMatrix:
        """The [M, width] matrix whose row m holds `values[m]` at columns `cols[m]` (both [M, k]; no column twice
        in a row). Built without reading anything back from the device."""
        m, k = cols.shape
        flat_cols, flat_values = cols.reshape(-1), values.reshape(-1)
        order = torch.argsort(flat_cols, stable=True)  # the entries column by column, rows ascending in each
        per_column = torch.zeros(width + 1, dtype=torch.int64, device=cols.device)
        per_column.index_add_(0, flat_cols + 1, torch.ones_like(flat_cols))
        row_starts = torch.arange(0, m * k + 1, k, dtype=torch.int32, device=cols.device)
        with warnings.catch_warnings():  # PyTorch flags its sparse CSR layout as beta, once per process
            warnings.simplefilter("ignore", UserWarning)
            matrix = torch.sparse_csr_tensor(row_starts, flat_cols.to(torch.int32), flat_values, (m, width))
            transpose = torch.sparse_csr_tensor(
                per_column.cumsum(0).to(torch.int32), (order // k).to(torch.int32), flat_values[order], (width, m)
            )
        return cls(matrix, transpose)

    @property
    def rows(self) -> int:
        """M, the number of rows the product gives."""
        return int(self.matrix.shape[0])

    def __call__(self, table: Tensor) -> Tensor:
        """matrix @ table: [K, D] → [M, D], differentiable in `table`."""
        return _FixedSparseProduct.apply(table, self.matrix, self.transpose)


class _FixedSparseProduct(torch.autograd.Function):
    """matrix @ table with a constant sparse matrix; the backward multiplies by the kept transpose."""

    @staticmethod
    def forward(ctx: Any, table: Tensor, matrix: Tensor, transpose: Tensor) -> Tensor:
        ctx.transpose = transpose
        return matrix @ table

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return ctx.transpose @ grad.contiguous(), None, None


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands its input a contiguous gradient.

    Why: a plane reaches its lookup through transposed views, so its gradient would arrive strided, and
    autograd would copy it into the parameter's layout on its own, outside a recorded CUDA graph: one more
    launch per plane per step. Made contiguous here, the copy is part of the recorded backward.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.contiguous()


def _bilinear_matrix(u: Tensor, v: Tensor, r_b: int, r_a: int) -> InterpolationMatrix:
    """Bilinear lookup of M points (u along the width R_a, v along the height R_b, both [M] in [-1, 1]) in a
    plane flattened to rows `v_index · R_a + u_index`: [M, R_b·R_a], four non-zeros a row."""
    iu, fu = _corner_weights(u, r_a)
    iv, fv = _corner_weights(v, r_b)
    base = iv * r_a + iu
    cols = torch.stack([base, base + 1, base + r_a, base + r_a + 1], dim=1)
    values = torch.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], dim=1)
    return InterpolationMatrix.from_rows(cols, values, r_b * r_a)


def _linear_matrix(coord: Tensor, res: int) -> InterpolationMatrix:
    """1D linear lookup of M points [M] in [-1, 1] on `res` grid points: [M, res], two non-zeros a row."""
    i0, frac = _corner_weights(coord, res)
    return InterpolationMatrix.from_rows(torch.stack([i0, i0 + 1], dim=1), torch.stack([1 - frac, frac], dim=1), res)


@dataclass(frozen=True)
class HexplaneWeights:
    """What the matmul backend needs of N fixed points and T fixed times, computed once (`hexplane_weights`).

    Why: the motion fit evaluates its field at the same static positions and at some of the same 16 frame
    times at every step; computing these interpolation weights anew takes many small kernels per evaluation,
    which a recorded step would replay every time.

    Attributes:
        spatial: (spatial plane, R_b, R_a) → the points' bilinear lookup in that plane, [N, R_b·R_a].
        along: (axis, resolution) → the points' linear lookup along that axis, [N, R].
        at: resolution → [T, R] dense linear-interpolation weights of the T times.
    """

    spatial: dict[tuple[int, int, int], InterpolationMatrix]
    along: dict[tuple[int, int], InterpolationMatrix]
    at: dict[int, Tensor]

    @property
    def points(self) -> int:
        """N, the number of points these weights look up."""
        return next(iter(self.along.values())).rows


def hexplane_weights(levels: Sequence[Sequence[Tensor]], xyz: Tensor, t: Tensor) -> HexplaneWeights:
    """The matmul backend's weights of points xyz [N, 3] (in [-1, 1]) and times t [T] for these levels' planes."""
    _check_points(xyz, t)
    xyz, t = xyz.detach(), t.detach().to(xyz.dtype)
    spatial: dict[tuple[int, int, int], InterpolationMatrix] = {}
    along: dict[tuple[int, int], InterpolationMatrix] = {}
    at: dict[int, Tensor] = {}
    for level, planes in enumerate(levels):
        _check_level(planes, level)
        for p in SPATIAL_PLANES:
            a, b = PLANE_AXES[p]
            _, r_b, r_a = planes[p].shape
            if (p, r_b, r_a) not in spatial:
                spatial[(p, r_b, r_a)] = _bilinear_matrix(xyz[:, a], xyz[:, b], r_b, r_a)
        for p in TIME_PLANES:
            a, _ = PLANE_AXES[p]
            _, r_t, r_a = planes[p].shape
            if (a, r_a) not in along:
                along[(a, r_a)] = _linear_matrix(xyz[:, a], r_a)
            if r_t not in at:
                at[r_t] = _linear_weights(t, r_t)  # [T, R_t]
    return HexplaneWeights(spatial, along, at)


def hexplane_features_weighted(
    levels: Sequence[Sequence[Tensor]], weights: HexplaneWeights, rows: Tensor | None = None
) -> Tensor:
    """The matmul backend on precomputed weights: features of the N points at the times `rows` [F] (long
    indices into the weights' T times; None = all T, in order).

    Returns:
        [F, N, D], equal to `hexplane_features_matmul(levels, xyz, t[rows])`.
    """
    n = weights.points
    out = []
    for level, planes in enumerate(levels):
        _check_level(planes, level)
        planes = [_ContiguousGrad.apply(plane) for plane in planes]
        feat = None
        for p in SPATIAL_PLANES:
            c, r_b, r_a = planes[p].shape
            sample = weights.spatial[(p, r_b, r_a)](planes[p].reshape(c, r_b * r_a).T)  # [N, C]
            feat = sample if feat is None else feat * sample
        feat = feat.unsqueeze(0)  # [1, N, C]
        for p in TIME_PLANES:
            a, _ = PLANE_AXES[p]
            plane = planes[p]  # [C, R_t, R_a]
            c, r_t, r_a = plane.shape
            w_t = weights.at[r_t] if rows is None else weights.at[r_t].index_select(0, rows)
            along_a = weights.along[(a, r_a)](plane.permute(2, 0, 1).reshape(r_a, c * r_t))  # [N, C·R_t]
            # one GEMM straight into the frame-major layout: [F, R_t] @ [R_t, N·C] (a transposed view)
            sampled = w_t.to(plane.dtype) @ along_a.reshape(n * c, r_t).T  # [F, N·C]
            feat = feat * sampled.reshape(-1, n, c)  # [F, N, C], both operands contiguous
        out.append(feat.expand(-1, n, feat.shape[-1]))
    return torch.cat(out, dim=-1)  # [F, N, D]


def hexplane_features_matmul(levels: Sequence[Sequence[Tensor]], xyz: Tensor, t: Tensor) -> Tensor:
    """HexPlane sampling as matrix products with constant interpolation matrices (no atomics in the backward).

    Why: on a GPU, `grid_sample`'s backward scatters with atomic adds, and the planes are hit by many
    samples that share few cells (the coarse level's 12² cells take all N points; the time planes' R_t × R_a
    cells take F·N), so the adds collide. For fixed points a lookup is a constant sparse matrix:
    a spatial plane's is [N, R_b·R_a] with four non-zeros a row, and its backward is the transpose's
    product (`InterpolationMatrix`). A time-plane lookup is separable — value(x, t) = Σ_i Σ_j w_i(x) w_j(t)
    P[j, i] — so it is the points' sparse [N, R_a] matrix, then a small dense GEMM with the times' weights.

    Same arguments and result as `hexplane_features_ref` (parity-tested), except that no gradient flows to
    `xyz` or `t` (the motion field samples fixed static positions at fixed times). A caller that evaluates the
    same points again and again computes `hexplane_weights` once and calls `hexplane_features_weighted`.

    Returns:
        [F, N, D].
    """
    return hexplane_features_weighted(levels, hexplane_weights(levels, xyz, t))


def resolve_backend(backend: Backend, xyz: Tensor) -> Literal["torch", "matmul"]:
    """The backend that samples points `xyz`: "auto" is "matmul" on CUDA and "torch" elsewhere."""
    if backend not in ("auto", "torch", "matmul"):
        raise ValueError(f"unknown HexPlane backend {backend!r}; choose 'auto', 'torch' or 'matmul'")
    if backend == "auto":
        return "matmul" if xyz.is_cuda else "torch"
    return backend


def hexplane_features(
    levels: Sequence[Sequence[Tensor]], xyz: Tensor, t: Tensor, *, backend: Backend = "auto"
) -> Tensor:
    """Multi-level HexPlane features of N points at F times (front door).

    Backends: "torch" is the `grid_sample` reference; "matmul" computes the time planes as dense matrix
    products (no atomic adds in the backward; see `hexplane_features_matmul`; no gradient to xyz or t).
    "auto" is "matmul" on CUDA (faster there at the same quality; docs/PERF.md, reconstruct) and "torch"
    elsewhere.

    Args:
        levels: L levels, each six planes `[C_l, R_b, R_a]` in `PLANE_AXES` order.
        xyz: [N, 3] coordinates in [-1, 1].
        t: [F] times in [-1, 1].
        backend: "auto", "torch" or "matmul".

    Returns:
        [F, N, D] with D = sum of the levels' channels.

    Examples:
        >>> lv = init_hexplane_level((50, 50, 50, 8), 16)
        >>> hexplane_features([lv], torch.rand(100, 3) * 2 - 1, torch.tensor([0.0])).shape
        torch.Size([1, 100, 16])
    """
    if resolve_backend(backend, xyz) == "matmul":
        return hexplane_features_matmul(levels, xyz, t)
    return hexplane_features_ref(levels, xyz, t)
