"""Turntable preview of a lift: the fitted splats (left) beside the textured mesh (right).

The mesh is drawn the way a3d draws meshes everywhere, as dense surface splats (`mesh.to_gaussians`,
what `a3d prepare` makes of `lift/model.glb`), so the right half shows what the later stages will see.

Examples:
    >>> frames = turntable(result.gaussians, result.mesh, size=384, frames=48)  # [F, 384, 768, 3]  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import Tensor

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.models.sv3d.cameras import SV3D_FOV_DEG, SV3D_RADIUS
from a3d_cli.render.cameras import orbit_cameras


def mesh_as_splats(mesh: SurfaceMesh, splats: int = 60_000, seed: int = 0) -> Gaussians:
    """Dense surface splats of the mesh (how a3d renders meshes)."""
    from a3d_cli.mesh.to_gaussians import mesh_to_gaussians

    return mesh_to_gaussians(mesh, splats, seed=seed)[0]


def turntable(
    g: Gaussians, mesh: SurfaceMesh, size: int, frames: int, elevation: float = 10.0, device: str = "cpu",
    mesh_splats: int = 60_000,
) -> Tensor:  # fmt: skip
    """[F, size, 2·size, 3] frames going once round the object on white, splats | mesh."""
    from a3d_cli.lift.fit import render_chunked

    cams = orbit_cameras([elevation] * frames, [360.0 * i / frames for i in range(frames)], SV3D_RADIUS, SV3D_FOV_DEG)
    left, _, _ = render_chunked(g.to(device), cams, size)
    right, _, _ = render_chunked(mesh_as_splats(mesh, mesh_splats).to(device), cams, size)
    return torch.cat([left, right], dim=2)


__all__ = ["mesh_as_splats", "turntable"]
