"""The rotation conventions of `a3d_cli.geometry`: each helper against matrices built independently."""

from __future__ import annotations

import torch

from a3d_cli.geometry import kabsch_rotation, quat_multiply, quat_to_rotmat, rotmat_to_quat, sh_rotation
from a3d_cli.kernels.sh_ref import sh_basis


def _random_rotations(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.det(q)[:, None, None]  # [N, 3, 3], det +1


def test_rotmat_to_quat_inverts_quat_to_rotmat_with_w_nonnegative():
    q = torch.nn.functional.normalize(torch.randn(50, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64), dim=-1)
    back = rotmat_to_quat(quat_to_rotmat(q))  # [50, 4]
    torch.testing.assert_close((back * q).sum(-1).abs(), torch.ones(50, dtype=torch.float64))  # same up to sign
    assert (back[:, 0] >= 0).all()
    for m in (torch.eye(3, dtype=torch.float64), torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))):
        torch.testing.assert_close(quat_to_rotmat(rotmat_to_quat(m)), m)  # trace pivot and a 180° turn


def test_quat_multiply_composes_rotations():
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(2, 20, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(quat_to_rotmat(quat_multiply(a, b)), quat_to_rotmat(a) @ quat_to_rotmat(b))


def test_kabsch_recovers_rotation_and_never_reflects():
    rots = _random_rotations(6, 5)
    rest = torch.randn(6, 8, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    moved = rest @ rots.transpose(-1, -2)  # x = R p
    cov = rest.transpose(-1, -2) @ moved  # Σ p xᵀ
    torch.testing.assert_close(kabsch_rotation(cov), rots)
    mirrored = rest * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    r = kabsch_rotation(rest.transpose(-1, -2) @ mirrored)
    torch.testing.assert_close(torch.det(r), torch.ones(6, dtype=torch.float64))


def test_sh_rotation_moves_colour_with_the_splat():
    rot = _random_rotations(1, 7)[0]
    t = sh_rotation(rot, 3).double()  # [15, 15]
    coeffs = torch.randn(16, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    dirs = torch.nn.functional.normalize(torch.randn(30, 3, dtype=torch.float64), dim=-1)
    rotated = torch.cat([coeffs[:1], t @ coeffs[1:]])
    # the rotated splat seen from R d shows what the original showed from d
    torch.testing.assert_close(sh_basis(3, dirs @ rot.T) @ rotated, sh_basis(3, dirs) @ coeffs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sh_rotation(torch.eye(3), 2), torch.eye(8))
