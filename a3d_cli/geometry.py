"""Rotation conventions, written once: matrix ↔ quaternion, quaternion product, Kabsch (SVD and Horn), SH rotation.

Quaternions are wxyz (`Gaussians.quats`, the PLY and glTF conventions), Hamilton product, acting on column
vectors: p' = R p. `quat_to_rotmat` is the rasterizer reference's own, re-exported here. Every module that rotates splats, meshes or motion uses these functions.

Examples:
    >>> import torch
    >>> q = rotmat_to_quat(torch.eye(3))
    >>> q.tolist()
    [1.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import torch
from torch import Tensor

from a3d_cli.kernels.projection_ref import quat_to_rotmat  # the rasterizer reference owns wxyz → matrix


def rotmat_to_quat(rot: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] → unit wxyz quaternions [..., 4] with w ≥ 0, in float64.

    Shepperd's method: pick the largest of (trace, diagonal) terms so the square root never nears zero.
    """
    r = rot.double()
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    trace = m00 + m11 + m22
    d21, d02, d10 = r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]
    s01, s02, s12 = r[..., 0, 1] + r[..., 1, 0], r[..., 0, 2] + r[..., 2, 0], r[..., 1, 2] + r[..., 2, 1]
    cand = torch.stack(
        [
            torch.stack([1 + trace, d21, d02, d10], -1),
            torch.stack([d21, 1 + m00 - m11 - m22, s01, s02], -1),
            torch.stack([d02, s01, 1 - m00 + m11 - m22, s12], -1),
            torch.stack([d10, s02, s12, 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # [..., 4 candidates, 4]
    pick = torch.stack([trace, m00, m11, m22], -1).argmax(-1)  # [...]
    q = torch.take_along_dim(cand, pick[..., None, None], dim=-2)[..., 0, :]  # [..., 4]
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b of wxyz quaternions (rotation b first, then a). Shapes broadcast: [..., 4]."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def kabsch_rotation(cov: Tensor) -> Tensor:
    """The proper rotation R maximising tr(R·cov), i.e. the best fit R·p ≈ x for cov = Σ p xᵀ (Kabsch).

    Args:
        cov: [..., 3, 3] cross-covariance Σ_k w_k p_k x_kᵀ of rest edges p and deformed edges x.

    Returns:
        [..., 3, 3] rotations with det +1 (a reflection is turned into the nearest rotation by flipping the
        axis of the smallest singular value).
    """
    u, _, vh = torch.linalg.svd(cov)  # cov = U Σ Vᵀ, singular values descending
    v = vh.transpose(-1, -2)
    det = torch.det(v @ u.transpose(-1, -2))  # [...]
    d = torch.ones_like(u[..., 0])  # [..., 3]
    d[..., 2] = torch.where(det < 0, -1.0, 1.0)
    return v @ torch.diag_embed(d) @ u.transpose(-1, -2)


def quat_left_matrix(a: Tensor) -> Tensor:
    """The 4×4 matrix L(a) with L(a)·b = a ⊗ b (wxyz): [..., 4] → [..., 4, 4].

    Why: composing one rotation per frame with N splat quaternions is then one batched matrix product
    over [F, N] instead of some thirty elementwise passes.
    """
    w, x, y, z = a.unbind(-1)
    rows = [[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _horn_matrix(cov: Tensor) -> Tensor:
    """Horn's symmetric 4×4 matrix of a cross-covariance S = Σ w p xᵀ: [B, 3, 3] → [B, 4, 4].

    Its eigenvector of the largest eigenvalue is the unit quaternion (wxyz) of the rotation R that
    maximises Σ w xᵀ R p (Horn 1987), i.e. the best proper rotation of p onto x.
    """
    (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = (row.unbind(-1) for row in cov.unbind(-2))
    rows = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, syy - sxx - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, szz - sxx - syy],
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)  # [B, 4, 4]


def horn_rotation(cov: Tensor, squarings: int = 20) -> Tensor:
    """`kabsch_rotation` without a host synchronisation: the top eigenvector of Horn's quaternion matrix.

    Why: `torch.linalg.svd` (and `eigh`) check their convergence flags on the host, a device sync per call
    that stalls the GPU and cannot be recorded in a CUDA graph. Repeated squaring of (N/‖N‖ + I), whose
    eigenvalues lie in [0, 2] in N's order, raises it to the power 2^squarings and leaves the top
    eigenvector's outer product: the same rotation as the SVD route to float precision, for any eigen-gap
    above ~1e-4 of ‖N‖, in a fixed number of small batched products.

    Args:
        cov: [B, 3, 3] cross-covariance Σ_k w_k p_k x_kᵀ.
        squarings: repeated squarings of the shifted matrix.

    Returns:
        [B, 3, 3] proper rotations; the identity where `cov` is zero.
    """
    n = _horn_matrix(cov)  # [B, 4, 4], symmetric, trace 0
    norm = n.flatten(1).norm(dim=1).clamp_min(torch.finfo(n.dtype).tiny)  # ≥ its spectral norm
    eye = torch.eye(4, dtype=n.dtype, device=n.device)
    m = n / norm[:, None, None] + eye  # [B, 4, 4] positive semi-definite, top eigenvalue ≥ 1
    for _ in range(squarings):
        m = m @ m
        m = m / m.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]  # trace > 0: keeps the scale at 1
    # m ≈ v vᵀ: its column with the largest diagonal entry is v times a non-zero number
    col = m.diagonal(dim1=-2, dim2=-1).argmax(dim=-1)  # [B]
    q = m.gather(2, col[:, None, None].expand(-1, 4, 1))[..., 0]  # [B, 4] wxyz
    return quat_to_rotmat(q)


def sh_rotation(rotation: Tensor, degree: int) -> Tensor:
    """The linear map of real SH coefficients (degrees 1..degree) under a rotation of the splats.

    A splat rotated by Q shows, in direction d, the colour it showed in direction Qᵀd, so its new
    coefficients a' satisfy Y(d)·a' = Y(Qᵀd)·a for every d. Each SH band is closed under rotation, so the
    least-squares solution over enough random directions is exact (to float precision).

    Args:
        rotation: [3, 3] Q, applied to positions as p' = Q p.
        degree: highest SH degree (1..3).

    Returns:
        [K-1, K-1] matrix T with sh_rest' = T @ sh_rest (per colour channel), K = (degree+1)².
    """
    from a3d_cli.kernels.sh_ref import sh_basis

    gen = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(256, 3, generator=gen, dtype=torch.float64), dim=-1)  # [M, 3]
    q = rotation.double()
    y_new = sh_basis(degree, dirs)  # [M, K]
    y_old = sh_basis(degree, dirs @ q)  # [M, K]: rows are (Qᵀ d)ᵀ
    t = torch.linalg.lstsq(y_new, y_old).solution  # [K, K]
    return t[1:, 1:].float()


__all__ = [
    "horn_rotation",
    "kabsch_rotation",
    "quat_left_matrix",
    "quat_multiply",
    "quat_to_rotmat",
    "rotmat_to_quat",
    "sh_rotation",
]
