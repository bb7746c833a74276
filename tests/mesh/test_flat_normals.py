"""A glTF primitive without NORMAL is shaded flat, as glTF 2.0 requires ("When normals are not specified,
client implementations MUST calculate flat normals", §3.7.2.1) and three.js and Blender show it: every face
its own normal in the loaded mesh, the baked light, `source/mesh.glb` and the animated GLB. A primitive with
NORMAL is read as before, each primitive of a mesh by its own attributes.

Every file is built here (`helpers.GlbBuilder`); the expected normals are each face's own, from its corners
as the test computes them, never from a3d's reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from helpers import GL_FLOAT, GL_UINT, GlbBuilder

from a3d_cli.mesh.gltf_accessors import parse_gltf
from a3d_cli.mesh.gltf_animated import animated_glb_bytes
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.shading import shade_srgb
from a3d_cli.mesh.store import load_processed_mesh, save_processed_mesh
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.to_gaussians import mesh_to_gaussians
from a3d_cli.mesh.topology import weld

FLAT_DEGREES = 1e-3  # a corner's normal this close to its face's is the face's (float32 storage)


def _shape(name: str) -> trimesh.Trimesh:
    """A cube (8 corners, 12 triangles) or an icosphere (42 vertices, 80 triangles, no two facing one way)."""
    return trimesh.creation.box(extents=(2, 2, 2)) if name == "cube" else trimesh.creation.icosphere(subdivisions=1)


def _primitive(b: GlbBuilder, shape: trimesh.Trimesh, offset=(0.0, 0.0, 0.0), normals: bool = False, **fields) -> dict:
    """A triangle primitive of `shape` moved by `offset`, with its vertices shared by its faces, and a NORMAL
    along the radius (a smooth one) when `normals`."""
    v = (np.asarray(shape.vertices) + offset).astype(np.float32)
    attrs = {"POSITION": b.accessor(v, GL_FLOAT, "VEC3", min=v.min(0).tolist(), max=v.max(0).tolist())}
    if normals:
        radial = np.asarray(shape.vertices) / np.linalg.norm(shape.vertices, axis=1, keepdims=True)
        attrs["NORMAL"] = b.accessor(radial.astype(np.float32), GL_FLOAT, "VEC3")
    return {"attributes": attrs, "indices": b.accessor(np.asarray(shape.faces, np.uint32).ravel(), GL_UINT, "SCALAR"), **fields}


def _glb(tmp_path, *primitives_of, name: str = "model.glb"):
    """A GLB of one mesh whose primitives `primitives_of(b)` makes, placed by one node."""
    b = GlbBuilder()
    b.doc["meshes"].append({"primitives": [make(b) for make in primitives_of]})
    b.doc["nodes"].append({"mesh": 0})
    b.doc["scenes"][0]["nodes"].append(0)
    return b.save(tmp_path / name)


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = np.asarray(vertices, np.float64)[faces]  # [T, 3, 3]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _worst_corner_degrees(mesh: SurfaceMesh, normals: np.ndarray, faces: np.ndarray | None = None) -> float:
    """The largest angle between a face's own normal and a normal at one of its corners ([V, 3] `normals`)."""
    faces = mesh.faces if faces is None else faces
    at, own = np.asarray(normals, np.float64)[faces], _face_normals(mesh.vertices, faces)[:, None]  # [T, 3, 3], [T, 1, 3]
    sin, cos = np.linalg.norm(np.cross(at, own), axis=-1), (at * own).sum(axis=-1)  # atan2: exact near 0°
    return float(np.degrees(np.arctan2(sin, cos)).max())


def _accessor(doc: dict, binary: memoryview, index: int) -> np.ndarray:
    """A tightly packed float32 VEC3 accessor of an a3d-written GLB."""
    acc = doc["accessors"][index]
    start = doc["bufferViews"][acc["bufferView"]].get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(binary, np.float32, acc["count"] * 3, start).reshape(-1, 3).astype(np.float64)


