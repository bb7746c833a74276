"""The light `prepare` bakes into untextured meshes uses the normals the mesh is shown with
(`SurfaceMesh.shading_normals`, interpolated over each face): a low-poly smooth surface is lit smoothly, hard
edges stay hard (a3d's crease rule for STL, the file's own normals for glTF), textured meshes are untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from helpers import textured_sphere, write_glb

from a3d_cli.gaussians.ply import read_ply
from a3d_cli.io.images import load_png
from a3d_cli.mesh.creases import LEADER_ROUNDS, normal_groups_from_normals
from a3d_cli.mesh.load import FILE_NORMAL_DEGREES, load_mesh
from a3d_cli.mesh.shading import shade_srgb
from a3d_cli.mesh.store import load_processed_mesh, mesh_glb_bytes
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.to_gaussians import mesh_to_gaussians
from a3d_cli.mesh.topology import weld
from a3d_cli.stages.base import Runtime
from a3d_cli.stages.prepare import PrepareOptions, run

FAST = {"splats": 2000, "view_size": 64}
GREY = 0.8  # sRGB, lit well below 1 everywhere (the brightest light factor is ≈ 1.04 in linear light)


def _grey_sphere() -> SurfaceMesh:
    """A lat-long sphere of about 500 triangles (24 × 12 segments) with seam and pole copies, no texture."""
    ball = textured_sphere(count=12, radius=0.9)
    vertices = np.asarray(ball.vertices, dtype=np.float64)
    return SurfaceMesh(vertices, np.asarray(ball.faces, dtype=np.int64), np.full((len(vertices), 4), GREY, np.float32))


def _flat_cube_trimesh() -> trimesh.Trimesh:
    """A cube as a flat-shaded export holds it: 4 vertices per side (24), each with its side's normal."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    corners = box.faces.reshape(-1)
    soup = trimesh.Trimesh(
        box.vertices[corners], np.arange(36).reshape(-1, 3), vertex_normals=np.repeat(box.face_normals, 3, axis=0), process=False
    )
    soup.merge_vertices(merge_norm=False)  # joins copies of equal position and normal: 24 vertices
    assert len(soup.vertices) == 24
    return soup


def _midpoint_normals_either_side(mesh: SurfaceMesh) -> tuple[np.ndarray, np.ndarray]:
    """For every edge two faces share (by position), the shading normal at its midpoint read from each face:
    ([E, 3], [E, 3])."""
    point = weld(mesh.vertices)[0][mesh.faces]  # [T, 3] faces over positions
    nxt = [1, 2, 0]
    start, end = point.reshape(-1), point[:, nxt].reshape(-1)  # [3T] each side's end points
    key = np.minimum(start, end) * (point.max() + 1) + np.maximum(start, end)
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    a, b = order[:-1][same], order[1:][same]  # [E] the two sides (3 · face + corner) of each shared edge

    def at_midpoint(side: np.ndarray) -> np.ndarray:
        bary = np.zeros((len(side), 3))
        bary[np.arange(len(side)), side % 3] = 0.5
        bary[np.arange(len(side)), np.asarray(nxt)[side % 3]] = 0.5
        return mesh.surface_normals(side // 3, bary)

    return at_midpoint(a), at_midpoint(b)


def _degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=1), -1.0, 1.0)))


def test_shading_normals_are_continuous_across_a_smooth_meshs_edges_and_jump_at_a_cubes(tmp_path):
    """The interpolated normal at an edge's midpoint is the same read from either face on a smooth sphere;
    on a cube with hard edges it turns by 90° across a side's edge and not at all across its diagonal."""
    left, right = _midpoint_normals_either_side(_grey_sphere())
    np.testing.assert_allclose(left, right, atol=1e-9)
    cube = load_mesh(_cube_file(tmp_path, "cube.stl"))
    left, right = _midpoint_normals_either_side(cube)
    turn = np.sort(_degrees(left, right))
    assert len(turn) == 18 and np.allclose(turn[:6], 0.0, atol=1e-3) and np.allclose(turn[6:], 90.0, atol=1e-3)


def test_a_low_poly_spheres_splats_are_lit_as_the_smooth_sphere():
    """Each splat's baked colour is close to the colour the sphere's true normal (along the radius) gives.
    A face's own normal is up to half the angle between neighbouring faces off it (15° here, about 12 of 255
    levels under this light): lit so, the splats show the facets. The interpolated normal errs by a small
    fraction of that."""
    sphere = _grey_sphere()
    g, _ = mesh_to_gaussians(sphere, target_splats=3000, seed=0, shade=True)
    means = g.means.double().numpy()  # [N, 3]
    radial = means / np.linalg.norm(means, axis=1, keepdims=True)
    expected = shade_srgb(np.full((len(g), 3), GREY), radial)  # [N, 3]
    assert np.abs(g.colors.numpy() - expected).max() < 5 / 255


def _cube_file(folder: Path, name: str) -> Path:
    """`_flat_cube_trimesh` as an STL (which keeps no normals: a3d finds the edges) or a GLB (with its normals)."""
    options = {"include_normals": True} if name.endswith(".glb") else {}
    (folder / name).write_bytes(_flat_cube_trimesh().export(file_type=name[-3:], **options))
    return folder / name


