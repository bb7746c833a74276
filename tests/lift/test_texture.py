"""`lift.texture.point_visibility`: which views see which surface points (the bake's test, and the lift
benchmark's coverage with its slope allowance)."""

from __future__ import annotations

import numpy as np
import pytest
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


def test_surface_seen_only_at_a_graze_is_baked_as_the_fitted_splats_show_it() -> None:
    """A flat box's top is blue in the splats' renders, but faint red splats (opacity 0.005) lie densely on
    it: the orbit at 10° grazes the top, and the nearest splat centre would paint it red."""
    from a3d_cli.lift.texture import bake_texture, splat_view_cameras, texel_points, unwrap

    mesh = _box()
    g = syn.mesh_splats(mesh, 6000)
    top = g.means[:, 1] > 0.099
    colors = g.colors.clone()
    colors[top] = torch.tensor([0.1, 0.2, 0.9])
    n = 6000
    gen = torch.Generator().manual_seed(1)
    decoys = torch.cat([(torch.rand(n, 1, generator=gen) - 0.5) * 0.7, torch.full((n, 1), 0.1), (torch.rand(n, 1, generator=gen) - 0.5) * 0.7], 1)
    g = g.with_(
        means=torch.cat([g.means, decoys]), quats=torch.cat([g.quats, g.quats[:1].expand(n, 4)]),
        scales=torch.cat([g.scales, torch.full((n, 3), 1e-3)]), opacities=torch.cat([g.opacities, torch.full((n,), 0.005)]),
        colors=torch.cat([colors, torch.tensor([0.9, 0.1, 0.1]).expand(n, 3)]),
    )  # fmt: skip
    cams = orbit_camera_set(static_orbit(10.0))
    images, alphas, depths = render_chunked(g, cams, SIZE, depth=True)
    uvs, vmap, faces = unwrap(mesh.vertices, mesh.faces, 128)
    verts = mesh.vertices[vmap]
    texel, _, normals = texel_points(verts, faces, uvs, 128)
    up = texel[normals[:, 1] > 0.9]

    def top_colours(splat_views: bool) -> torch.Tensor:
        tex = bake_texture(verts, faces, uvs, images, depths, alphas, cams, g, 128, 0.01, splat_views=splat_views)
        return torch.from_numpy(tex.reshape(-1, 4)[up.numpy(), :3]).float() / 255

    without, with_ = top_colours(False), top_colours(True)
    assert (without[:, 0] > without[:, 2]).float().mean() > 0.5  # the grazed top fell to the red decoys
    assert (with_[:, 2] > with_[:, 0]).float().mean() > 0.95  # the splats seen from above: blue
    extra = splat_view_cameras(cams)
    assert len(extra) == 18 and extra.elevation_deg.max() > 85 and extra.elevation_deg.min() < -85
    assert (extra.radius == cams.radius.median()).all() and (extra.fov_deg == cams.fov_deg.median()).all()


@pytest.mark.parametrize("octants", [True, False])
def test_the_atlas_covers_every_face_once_whether_the_surface_is_cut_into_octants_or_not(octants: bool) -> None:
    """The cut pieces come back as one mesh: every original face exactly once (through the vertex map), UVs in the
    unit square, and the pieces' charts side by side in the atlas, not on top of each other."""
    import trimesh

    from a3d_cli.lift.texture import octant_pieces, texel_points, unwrap

    sphere = trimesh.creation.icosphere(subdivisions=3)
    vertices, faces = np.asarray(sphere.vertices) + [0.3, -0.2, 0.1], np.asarray(sphere.faces)
    pieces = octant_pieces(vertices, faces)
    assert len(pieces) == 8 and sum(len(p) for p in pieces) == len(faces)
    import xatlas

    meshes: list[int] = []

    class CountingAtlas(xatlas.Atlas):
        def add_mesh(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - xatlas's signature
            meshes.append(len(args[1]))
            super().add_mesh(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(xatlas, "Atlas", CountingAtlas)
        uvs, vmap, tris = unwrap(vertices, faces, 256, octants=octants)
    assert meshes == ([len(p) for p in pieces] if octants else [len(faces)])
    assert sorted(map(tuple, np.sort(vmap[tris], axis=1))) == sorted(map(tuple, np.sort(faces, axis=1)))
    assert uvs.min() >= 0 and uvs.max() <= 1
    texel, _, _ = texel_points(vertices[vmap], tris, uvs, 512)
    hits = np.bincount(texel.numpy(), minlength=512 * 512)
    assert (hits > 1).sum() < 0.01 * (hits > 0).sum()  # only texels on shared edges count twice