@pytest.mark.parametrize("name", ["cube", "sphere"])
def test_a_primitive_without_normal_is_read_flat_shaded(tmp_path, name):
    """Each face shades with its own normal; its points are the file's. A cube's corner is one vertex per side
    it touches (8 × 3 = 24: a side's two triangles face one way and share theirs), an icosphere's faces all
    face different ways, so each has three vertices of its own."""
    shape = _shape(name)
    mesh = load_mesh(_glb(tmp_path, lambda b: _primitive(b, shape)))
    assert _worst_corner_degrees(mesh, mesh.shading_normals()) < FLAT_DEGREES
    assert weld(mesh.vertices)[1] == len(shape.vertices) and mesh.num_faces == len(shape.faces)
    assert mesh.num_vertices == (24 if name == "cube" else 3 * len(shape.faces))


def test_a_flat_primitive_keeps_its_facets_in_the_processed_mesh_and_the_animated_glb(tmp_path):
    """`source/mesh.glb`'s NORMAL at each corner is its face's; read back, the facets stay (normal groups), and
    the animated GLB's base and morph normals are each face's own, also in a frame that bends the sphere."""
    mesh = load_mesh(_glb(tmp_path, lambda b: _primitive(b, _shape("sphere"))))
    save_processed_mesh(tmp_path / "mesh.glb", mesh)
    doc, binary = parse_gltf((tmp_path / "mesh.glb").read_bytes(), "mesh.glb")
    assert _worst_corner_degrees(mesh, _accessor(doc, binary, doc["meshes"][0]["primitives"][0]["attributes"]["NORMAL"])) < FLAT_DEGREES
    again = load_processed_mesh(tmp_path / "mesh.glb", expected_vertices=mesh.num_vertices)
    assert again.normal_groups is not None and len(np.unique(again.normal_groups)) == again.num_vertices
    bent = again.vertices * np.array([1.0, 1.5, 1.0]) + 0.3 * again.vertices[:, :1] ** 2  # [V, 3] a non-rigid pose
    frames = np.stack([again.vertices, bent])  # [2, V, 3]
    data = animated_glb_bytes(again.vertices, again.faces, frames, normal_groups=again.normal_groups)
    doc, binary = parse_gltf(data, "animated.glb")
    primitive = doc["meshes"][0]["primitives"][0]
    base = _accessor(doc, binary, primitive["attributes"]["NORMAL"])
    assert _worst_corner_degrees(again, base) < FLAT_DEGREES
    moved = base + _accessor(doc, binary, primitive["targets"][1]["NORMAL"])
    assert _worst_corner_degrees(again.with_vertices(bent), moved) < FLAT_DEGREES


def test_a_flat_primitives_baked_light_is_one_colour_a_face(tmp_path):
    """Untextured and lit (`prepare --shade`): every surface sample has the colour its face's own normal
    gives under a3d's light, as a flat-shaded renderer lights the face."""
    mesh = load_mesh(_glb(tmp_path, lambda b: _primitive(b, _shape("sphere"))))
    g, binding = mesh_to_gaussians(mesh, target_splats=3000, seed=0, shade=True)
    samples = slice(binding.num_vertex_splats, None)
    face = binding.sample_face  # [S]
    assert len(np.unique(face)) == mesh.num_faces  # every face has samples
    expected = shade_srgb(np.tile(mesh.vertex_colors[0, :3], (len(face), 1)), _face_normals(mesh.vertices, mesh.faces)[face])
    assert np.abs(g.colors.numpy()[samples] - expected).max() < 1e-3


def test_a_primitive_with_normal_is_read_as_before(tmp_path):
    """A cube whose file gives smooth normals keeps its 8 shared vertices and one smooth normal at each."""
    mesh = load_mesh(_glb(tmp_path, lambda b: _primitive(b, _shape("cube"), normals=True)))
    assert mesh.num_vertices == 8 and mesh.normal_groups is None


