"""`lift.texture.point_visibility`: which views see which surface points (the bake's test, and the lift
benchmark's coverage with its slope allowance)."""

from __future__ import annotations

import numpy as np
import torch

from a3d_cli.lift import synthetic as syn
from a3d_cli.lift.fit import render_chunked
from a3d_cli.lift.texture import point_visibility
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.models.sv3d.cameras import orbit_camera_set, static_orbit

SIZE = 64


def _box() -> SurfaceMesh:
    import trimesh

    box = trimesh.creation.box(extents=(0.7, 0.2, 0.7)).subdivide().subdivide()
    return SurfaceMesh(np.asarray(box.vertices), np.asarray(box.faces, dtype=np.int64), np.full((len(box.vertices), 4), 0.5, np.float32))


def _face_points(normal: tuple[float, float, float], y: float, n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` points on the box's top (y = 0.1) or bottom (y = −0.1) face, away from its edges."""
    g = torch.Generator().manual_seed(0)
    xz = (torch.rand(n, 2, generator=g) - 0.5) * 0.5
    pts = torch.stack([xz[:, 0], torch.full((n,), y), xz[:, 1]], dim=1)
    return pts, torch.tensor(normal).expand(n, 3)


def test_a_face_seen_only_at_a_graze_needs_the_slope_allowance_and_hidden_faces_stay_hidden() -> None:
    cams = orbit_camera_set(static_orbit(10.0))  # the top face is seen at a 10° graze, the bottom never
    _, alphas, depths = render_chunked(syn.mesh_splats(_box(), 12_000), cams, SIZE, depth=True)
    top, up = _face_points((0.0, 1.0, 0.0), 0.1)
    tol = 0.01
    strict, cos = point_visibility(top, up, depths, alphas, cams, tol)
    loose, _ = point_visibility(top, up, depths, alphas, cams, tol, slope=True)
    assert ((cos > 0) & (cos < np.sin(np.radians(10.0)))).all()  # every view grazes the top face
    seen_strict, seen_loose = strict.any(0).float().mean(), loose.any(0).float().mean()
    assert seen_loose > 0.95 and seen_strict < 0.5  # a fixed tolerance calls most of the top hidden
    assert (loose | ~strict).all()  # the allowance only adds views
    bottom, down = _face_points((0.0, -1.0, 0.0), -0.1)
    vis, cos_b = point_visibility(bottom, down, depths, alphas, cams, tol, slope=True)
    assert not (vis & (cos_b > 0)).any()  # behind the sides and facing away: seen by no view
