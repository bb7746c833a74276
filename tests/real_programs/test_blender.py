"""Blender imports a3d's GLBs as a user does (File → Import → glTF) and shows our mesh, motion and texture.

Opt-in: set A3D_BLENDER to the `blender` executable (Debian: `apt-get install blender python3-numpy`).
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from helpers import (
    REPO,
    blender_import,
    clip_key_seconds,
    expected_poses,
    gltf_to_blender,
    needs_program,
    player_tolerance,
    probe_keys,
    stage_metrics,
)

from a3d_cli.mesh.creases import FILE_NORMAL_DEGREES

pytestmark = needs_program("A3D_BLENDER")
FOX = REPO / "examples" / "assets" / "fox.glb"  # a glTF without NORMAL: shown flat-shaded
FACETED_DEGREES = 2 * FILE_NORMAL_DEGREES  # faces within 1° of the first around a vertex share its normal


def _only_mesh(scene: dict) -> dict:
    (mesh,) = [o for o in scene["objects"] if o["type"] == "MESH"]
    return mesh


@pytest.mark.parametrize("variant", ["morph", "loop", "skin", "colours"])
def test_blender_plays_the_animated_glb(mesh_runs, variant):
    run = mesh_runs[variant]
    m = stage_metrics(run, "mesh-animate")
    poses = expected_poses(run)  # [K, V, 3] +Y up
    seconds = clip_key_seconds(m)
    keys = probe_keys(len(seconds))
    probe = [seconds[k] for k in keys] + ([m["duration_s"]] if m["loop"] != "off" else [])
    scene = blender_import(run / "export" / "animated.glb", [s * 24.0 for s in probe])
    assert scene["fps"] == 24.0  # a factory-settings scene: glTF seconds become frames at 24 per second

    # what the outliner shows: one mesh, plus the armature of a skin
    mesh = _only_mesh(scene)
    types = sorted(o["type"] for o in scene["objects"])
    assert types == (["ARMATURE", "MESH"] if variant == "skin" else ["MESH"])
    assert mesh["vertices"] == m["vertices"] == poses.shape[1] and mesh["polygons"] == m["faces"]
    if variant == "colours":  # a PLY without normals: the GLB's normals shade it smoothly
        assert mesh["smooth_polygons"] == mesh["polygons"]
    # the fox has no NORMAL, so it is read flat-shaded, then simplified here far below its facets (hard edges
    # found again by the 30° rule): its facets are checked unsimplified, in the test below
    if variant == "colours":  # COLOR_0 becomes a colour attribute that feeds the material
        assert mesh["color_attributes"] and [(mat["images"], mat["vertex_colors"]) for mat in mesh["materials"]] == [
            ([], True)
        ]
    else:  # the fox's texture
        assert mesh["uv_layers"] == 1 and [len(mat["images"]) for mat in mesh["materials"]] == [1]
    (action,) = scene["actions"]
    if variant == "skin":
        (armature,) = [o for o in scene["objects"] if o["type"] == "ARMATURE"]
        assert armature["bones"] == m["bones"] + 1  # the root joint and one joint per bone
        assert mesh["parent"] == armature["name"] and mesh["modifiers"] == ["ARMATURE"] and mesh["shape_keys"] == []
        assert armature["action"] == action["name"]
        assert action["fcurves"] == m["bones"] * (3 + 4)  # location + quaternion per bone
    else:
        assert mesh["shape_keys"] == ["Basis"] + [f"frame_{k:04d}" for k in range(m["frames"])]
        assert mesh["action"] == action["name"] and action["fcurves"] == m["frames"]  # one per shape key
    # the timeline: the clip spans our duration at Blender's 24 fps; at our default 24 fps, one frame per key
    assert action["frame_range"] == pytest.approx([0.0, m["duration_s"] * 24.0])
    if m["fps"] == 24.0 and m["loop"] == "off":
        assert action["frame_range"][1] + 1 == m["frames"]

    # what the viewport shows at each probed frame: our poses, +Y up turned into Blender's +Z up
    atol = player_tolerance(poses)
    for i, k in enumerate(keys):
        shown = np.array(scene["positions"][i][mesh["name"]])
        np.testing.assert_allclose(shown, gltf_to_blender(poses[k]), atol=atol, err_msg=f"key {k}")
    if m["loop"] != "off":  # the closing key at the clip's end is the first pose again
        shown = np.array(scene["positions"][-1][mesh["name"]])
        np.testing.assert_allclose(shown, gltf_to_blender(poses[0]), atol=atol)


def test_blender_shows_a_gltf_without_normals_and_its_processed_mesh_faceted(fox_prepared):
    """glTF requires flat normals for a primitive without NORMAL: Blender imports the fox with every polygon
    flat, and a3d's processed fox with the corners of each polygon shaded by (within a degree or two) its own
    normal, through the NORMAL a3d writes, which Blender keeps as custom split normals."""
    source = _flat_check(blender_import(FOX))
    assert source["smooth_polygons"] == 0 and source["face_normal_degrees"] < 1e-3
    processed = _only_mesh(blender_import(fox_prepared / "source" / "mesh.glb"))
    assert processed["polygons"] == source["polygons"] and processed["face_normal_degrees"] < FACETED_DEGREES


def _flat_check(scene: dict) -> dict:
    """The fox's parts as Blender imports them, summed: polygons, smooth polygons, the largest corner angle."""
    meshes = [o for o in scene["objects"] if o["type"] == "MESH"]
    return {
        "polygons": sum(o["polygons"] for o in meshes),
        "smooth_polygons": sum(o["smooth_polygons"] for o in meshes),
        "face_normal_degrees": max(o["face_normal_degrees"] for o in meshes),
    }


def test_blender_shows_the_lifted_model_textured_upright_and_smooth(lift_run):
    glb = lift_run / "lift" / "model.glb"
    m = stage_metrics(lift_run, "lift")
    scene = blender_import(glb, [1.0])
    assert [o["type"] for o in scene["objects"]] == ["MESH"] and scene["actions"] == []
    mesh = _only_mesh(scene)
    ours = trimesh.load(glb, force="mesh", process=False)
    assert mesh["vertices"] == m["vertices"] == len(ours.vertices) and mesh["polygons"] == m["faces"]
    assert [mat["images"] for mat in mesh["materials"]] == [[[m["texture_size"], m["texture_size"]]]]
    assert mesh["uv_layers"] == 1
    assert mesh["smooth_polygons"] == mesh["polygons"]  # a faceted look would mean the GLB has no normals
    shown = np.array(scene["positions"][0][mesh["name"]])
    # the orbit's +Y up is Blender's +Z up: the same points, our height along Blender's Z
    np.testing.assert_allclose(shown, gltf_to_blender(ours.vertices), atol=1e-6)
    np.testing.assert_allclose(np.ptp(shown, axis=0), np.ptp(ours.vertices, axis=0)[[0, 2, 1]], atol=1e-6)
