"""View-dependent colour from real spherical harmonics (degree ≤ 3), plain PyTorch.

PyTorch implementation of the SH colour step of gsplat's `rasterization(..., sh_degree=d)`: the basis is
the real SH basis in the sign convention of the original 3DGS code (which gsplat reproduces), evaluated
at the unit direction from the camera centre to the splat centre, and the colour is
`max(Σ_k coeff_k · Y_k(dir) + 0.5, 0)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_PI = math.pi
# Normalisation constants of the real SH basis, written in closed form.
SH_C0 = 0.5 / math.sqrt(_PI)  # 0.2820947917738781
SH_C1 = math.sqrt(3.0 / (4.0 * _PI))  # 0.4886025119029199
SH_C2 = (
    0.5 * math.sqrt(15.0 / _PI),  # xy
    -0.5 * math.sqrt(15.0 / _PI),  # yz
    0.25 * math.sqrt(5.0 / _PI),  # 2z² - x² - y²
    -0.5 * math.sqrt(15.0 / _PI),  # xz
    0.25 * math.sqrt(15.0 / _PI),  # x² - y²
)
SH_C3 = (
    -0.25 * math.sqrt(35.0 / (2.0 * _PI)),  # y(3x² - y²)
    0.5 * math.sqrt(105.0 / _PI),  # xyz
    -0.25 * math.sqrt(21.0 / (2.0 * _PI)),  # y(4z² - x² - y²)
    0.25 * math.sqrt(7.0 / _PI),  # z(2z² - 3x² - 3y²)
    -0.25 * math.sqrt(21.0 / (2.0 * _PI)),  # x(4z² - x² - y²)
    0.25 * math.sqrt(105.0 / _PI),  # z(x² - y²)
    -0.25 * math.sqrt(35.0 / (2.0 * _PI)),  # x(x² - 3y²)
)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:  # dirs: [..., 3] unit vectors
    """The (degree+1)² real SH basis functions at unit directions.

    Args:
        degree: 0..3.
        dirs: [..., 3] unit directions.

    Returns:
        [..., (degree+1)²]
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be in 0..3, got {degree}")
    x, y, z = dirs.unbind(-1)  # [...] each
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)  # [..., (degree+1)²]


def sh_colors(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """RGB from SH coefficients, clamped like gsplat: max(Σ coeff·Y(dir) + 0.5, 0).

    Args:
        degree: bands used; coefficients beyond (degree+1)² are ignored.
        dirs: [..., 3] directions camera → splat (normalised here).
        coeffs: [..., K, 3] with K >= (degree+1)².

    Returns:
        [..., 3]
    """
    k = (degree + 1) ** 2
    assert coeffs.shape[-2] >= k and coeffs.shape[-1] == 3, coeffs.shape
    basis = sh_basis(degree, F.normalize(dirs, dim=-1))  # [..., k]
    rgb = (basis[..., :, None] * coeffs[..., :k, :]).sum(dim=-2)  # [..., 3]
    return torch.clamp_min(rgb + 0.5, 0.0)  # [..., 3]
