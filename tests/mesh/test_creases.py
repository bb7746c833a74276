"""Triangle soups (STL, and OBJ/PLY/OFF written so): corners merged into shared vertices, hard edges kept hard,
curved surfaces smooth, and meshes that share vertices or carry their own normals left as read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from a3d_cli.mesh import topology
from a3d_cli.mesh.creases import merge_identical_vertices, split_creases
from a3d_cli.mesh.gltf_accessors import parse_gltf
from a3d_cli.mesh.gltf_animated import animated_glb_bytes
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.simplify import simplify_mesh
from a3d_cli.mesh.store import load_processed_mesh, mesh_glb_bytes, save_processed_mesh
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.topology import distinct_rows, weld

SUBDIVISIONS = 3
SPHERE_VERTICES = 10 * 4**SUBDIVISIONS + 2  # an icosphere's vertex count: 642


def _write(tmp_path: Path, mesh: trimesh.Trimesh, name: str, **kwargs: object) -> Path:
    path = tmp_path / name
    data = mesh.export(file_type=kwargs.pop("file_type", path.suffix[1:]), **kwargs)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _soup(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The same triangles, each with its own three vertices (what an STL holds)."""
    corners = mesh.faces.reshape(-1)
    return trimesh.Trimesh(mesh.vertices[corners], np.arange(len(corners)).reshape(-1, 3), process=False)


def _accessor(doc: dict, binary: memoryview, index: int) -> np.ndarray:
    """A float32 VEC3 accessor of an a3d-written GLB (tightly packed, no sparse data)."""
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(binary, np.float32, acc["count"] * 3, start).reshape(-1, 3)


def _glb_normals(data: bytes) -> np.ndarray:
    """[V, 3] the NORMAL of a GLB's first primitive."""
    doc, binary = parse_gltf(data, "test.glb")
    return _accessor(doc, binary, doc["meshes"][0]["primitives"][0]["attributes"]["NORMAL"])


def _face_normals(mesh: SurfaceMesh) -> np.ndarray:
    tri = mesh.vertices[mesh.faces]  # [T, 3, 3]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _worst_corner_to_face_degrees(mesh: SurfaceMesh, normals: np.ndarray) -> float:
    """The largest angle between a face's own normal and the vertex normal at one of its corners."""
    cos = np.einsum("tkc,tc->tk", normals[mesh.faces], _face_normals(mesh))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).max())


@pytest.mark.parametrize("file_type", ["stl", "stl_ascii"])
def test_stl_cube_shares_its_corners_and_keeps_flat_sides(tmp_path, file_type):
    """A cube has 8 corners; with hard edges each of its 6 sides needs its own 4 vertices (24), and every
    corner of a side shades with the side's own normal. Read as written, the STL had 36 vertices."""
    path = _write(tmp_path, trimesh.creation.box(extents=(20, 20, 20)), "cube.stl", file_type=file_type)
    mesh = load_mesh(path)
    assert (mesh.num_faces, weld(mesh.vertices)[1], mesh.num_vertices) == (12, 8, 24)
    assert _worst_corner_to_face_degrees(mesh, _glb_normals(mesh_glb_bytes(mesh))) < 1e-3


def test_stl_sphere_is_one_smooth_surface(tmp_path):
    """An icosphere written as STL comes back with the icosphere's own vertex count and normals along the
    radius (the sphere's true normal), not the facets'."""
    path = _write(tmp_path, trimesh.creation.icosphere(subdivisions=SUBDIVISIONS, radius=30.0), "ball.stl")
    mesh = load_mesh(path)
    assert mesh.num_vertices == SPHERE_VERTICES
    normals = _glb_normals(mesh_glb_bytes(mesh)).astype(np.float64)
    radial = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    assert np.degrees(np.arccos(np.clip((normals * radial).sum(axis=1), -1, 1))).max() < 1.0


@pytest.mark.parametrize("name", ["soup.obj", "soup.off", "soup.ply"])
def test_soups_without_normals_in_other_formats_are_merged_the_same_way(tmp_path, name):
    kwargs = {"include_normals": False} if name.endswith(".obj") else {}
    if name.endswith(".ply"):
        kwargs = {"vertex_normal": False}
    path = _write(tmp_path, _soup(trimesh.creation.box(extents=(2, 2, 2))), name, **kwargs)
    assert load_mesh(path).num_vertices == 24


def test_a_shared_mesh_and_a_soup_with_its_own_normals_are_left_as_read(tmp_path):
    """An OFF cube with 8 shared vertices stays 8 (smooth sharing as before); a PLY soup whose file has
    vertex normals stays a soup, shaded with the hard edges its normals give (each side flat)."""
    shared = load_mesh(_write(tmp_path, trimesh.creation.box(), "cube.off"))
    assert shared.num_vertices == 8 and shared.normal_groups is None
    soup = _soup(trimesh.creation.box())
    soup.vertex_normals  # noqa: B018 - computed, so the PLY writer stores them
    with_normals = load_mesh(_write(tmp_path, soup, "soup.ply", vertex_normal=True))
    assert with_normals.num_vertices == 36 and with_normals.normal_groups is not None
    face_normals = np.repeat(soup.face_normals, 3, axis=0)  # [36, 3] the normal the file gives each corner
    np.testing.assert_allclose(with_normals.shading_normals(), face_normals, atol=1e-9)