def test_each_primitive_of_a_mesh_is_shaded_by_its_own_attributes(tmp_path):
    """One mesh of two primitives: a cube without NORMAL (flat sides) and, beside it, a sphere with smooth
    normals (its 42 shared vertices, normals close to the radius). Whichever comes first."""
    cube, ball = _shape("cube"), _shape("sphere")
    for order in ((0, 1), (1, 0)):
        makers = [lambda b: _primitive(b, cube), lambda b: _primitive(b, ball, offset=(5.0, 0.0, 0.0), normals=True)]
        mesh = load_mesh(_glb(tmp_path, *(makers[k] for k in order), name=f"mixed{order}.glb"))
        on_ball = mesh.vertices[:, 0] > 2.5  # [V]
        ball_faces, cube_faces = (mesh.faces[on_ball[mesh.faces].all(axis=1) == side] for side in (True, False))
        normals = mesh.shading_normals()
        assert len(cube_faces) == 12 and _worst_corner_degrees(mesh, normals, cube_faces) < FLAT_DEGREES
        assert on_ball.sum() == len(ball.vertices) and len(ball_faces) == len(ball.faces)
        radial = (mesh.vertices[on_ball] - [5.0, 0.0, 0.0]) / np.linalg.norm(mesh.vertices[on_ball] - [5.0, 0.0, 0.0], axis=1, keepdims=True)
        assert np.degrees(np.arccos(np.clip((normals[on_ball] * radial).sum(axis=1), -1, 1))).max() < 5.0
        assert _worst_corner_degrees(mesh, normals, ball_faces) > 5.0  # smooth: corners differ from the facets


@pytest.mark.parametrize("mode", [5, 6], ids=["strip", "fan"])
def test_strips_and_fans_without_normal_are_flat_with_their_winding(tmp_path, mode):
    """A folded strip and a fan, drawn as glTF defines the modes (§3.7.2.1: strip triangle i is
    (p_i, p_{i+1+i%2}, p_{i+2−i%2}), fan triangle i is (p_0, p_{i+1}, p_{i+2})): each face is flat, facing the
    way its winding says."""
    k = np.arange(6, dtype=np.float64)
    if mode == 5:  # a ribbon folded along its length: a zigzag of points over a roof
        points = np.stack([k / 2, k % 2, 0.5 * (k % 2) + 0.2 * k**2 / 6], axis=1)
        triangles = [(i, i + 1 + i % 2, i + 2 - i % 2) for i in range(len(k) - 2)]
    else:  # a fan over a bumpy rim
        angle = np.linspace(0.0, 1.5 * np.pi, 5)
        points = np.r_[[[0.0, 0.0, 1.0]], np.stack([np.cos(angle), np.sin(angle), 0.3 * np.sin(3 * angle)], axis=1)]
        triangles = [(0, i + 1, i + 2) for i in range(len(points) - 2)]
    mesh = load_mesh(_glb(tmp_path, lambda b: {"attributes": {"POSITION": b.accessor(points.astype(np.float32), GL_FLOAT, "VEC3")},
                                               "indices": b.accessor(np.arange(len(points), dtype=np.uint32), GL_UINT, "SCALAR"),
                                               "mode": mode}))  # fmt: skip
    expected = _face_normals(points.astype(np.float32), np.array(triangles))  # [T, 3] the faces' ways, by the spec
    got = _face_normals(mesh.vertices, mesh.faces)
    assert len(got) == len(expected)
    assert np.abs(np.sort(got, axis=0) - np.sort(expected, axis=0)).max() < 1e-6  # the same faces, wound the same way
    assert _worst_corner_degrees(mesh, mesh.shading_normals()) < FLAT_DEGREES


