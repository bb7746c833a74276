"""Turntable preview of a lift: the fitted splats (left) beside the textured mesh (right).

The mesh is drawn the way a3d draws meshes everywhere, as dense surface splats (`mesh.to_gaussians`,
what `a3d prepare` makes of `lift/model.glb`), so the right half shows what the later stages will see.

Examples:
    >>> frames = turntable(result.gaussians, result.mesh, size=384, frames=48)  # [F, 384, 768, 3]  # doctest: +SKIP
    >>> frames, seconds = lift_turntable(result, size=256, frames=48)  # the lift stage's preview  # doctest: +SKIP
    >>> preview_mesh_splats(256)
    32768
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.models.sv3d.cameras import SV3D_FOV_DEG, SV3D_RADIUS
from a3d_cli.phase_clock import PhaseClock
from a3d_cli.render.cameras import orbit_cameras

if TYPE_CHECKING:
    from a3d_cli.lift.pipeline import LiftResult

MESH_SPLATS_MIN = 2_000
"""The fewest splats a preview draws its mesh with (small previews still show a closed surface)."""
MESH_SPLATS_MAX = 60_000
"""The most (`mesh_as_splats`'s default): beyond it a large preview costs render time and shows no more."""


def mesh_as_splats(mesh: SurfaceMesh, splats: int = MESH_SPLATS_MAX, seed: int = 0, shade: bool = False) -> Gaussians:
    """Dense surface splats of the mesh (how a3d renders meshes); `shade` bakes in the fixed studio lighting
    (`a3d_cli.mesh.shading`)."""
    from a3d_cli.mesh.to_gaussians import mesh_to_gaussians

    return mesh_to_gaussians(mesh, splats, seed=seed, shade=shade)[0]


def turntable(
    g: Gaussians, mesh: SurfaceMesh, size: int, frames: int, elevation: float = 10.0, device: str = "cpu",
    mesh_splats: int = MESH_SPLATS_MAX,
) -> Tensor:  # fmt: skip
    """[F, size, 2·size, 3] frames going once round the object on white, splats | mesh."""
    from a3d_cli.lift.fit import render_chunked

    cams = orbit_cameras([elevation] * frames, [360.0 * i / frames for i in range(frames)], SV3D_RADIUS, SV3D_FOV_DEG)
    left, _, _ = render_chunked(g.to(device), cams, size)
    right, _, _ = render_chunked(mesh_as_splats(mesh, mesh_splats).to(device), cams, size)
    return torch.cat([left, right], dim=2)


def preview_mesh_splats(size: int) -> int:
    """How many surface splats draw the mesh in a preview `size` pixels high: size²/2, within the bounds above.

    Why: the mesh half of the preview is a splat render, so its splat count sets whether the surface looks
    closed. Scaling it with the frame's pixels keeps it dense enough to look closed at that size without
    paying for splats the frame cannot show.
    """
    return min(MESH_SPLATS_MAX, max(MESH_SPLATS_MIN, size * size // 2))


def lift_turntable(result: LiftResult, size: int, frames: int, device: str = "cpu") -> tuple[Tensor, float]:
    """The lift stage's preview: `turntable` of a lift's splats and mesh, and the seconds it took.

    Args:
        result: what `a3d_cli.lift.pipeline.lift` returned.
        size: the preview's height in pixels (its width is twice that).
        frames: frames going once round the object.
        device: where the splats are rendered.

    Returns:
        ([F, size, 2·size, 3] frames on white, wall seconds of the render, the device drained).
    """
    clock = PhaseClock(device)
    video = turntable(result.gaussians, result.mesh, size, frames, device=device, mesh_splats=preview_mesh_splats(size))
    clock.mark("preview")
    return video, clock.seconds["preview"]


__all__ = ["MESH_SPLATS_MAX", "MESH_SPLATS_MIN", "lift_turntable", "mesh_as_splats", "preview_mesh_splats", "turntable"]