def test_texture_seam_copies_stay_split_and_identical_corners_merge():
    """Two triangles of one flat square, written apart. Where their shared edge's corners have the same
    texture coordinates they become one vertex each; where they differ (a texture seam) they stay two, and
    all share the square's normal (no crease in a flat square)."""
    a, b, c, d = [0.0, 0, 0], [1.0, 0, 0], [1.0, 1, 0], [0.0, 1, 0]
    vertices = np.array([a, b, c, a, c, d])
    faces = np.arange(6).reshape(2, 3)
    texture = np.full((2, 2, 4), 255, np.uint8)
    same = np.array([[0, 0], [1, 0], [1, 1], [0, 0], [1, 1], [0, 1]], dtype=np.float64)
    seam = same.copy()
    seam[3:5] += 0.5  # the second triangle's copies of a and c read elsewhere in the texture
    for uvs, expected in ((same, 4), (seam, 6)):
        soup = SurfaceMesh(vertices, faces, np.ones((6, 4), np.float32), uvs, texture)
        mesh = split_creases(merge_identical_vertices(soup))
        assert mesh.num_vertices == expected
        np.testing.assert_allclose(_glb_normals(mesh_glb_bytes(mesh)), np.tile([0.0, 0.0, 1.0], (expected, 1)), atol=1e-6)


def test_minus_zero_and_zero_are_one_corner():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [-0.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    mesh = SurfaceMesh(vertices, np.arange(6).reshape(2, 3), np.ones((6, 4), np.float32))
    assert merge_identical_vertices(mesh).num_vertices == 4


def test_hard_edges_survive_the_processed_mesh_and_the_animated_export(tmp_path):
    """`source/mesh.glb` keeps the cube's hard edges for `mesh-animate`, and the animated GLB's base and
    morph normals are the sides' normals (turned with the cube in a frame that turns it)."""
    path = _write(tmp_path, trimesh.creation.box(extents=(2, 2, 2)), "cube.stl")
    mesh = load_mesh(path)
    save_processed_mesh(tmp_path / "mesh.glb", mesh)
    again = load_processed_mesh(tmp_path / "mesh.glb", expected_vertices=mesh.num_vertices)
    assert again.normal_groups is not None and len(np.unique(again.normal_groups)) == 24
    turn = trimesh.transformations.rotation_matrix(np.pi / 5, [0, 1, 0])[:3, :3]  # [3, 3]
    frames = np.stack([again.vertices, again.vertices @ turn.T])  # [2, V, 3]
    data = animated_glb_bytes(again.vertices, again.faces, frames, normal_groups=again.normal_groups)
    doc, binary = parse_gltf(data, "animated.glb")
    primitive = doc["meshes"][0]["primitives"][0]
    base = _accessor(doc, binary, primitive["attributes"]["NORMAL"]).astype(np.float64)
    assert _worst_corner_to_face_degrees(again, base) < 1e-3
    turned = base + _accessor(doc, binary, primitive["targets"][1]["NORMAL"])
    assert _worst_corner_to_face_degrees(again.with_vertices(frames[1]), turned) < 1e-3


def test_a_smooth_mesh_reads_back_without_normal_groups(tmp_path):
    """A sphere has no hard edge: its processed mesh reads back as any smooth mesh (copies share normals)."""
    path = _write(tmp_path, trimesh.creation.icosphere(subdivisions=2), "ball.stl")
    save_processed_mesh(tmp_path / "mesh.glb", load_mesh(path))
    assert load_processed_mesh(tmp_path / "mesh.glb").normal_groups is None


def test_simplifying_a_creased_mesh_keeps_its_hard_edges(tmp_path):
    """A finely cut box, simplified below its vertex count, is still shaded as a box: flat sides."""
    box = trimesh.creation.box(extents=(2, 2, 2)).subdivide().subdivide().subdivide()
    mesh = load_mesh(_write(tmp_path, box, "box.stl"))
    small = simplify_mesh(mesh, max_vertices=100)
    assert weld(small.vertices)[1] <= 100 < weld(mesh.vertices)[1]
    assert small.normal_groups is not None
    assert _worst_corner_to_face_degrees(small, _glb_normals(mesh_glb_bytes(small))) < 1e-3


def _numbered_by_first_appearance(rows: np.ndarray) -> list[int]:
    """Reference numbering: a dict of the rows as tuples, each new row the next number."""
    seen: dict[tuple, int] = {}
    return [seen.setdefault(tuple(r), len(seen)) for r in rows.tolist()]


@pytest.mark.parametrize("collide", [False, True], ids=["hashed", "every-hash-equal"])
def test_distinct_rows_numbers_rows_by_first_appearance(monkeypatch, collide):
    """Exact rows, numbered in order of first appearance, also when the hash tells nothing apart (then the
    rows are compared as bytes)."""
    if collide:
        monkeypatch.setattr(topology, "_mixed", lambda words, seed: np.zeros_like(words))
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 4, (500, 3)).astype(np.float64) * 0.1  # many repeats
    index, count = distinct_rows(rows)
    expected = _numbered_by_first_appearance(rows)
    assert index.tolist() == expected and count == max(expected) + 1
