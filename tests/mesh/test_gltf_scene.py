"""glTF scene features a viewer honours: the pose shown without animation (default morph weights, skins),
triangle fans, files without scenes, camera nodes.

Every file is built here with `helpers.GlbBuilder`; expected positions come from the glTF 2.0 spec's
formulas written out in the test, never from a3d's reader. Blender 3.4's importer and three.js give the same
poses (checked by hand on Blender exports with a posed rig and a shape key).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import GL_FLOAT, GL_UBYTE, GL_UINT, GL_USHORT, GlbBuilder

from a3d_cli.errors import InputError
from a3d_cli.mesh.load import load_mesh


def rows(a: np.ndarray) -> np.ndarray:
    """The distinct rows of [N, 3] points in lexicographic order (the scene's part order is not a3d's promise,
    and a primitive without NORMAL is read flat-shaded: its vertices split where its faces turn)."""
    return np.unique(np.round(np.asarray(a, np.float64), 5), axis=0)


def strip(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A thin vertical strip from y = 0 to y = 2: [2(n + 1), 3] float32 positions, [2n, 3] uint32 faces."""
    y = np.linspace(0.0, 2.0, n + 1)
    v = np.stack([np.r_[np.full(n + 1, -0.1), np.full(n + 1, 0.1)], np.r_[y, y], np.zeros(2 * n + 2)], 1)
    f = [[i, i + n + 1, i + 1] for i in range(n)] + [[i + 1, i + n + 1, i + n + 2] for i in range(n)]
    return v.astype(np.float32), np.array(f, np.uint32)


def translate(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = x, y, z
    return m


def test_a_skinned_mesh_is_placed_by_its_joints_and_its_own_node_transform_is_ignored(tmp_path):
    v, f = strip()
    # bind pose: joint 0 at the origin, joint 1 at (0, 1, 0); the pose: joint 0 moved to (5, 0, 0), joint 1
    # turned 90° about Z. Vertices below y = 1 follow joint 0, above it joint 1, the middle row half each.
    joints = np.zeros((len(v), 4), np.uint8)
    weights = np.zeros((len(v), 4), np.float32)
    upper, middle = v[:, 1] > 1.01, np.abs(v[:, 1] - 1.0) < 0.01
    joints[upper, 0] = 1
    weights[:, 0] = 1.0
    joints[middle, 1] = 1
    weights[middle, :2] = 0.5
    inverse_bind = np.stack([np.eye(4), np.linalg.inv(translate(0, 1, 0))]).transpose(0, 2, 1)  # column-major
    b = GlbBuilder()
    b.doc["nodes"] += [
        {"translation": [5, 0, 0], "children": [1]},  # 0: joint 0
        {"translation": [0, 1, 0], "rotation": [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]},  # 1: joint 1
    ]
    b.doc["skins"] = [
        {
            "joints": [0, 1],
            "inverseBindMatrices": b.accessor(inverse_bind.reshape(2, 16).astype(np.float32), GL_FLOAT, "MAT4"),
        }
    ]
    attrs = {"POSITION": b.accessor(v, GL_FLOAT, "VEC3"), "JOINTS_0": b.accessor(joints, GL_UBYTE, "VEC4"),
             "WEIGHTS_0": b.accessor(weights, GL_FLOAT, "VEC4")}  # fmt: skip
    skinned = b.mesh(attrs, b.accessor(f.ravel(), GL_UINT, "SCALAR"), node={"skin": 0, "translation": [100, 0, 0]})
    b.doc["scenes"][0]["nodes"] = [0]
    b.doc["nodes"].append({"scale": [3, 3, 3], "translation": [0, 0, -50], "children": [skinned]})  # a rig node
    b.doc["scenes"][0]["nodes"].append(len(b.doc["nodes"]) - 1)
    mesh = load_mesh(b.save(tmp_path / "skinned.glb"))

    turn = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float64)  # 90° about Z
    lower_pose = v + [5, 0, 0]  # world(joint 0) · I · v
    upper_pose = (v - [0, 1, 0]) @ turn.T + [5, 1, 0]  # world(joint 1) · inverse(bind 1) · v
    expected = np.where(upper[:, None], upper_pose, lower_pose)
    expected[middle] = 0.5 * lower_pose[middle] + 0.5 * upper_pose[middle]
    np.testing.assert_allclose(rows(mesh.vertices), rows(expected), atol=1e-5)
    assert mesh.num_faces == len(f)