@pytest.mark.parametrize("name", ["cube.stl", "cube.glb"])
def test_a_cubes_sides_stay_uniformly_lit_with_a_hard_step_at_its_edges(tmp_path, name):
    """Through `prepare`: every surface sample on a side, up to the edges, has the colour that side's normal
    gives (an STL's hard edges are a3d's crease rule; a glTF's are its own per-side normals); neighbouring
    sides differ by the light's step."""
    path = _cube_file(tmp_path, name)
    result = run(tmp_path / "RUN", PrepareOptions(model=str(path), **FAST), Runtime())
    assert result.metrics["shaded"]
    base = load_mesh(path).vertex_colors[0, :3]  # the default grey of a mesh without colours
    g = read_ply(tmp_path / "RUN/static/gaussians.ply")
    means, colors = g.means.double().numpy(), g.colors.double().numpy()
    samples = slice(result.metrics["vertex_splats"], None)
    axis = np.argmax(np.abs(means[samples]), axis=1)  # [S] the side each sample lies on
    side = np.zeros((len(axis), 3))
    side[np.arange(len(axis)), axis] = np.sign(means[samples][np.arange(len(axis)), axis])
    expected = shade_srgb(np.tile(base, (len(axis), 1)), side)  # [S, 3]
    assert np.abs(colors[samples] - expected).max() < 1e-3
    assert len(np.unique(np.round(expected * 255), axis=0)) >= 5  # the sides differ (two may share a level)


def test_a_flat_shaded_gltf_cube_keeps_its_hard_edges_in_the_processed_mesh(tmp_path):
    """A glTF cube whose file gives each side its own normal is shown with flat sides in `source/mesh.glb`
    too (each corner's NORMAL is its side's), and the processed mesh read back keeps those edges."""
    cube = _flat_cube_trimesh()
    mesh = load_mesh(_cube_file(tmp_path, "cube.glb"))
    assert mesh.num_vertices == 24 and mesh.normal_groups is not None
    file_normals = np.asarray(cube.vertex_normals)  # [24, 3] in the file's vertex order
    np.testing.assert_allclose(mesh.shading_normals(), file_normals, atol=1e-6)
    (tmp_path / "mesh.glb").write_bytes(mesh_glb_bytes(mesh))
    again = load_processed_mesh(tmp_path / "mesh.glb")
    np.testing.assert_allclose(again.shading_normals(), file_normals, atol=1e-6)


def test_a_files_normals_a_rounding_apart_are_one_normal():
    """Copies of a point whose file normals differ by a float rounding share one normal (no edge); copies
    whose normals differ by more than FILE_NORMAL_DEGREES (a cube's corner, three sides) stay apart; a3d's own
    NORMAL is read back exactly."""
    vertices = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    normals = np.array([[0.0, 1.0, 0.0], [1e-7, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    exact = normal_groups_from_normals(vertices, normals)
    assert exact is not None and len(np.unique(exact[:4])) == 4
    groups = normal_groups_from_normals(vertices, normals, FILE_NORMAL_DEGREES)
    assert groups is not None and groups[0] == groups[1] and len(np.unique(groups[:4])) == 3
    turned = np.radians(2 * FILE_NORMAL_DEGREES)
    normals[1] = (np.sin(turned), np.cos(turned), 0.0)
    assert len(np.unique(normal_groups_from_normals(vertices, normals, FILE_NORMAL_DEGREES)[:4])) == 4
    assert normal_groups_from_normals(vertices[:2], normals[[0, 0]], FILE_NORMAL_DEGREES) is None


def test_a_point_with_more_normals_than_the_clustering_rounds_still_groups_equal_ones():
    """Past LEADER_ROUNDS distinct normals at one point, the rest are grouped by equality: each normal of a
    fan of 100 (3° apart, every one written twice) is one group."""
    angles = np.radians(3.0 * np.arange(100))
    fan = np.stack([np.cos(angles), np.sin(angles), np.zeros(100)], axis=1)  # [100, 3]
    normals = np.concatenate([fan, fan, [[0.0, 1.0, 0.0]]])  # [201, 3]
    vertices = np.zeros((201, 3))
    vertices[-1] = (1.0, 0.0, 0.0)
    groups = normal_groups_from_normals(vertices, normals, FILE_NORMAL_DEGREES)
    assert LEADER_ROUNDS < 100 and len(np.unique(groups[:200])) == 100
    np.testing.assert_array_equal(groups[:100], groups[100:200])


def test_a_textured_meshs_views_do_not_depend_on_its_normals(tmp_path, monkeypatch):
    """A textured mesh gets no baked light by default, so its splats and views are the same bytes whatever
    its shading normals are."""
    path = write_glb(tmp_path / "ball.glb", (textured_sphere(count=12), np.eye(4)))
    run(tmp_path / "A", PrepareOptions(model=str(path), **FAST), Runtime())
    rng = np.random.default_rng(0)

    def scrambled(self: SurfaceMesh) -> np.ndarray:
        n = rng.normal(size=(self.num_vertices, 3))
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    monkeypatch.setattr(SurfaceMesh, "shading_normals", scrambled, raising=False)
    result = run(tmp_path / "B", PrepareOptions(model=str(path), **FAST), Runtime())
    assert not result.metrics["shaded"]
    for name in ["static/gaussians.ply", *(f"static/views/view_{i}.png" for i in range(4))]:
        assert (tmp_path / "A" / name).read_bytes() == (tmp_path / "B" / name).read_bytes(), name
    assert load_png(tmp_path / "A/static/views/view_0.png").shape[:2] == (64, 64)
