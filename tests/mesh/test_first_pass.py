"""The fast first collapse before MeshLab's (`a3d_cli.mesh.first_pass`): where it runs, that its collapse
history is read right, that misplaced vertices go back, and that the simplified mesh stays on the surface
with its colours and hard edges."""

from __future__ import annotations

from dataclasses import replace

import fast_simplification
import numpy as np
import pytest
import trimesh
from helpers import textured_sphere, write_glb

from a3d_cli.mesh import first_pass as fp
from a3d_cli.mesh import simplify
from a3d_cli.mesh.creases import weld_and_crease
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.simplify import simplify_mesh, welded_vertex_count
from a3d_cli.mesh.surface import SurfaceMesh


def _sphere(subdivisions: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit icosphere (40,962 vertices at 6), red where y > 0, green below."""
    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    v, f = np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64)
    colors = np.where(v[:, 1:2] > 0, [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0])
    return v, f, colors


# Tolerances on the unit sphere, from its geometry rather than from a run: 1000 vertices make about 2000
# triangles of edge ℓ ≈ √(8π / (√3 · 1000)) ≈ 0.12, whose centroids lie ℓ² / 6 ≈ 0.0024 inside the sphere. Allowing
# triangles twice that size gives 0.01; a vertex the collapse misplaced lies a whole edge or more away.
ON_SPHERE = 0.01


def _off_sphere(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Largest distance of a vertex or a face centroid from the unit sphere."""
    r = np.linalg.norm(vertices, axis=1)
    centroid_r = np.linalg.norm(vertices[faces].mean(axis=1), axis=1)
    return float(max(np.abs(r - 1).max(), np.abs(centroid_r - 1).max()))


def test_first_pass_brings_a_large_mesh_near_the_bound_on_its_surface():
    v, f, colors = _sphere()
    out, faces, out_colors = fp.first_pass(v, f, colors, max_vertices=1000)
    # it stops at HEADROOM × the bound, or earlier where the remaining collapses would cost more than its thresholds allow
    assert 0.9 * fp.HEADROOM * 1000 <= len(out) <= len(v) / 4
    assert faces.max() == len(out) - 1 and len(np.unique(faces)) == len(out)  # every vertex used
    # at least four times as many vertices: at most half the edge, a quarter of the depth
    assert _off_sphere(out, faces) < ON_SPHERE / 4
    # colours are means of merged input vertices: pure away from the equator, in between only near it
    assert np.allclose(out_colors[out[:, 1] > 0.1], [1, 0, 0, 1])
    assert np.allclose(out_colors[out[:, 1] < -0.1], [0, 1, 0, 1])


def test_first_pass_leaves_small_and_faceted_meshes_alone():
    v, f, colors = _sphere(3)  # 642 vertices: not HEADROOM × 200 above the bound
    assert fp.first_pass(v, f, colors, max_vertices=200)[0] is v
    box = trimesh.creation.box(extents=(2, 2, 2))
    for _ in range(5):
        box = box.subdivide()  # 6146 vertices on six flat sides: every edge but the box's joins coplanar faces
    bv, bf = np.asarray(box.vertices), np.asarray(box.faces)
    assert fp.flat_face_share(bv, bf) > 0.9 and fp.flat_face_share(v, f) == 0.0
    assert fp.first_pass(bv, bf, np.ones((len(bv), 4)), max_vertices=100)[0] is bv


def test_collapse_map_agrees_with_fast_simplification():
    """The output numbering read from the collapse history is the library's own: the same triangles, and each
    input vertex in the output vertex that `replay_simplification` (the library's reading) puts it in."""
    v, f, _ = _sphere(4)
    points, faces, collapses = fast_simplification.simplify(
        v, f.astype(np.int32), target_count=600, agg=3.0, preserve_border=True, return_collapses=True
    )
    group, count, kept, new_faces = fp.collapse_map(f, collapses.astype(np.int64), len(v))
    assert count == len(points) and np.array_equal(new_faces, faces)
    _, _, mapping = fast_simplification.replay_simplification(v, f.astype(np.int32), collapses)
    assert np.array_equal(group, mapping)
    assert np.array_equal(group[kept], np.arange(count))  # each output vertex kept one of its own inputs


@pytest.mark.parametrize(
    "history",
    [[[0, 1], [2, 1]], [[0, 1], [1, 2]], [[3, 3]], [[0, 99]]],
    ids=["removed-twice", "into-a-removed-one", "into-itself", "out-of-range"],
)
def test_collapse_map_refuses_what_is_no_collapse_history(history):
    f = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    assert fp.collapse_map(f, np.array(history), 5) is None


def test_first_pass_keeps_the_input_when_the_history_does_not_fit(monkeypatch):
    """A library whose collapse history does not describe its output: the pass is dropped, not trusted."""
    v, f, colors = _sphere(5)
    real = fast_simplification.simplify

    def shuffled(*args, **kwargs):
        points, faces, collapses = real(*args, **kwargs)
        return points, faces, collapses[: len(collapses) // 2]

    monkeypatch.setattr(fast_simplification, "simplify", shuffled)
    assert fp.first_pass(v, f, colors, max_vertices=500)[0] is v


def test_a_vertex_placed_worse_than_the_point_it_kept_goes_back():
    """A square pyramid's four sides merged into one vertex: the apex lies on all four planes (error 0), a base
    corner on two of them."""
    points = np.array([[0.0, 0, 1], [1, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    group = np.zeros(5, dtype=np.int64)
    lifted = fp._undo_misplaced(np.array([[0.0, 0, 1.5]]), points, faces, group, kept=np.array([0]))
    assert np.allclose(lifted, [[0, 0, 1]])  # off every side's plane: back to the apex it kept
    better = fp._undo_misplaced(np.array([[0.0, 0, 1]]), points, faces, group, kept=np.array([1]))
    assert np.allclose(better, [[0, 0, 1]])  # the apex beats the kept corner: left where it is
    between = fp._undo_misplaced(np.array([[0.5, 0.5, 0.5]]), points, faces, group, kept=np.array([0]))
    assert np.allclose(between, [[0, 0, 1]])  # on two sides' planes, off the other two: worse than the apex


def test_simplify_uses_the_first_pass_for_untextured_meshes_only(monkeypatch, tmp_path):
    calls: list[int] = []
    real = simplify.first_pass

    def spy(points, faces, colors, max_vertices):
        calls.append(len(points))
        return real(points, faces, colors, max_vertices)

    monkeypatch.setattr(simplify, "first_pass", spy)
    sphere = load_mesh(write_glb(tmp_path / "s.glb", (textured_sphere(48), np.eye(4))))  # 4,514 positions
    assert welded_vertex_count(sphere) > fp.HEADROOM * 500
    textured = simplify_mesh(sphere, max_vertices=500)
    assert not calls and textured.uvs is not None  # textured: MeshLab's texture-aware collapse alone
    assert simplify_mesh(replace(sphere, uvs=None, texture=None), max_vertices=500).uvs is None
    assert calls == [welded_vertex_count(sphere)]  # the same sphere untextured takes the first pass
    calls.clear()
    v, f, colors = _sphere()
    small = simplify_mesh(SurfaceMesh(v, f, colors.astype(np.float32)), max_vertices=1000)
    assert calls == [len(v)]
    assert welded_vertex_count(small) <= 1000
    assert _off_sphere(small.vertices, small.faces) < ON_SPHERE
    top, bottom = small.vertex_colors[small.vertices[:, 1] > 0.2], small.vertex_colors[small.vertices[:, 1] < -0.2]
    assert top[:, 0].min() > 0.99 and bottom[:, 1].min() > 0.99
    simplify_mesh(SurfaceMesh(v, f, colors.astype(np.float32)), max_vertices=1000, fast_first_pass=False)
    assert calls == [len(v)]  # the opt-out is honoured


def test_a_large_creased_mesh_keeps_its_hard_edge_through_the_first_pass():
    """A lens (two spherical caps meeting at a sharp rim) read as a triangle soup: after the fast pass and
    MeshLab's, the rim is still a hard edge (its vertices split into two normal groups) and the caps smooth."""
    v, f, _ = _sphere()
    radius = 2.0
    rho2 = np.minimum((v[:, :2] ** 2).sum(axis=1), 1.0)
    cap = np.sqrt(radius**2 - rho2) - np.sqrt(radius**2 - 1.0)  # 0 at the rim (ρ = 1), 0.27 at the centre
    lens = np.concatenate([v[:, :2], (np.sign(v[:, 2]) * cap)[:, None]], axis=1)
    corners = 3 * len(f)
    soup = SurfaceMesh(lens[f].reshape(-1, 3), np.arange(corners).reshape(-1, 3), np.ones((corners, 4), np.float32))
    mesh = weld_and_crease(soup)
    assert mesh.normal_groups is not None and fp.flat_face_share(*_welded(mesh)) < fp.MAX_FLAT_SHARE
    small = simplify_mesh(mesh, max_vertices=1000)
    assert welded_vertex_count(small) <= 1000 and small.normal_groups is not None
    rim = np.abs(small.vertices[:, 2]) < 1e-3
    copies = small.num_vertices - welded_vertex_count(small)
    assert rim.sum() >= 8 and copies >= rim.sum() // 2 - 1  # the rim's points each carry two normals
    assert copies <= rim.sum()  # and only the rim's: the caps stay smooth


def _welded(mesh: SurfaceMesh) -> tuple[np.ndarray, np.ndarray]:
    from a3d_cli.mesh.topology import weld

    index, count = weld(mesh.vertices)
    points = np.zeros((count, 3))
    points[index] = mesh.vertices
    return points, index[mesh.faces]


def test_simplify_keeps_a_blend_mode_through_the_first_pass():
    v, f, colors = _sphere()
    mesh = replace(SurfaceMesh(v, f, colors.astype(np.float32)), alpha_mode="BLEND")
    assert simplify_mesh(mesh, max_vertices=1000).alpha_mode == "BLEND"