def test_default_morph_weights_are_applied_a_nodes_own_weights_first(tmp_path):
    v, f = strip()
    lift = np.tile(np.float32([[0, 0, 1]]), (len(v), 1))
    b = GlbBuilder()
    sparse_ids = np.array([0, 3], np.uint16)  # a sparse target (exporters write them for local shape keys)
    bump = b.accessor(None, GL_FLOAT, "VEC3", count=len(v), sparse={
        "count": 2, "indices": {"bufferView": b.view(sparse_ids.tobytes()), "componentType": GL_USHORT},
        "values": {"bufferView": b.view(np.float32([[2, 0, 0], [0, 2, 0]]).tobytes())}})  # fmt: skip
    targets = [{"POSITION": b.accessor(lift, GL_FLOAT, "VEC3")}, {"POSITION": bump}]
    b.mesh({"POSITION": b.accessor(v, GL_FLOAT, "VEC3")}, b.accessor(f.ravel(), GL_UINT, "SCALAR"), targets=targets)
    b.doc["meshes"][0]["weights"] = [0.5, 0.0]
    b.doc["nodes"].append({"mesh": 0, "translation": [10, 0, 0], "weights": [0.0, 1.0]})  # the same mesh, own weights
    b.doc["scenes"][0]["nodes"].append(1)
    mesh = load_mesh(b.save(tmp_path / "morph.glb"))

    first = v + 0.5 * lift
    second = v.astype(np.float64) + [10, 0, 0]
    second[0] += [2, 0, 0]
    second[3] += [0, 2, 0]
    np.testing.assert_allclose(rows(mesh.vertices), rows(np.r_[first, second]), atol=1e-5)


def test_triangle_fans_are_read_as_their_triangles_with_or_without_indices(tmp_path):
    n = 10
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rim = np.stack([np.cos(angle), np.sin(angle), np.zeros(n)], 1)
    disc = np.r_[[[0.0, 0.0, 0.0]], rim].astype(np.float32)
    order = np.r_[0, 1 : n + 1, 1].astype(np.uint16)  # centre, rim, back to the first rim vertex
    b = GlbBuilder()
    b.mesh({"POSITION": b.accessor(disc, GL_FLOAT, "VEC3")}, b.accessor(order, GL_USHORT, "SCALAR"), mode=6)
    b.mesh({"POSITION": b.accessor(disc[order] + np.float32([0, 0, 5]), GL_FLOAT, "VEC3")}, None, mode=6)
    mesh = load_mesh(b.save(tmp_path / "fan.glb"))

    # glTF 2.0 §3.7.2.1: triangle k of a fan is (p₀, p_{k+1}, p_{k+2}); each disc has n of them, facing +Z
    assert mesh.num_faces == 2 * n
    triangles = mesh.vertices[mesh.faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    assert (normals[:, 2] > 0).all()
    area = 0.5 * n * np.sin(2 * np.pi / n)
    np.testing.assert_allclose(0.5 * np.linalg.norm(normals, axis=1).sum(), 2 * area, rtol=1e-5)


def test_a_file_without_scenes_reads_its_root_nodes_and_camera_nodes_keep_their_meshes(tmp_path):
    v, f = strip()
    b = GlbBuilder()
    b.mesh(
        {"POSITION": b.accessor(v, GL_FLOAT, "VEC3")},
        b.accessor(f.ravel(), GL_UINT, "SCALAR"),
        node={"translation": [0, 0, -2]},
    )
    b.doc["cameras"] = [{"type": "perspective", "perspective": {"yfov": 0.8, "znear": 0.1}}]
    b.doc["nodes"].append({"camera": 0, "mesh": 0, "translation": [3, 0, 0], "children": [0]})  # a camera rig
    b.doc["scenes"][0]["nodes"] = [1]
    mesh = load_mesh(b.save(tmp_path / "camera.glb"))
    np.testing.assert_allclose(rows(mesh.vertices), rows(np.r_[v + [3, 0, 0], v + [3, 0, -2]]), atol=1e-6)

    del b.doc["scenes"], b.doc["scene"]  # a valid glTF: Blender imports every root node
    mesh = load_mesh(b.save(tmp_path / "no_scenes.glb"))
    np.testing.assert_allclose(rows(mesh.vertices), rows(np.r_[v + [3, 0, 0], v + [3, 0, -2]]), atol=1e-6)


@pytest.mark.parametrize(
    "skin, match",
    [
        ({"joints": [0, 0, 0]}, "names a joint node twice"),  # a hostile file repeats one joint millions of times
        ({"joints": 7}, "names joints that are not nodes"),
        ({"joints": [0], "inverse_bind": "VEC3"}, "have 3 components, not 16"),
    ],
)
def test_a_malformed_skin_is_refused_by_name(tmp_path, skin, match):
    v, f = strip()
    b = GlbBuilder()
    b.doc["nodes"].append({})  # 0: the joint
    if skin.pop("inverse_bind", None):
        skin["inverseBindMatrices"] = b.accessor(np.zeros((1, 3), np.float32), GL_FLOAT, "VEC3")
    b.doc["skins"] = [skin]
    attrs = {
        "POSITION": b.accessor(v, GL_FLOAT, "VEC3"),
        "JOINTS_0": b.accessor(np.zeros((len(v), 4), np.uint8), GL_UBYTE, "VEC4"),
        "WEIGHTS_0": b.accessor(np.tile(np.float32([1, 0, 0, 0]), (len(v), 1)), GL_FLOAT, "VEC4"),
    }
    skinned = b.mesh(attrs, b.accessor(f.ravel(), GL_UINT, "SCALAR"), node={"skin": 0})
    b.doc["scenes"][0]["nodes"] = [0, skinned]
    with pytest.raises(InputError, match=match):
        load_mesh(b.save(tmp_path / "skin.glb"))
