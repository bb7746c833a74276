"""three.js loads a3d's GLBs with GLTFLoader (in node, as a web page would) and plays the motion we wrote.

Opt-in: set A3D_THREE to a folder holding node_modules/three (`npm install three`; node >= 18).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    REPO,
    clip_key_seconds,
    expected_poses,
    needs_program,
    player_tolerance,
    probe_keys,
    stage_metrics,
    three_load,
)

from a3d_cli.mesh.creases import FILE_NORMAL_DEGREES

pytestmark = needs_program("A3D_THREE")
FACETED_DEGREES = 2 * FILE_NORMAL_DEGREES  # faces within 1° of the first around a vertex share its normal


@pytest.mark.parametrize("variant", ["morph", "loop", "skin", "colours"])
def test_three_plays_the_animated_glb(mesh_runs, variant):
    run = mesh_runs[variant]
    m = stage_metrics(run, "mesh-animate")
    poses = expected_poses(run)  # [K, V, 3]
    seconds = clip_key_seconds(m)
    keys = probe_keys(len(seconds))
    # a time between two keys too: players blend neighbouring keys linearly (the default interpolation)
    between = (seconds[1] + seconds[2]) / 2
    out = three_load(run / "export" / "animated.glb", [seconds[k] for k in keys] + [between])

    (mesh,) = out["meshes"]
    assert mesh["vertices"] == m["vertices"] == poses.shape[1]
    assert "normal" in mesh["attributes"] and not mesh["flat_shading"]
    if variant == "colours":  # a PLY without normals, shaded smoothly
        assert mesh["seam_normal_gap"] < 1e-5  # no shading crease where copies of a position meet
    # the fox has no NORMAL, so it is read flat-shaded, then simplified here far below its facets (hard edges
    # found again by the 30° rule): its facets are checked unsimplified, in the test below
    if variant == "colours":  # COLOR_0 switches the material's vertex colours on
        assert "color" in mesh["attributes"] and mesh["vertex_colors"] and mesh["map"] is None
    else:  # the fox's texture
        assert "uv" in mesh["attributes"] and mesh["map"] is not None and mesh["map"][0] > 0
    (clip,) = out["clips"]
    assert clip["name"] == "a3d_motion" and clip["duration"] == pytest.approx(m["duration_s"], abs=1e-6)
    closing = 1 if m["loop"] != "off" else 0  # a loop's closing key at the clip's end
    if variant == "skin":
        assert (
            mesh["skinned"] and mesh["skeleton_bones"] == out["bones"] == m["bones"] + 1 and mesh["morph_targets"] == 0
        )
        names = sorted(t[0] for t in clip["tracks"])
        assert names == sorted(f"bone_{b:03d}.{p}" for b in range(m["bones"]) for p in ("position", "quaternion"))
        assert {t[1] for t in clip["tracks"]} == {m["frames"] + closing}
    else:
        assert not mesh["skinned"] and mesh["morph_targets"] == mesh["morph_normals"] == m["frames"]
        assert clip["tracks"] == [[f"{mesh['name']}.morphTargetInfluences", m["frames"] + closing]]

    atol = player_tolerance(poses)
    for i, k in enumerate(keys):
        shown = np.array(out["positions"][i][0])
        np.testing.assert_allclose(shown, poses[k], atol=atol, err_msg=f"key {k} at {seconds[k]} s")
    if variant != "skin":  # morph weights blend linearly, so the vertices do too (a skin blends bone motions)
        shown = np.array(out["positions"][-1][0])
        np.testing.assert_allclose(shown, (poses[1] + poses[2]) / 2, atol=atol)


def test_three_shows_a_gltf_without_normals_and_its_processed_mesh_faceted(fox_prepared):
    """GLTFLoader shades the fox (no NORMAL) flat, as glTF requires; a3d's processed fox carries a NORMAL that
    gives each triangle's corners (within a degree or two) the triangle's own normal."""
    source = three_load(REPO / "examples" / "assets" / "fox.glb")
    assert source["meshes"] and all(m["flat_shading"] and "normal" not in m["attributes"] for m in source["meshes"])
    (mesh,) = three_load(fox_prepared / "source" / "mesh.glb")["meshes"]
    assert "normal" in mesh["attributes"] and not mesh["flat_shading"] and mesh["face_normal_degrees"] < FACETED_DEGREES


def test_three_shows_the_lifted_model_textured_and_smooth(lift_run):
    m = stage_metrics(lift_run, "lift")
    out = three_load(lift_run / "lift" / "model.glb")
    (mesh,) = out["meshes"]
    assert mesh["vertices"] == m["vertices"] and out["clips"] == [] and not mesh["skinned"]
    assert mesh["map"] == [m["texture_size"], m["texture_size"]]
    assert "normal" in mesh["attributes"] and not mesh["flat_shading"]  # GLTFLoader shades a normal-less mesh flat
    assert mesh["seam_normal_gap"] < 1e-5  # ... and per-chart normals would crease along the texture's seams