def test_a_processed_mesh_without_normal_is_read_with_its_vertices_as_written(tmp_path):
    """`source/mesh.glb` of an a3d that wrote no NORMAL: its vertices are the splat binding's, so they are read
    as written, never split."""
    shape = _shape("cube")
    path = tmp_path / "mesh.glb"
    path.write_bytes(trimesh.Scene(trimesh.Trimesh(shape.vertices, shape.faces, process=False)).export(file_type="glb"))
    doc, _ = parse_gltf(path.read_bytes(), path.name)
    assert "NORMAL" not in doc["meshes"][0]["primitives"][0]["attributes"]
    assert load_processed_mesh(path, expected_vertices=8).num_vertices == 8


@pytest.mark.parametrize("max_vertices", [100, 20_000])
@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_prepare_splits_for_flat_shading_only_a_mesh_it_keeps(tmp_path, monkeypatch, suffix, max_vertices):
    """A mesh over `--max-vertices` is simplified and its hard edges found afresh (the crease rule), so the flat
    split (glTF without NORMAL) or the smoothing groups read (an OBJ's `s off`) would be work thrown away:
    prepare never makes it there. A mesh it keeps is written faceted."""
    from a3d_cli.mesh import creases, obj_smoothing
    from a3d_cli.stages.base import Runtime
    from a3d_cli.stages.prepare import PrepareOptions, run

    ball = trimesh.creation.icosphere(subdivisions=2)  # 162 points, 320 faces
    module, name = (creases, "flat_vertices") if suffix == ".glb" else (obj_smoothing, "read_smoothing_groups")
    calls, call = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or call(*a, **k))
    if suffix == ".glb":
        path = _glb(tmp_path, lambda b: _primitive(b, ball))
    else:
        path = _flat_obj(tmp_path / "ball.obj", ball)
    options = PrepareOptions(model=str(path), max_vertices=max_vertices, splats=3000, view_size=64)
    result = run(tmp_path / "RUN", options, Runtime())
    mesh = load_processed_mesh(tmp_path / "RUN" / "source" / "mesh.glb")
    if max_vertices < 162:
        assert result.metrics["simplified_from"] == 162 and not calls
    else:
        assert "simplified_from" not in result.metrics and calls
        assert mesh.num_vertices == 3 * 320  # every face its own corners: no two of an icosphere's face one way
        assert len(np.unique(mesh.normal_groups)) == mesh.num_vertices


def _flat_obj(path: Path, shape: trimesh.Trimesh) -> Path:
    """`shape` written as an OBJ without `vn` whose faces are all in `s off` (flat)."""
    lines = [f"v {x:.12f} {y:.12f} {z:.12f}" for x, y, z in shape.vertices] + ["s off"]
    path.write_text("\n".join(lines + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in shape.faces]) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_a_simplified_flat_mesh_keeps_its_sharp_edges_by_the_crease_rule(tmp_path, suffix):
    """A finely divided cube that the file shades flat (glTF without NORMAL; an OBJ whose faces are in `s off`)
    over `--max-vertices`: prepare reads it without the flat split and simplifies it, and the result's edges
    sharper than 30° are found again (docs/prepare.md, Simplification), so the cube's edges stay hard: its
    corners' normals stay near their faces' (a smooth cube edge's normals lie 45° off both sides)."""
    from a3d_cli.stages.base import Runtime
    from a3d_cli.stages.prepare import PrepareOptions, run

    cube = trimesh.creation.box(extents=(2, 2, 2)).subdivide().subdivide().subdivide()  # 386 points
    if suffix == ".glb":
        path = _glb(tmp_path, lambda b: _primitive(b, cube))
    else:
        path = _flat_obj(tmp_path / "cube.obj", cube)
    options = PrepareOptions(model=str(path), max_vertices=100, splats=3000, view_size=64)
    result = run(tmp_path / "RUN", options, Runtime())
    mesh = load_processed_mesh(tmp_path / "RUN" / "source" / "mesh.glb")
    assert result.metrics["simplified_from"] == 386
    assert mesh.num_vertices > weld(mesh.vertices)[1]  # copies at the hard edges
    assert _worst_corner_degrees(mesh, mesh.shading_normals()) < 30.0
