"""Splats under a similarity transform: positions, sizes, orientations and view-dependent colour together.

Used to take animated splats from a3d's normalized frame back to the asset's own (`a3d export --space
original`).

Examples:
    >>> out = similarity_gaussians(g, 2.0, torch.eye(3), torch.zeros(3))  # doctest: +SKIP
"""

from __future__ import annotations

import torch

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.geometry import quat_multiply, rotmat_to_quat, sh_rotation


def similarity_gaussians(g: Gaussians, scale: float, rotation: torch.Tensor, translation: torch.Tensor) -> Gaussians:
    """Splats under p' = scale · Q p + t (Q a proper rotation): positions, sizes, orientations and SH.

    Args:
        g: the splats.
        scale: uniform scale s > 0.
        rotation: [3, 3] Q with det +1.
        translation: [3] t.
    """
    q = rotation.to(g.means.device, g.means.dtype)
    means = scale * g.means @ q.T + translation.to(g.means)  # [N, 3]
    quats = quat_multiply(rotmat_to_quat(rotation).float().to(g.quats), g.quats)  # [N, 4]
    sh_rest = g.sh_rest
    if sh_rest is not None and sh_rest.shape[1] > 0:
        t = sh_rotation(rotation, g.sh_degree).to(sh_rest)  # [K-1, K-1]
        sh_rest = torch.einsum("kj,njc->nkc", t, sh_rest)  # [N, K-1, 3]
    return g.with_(means=means, quats=quats, scales=g.scales * scale, sh_rest=sh_rest)


__all__ = ["similarity_gaussians"]
