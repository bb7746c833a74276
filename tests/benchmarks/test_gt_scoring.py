"""benchmarks/gt_scoring.py: which mesh vertices the video cameras see."""

from __future__ import annotations

import sys

import numpy as np
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

from gt_scoring import vertex_visibility  # noqa: E402

from a3d_cli.render.cameras import orbit_cameras  # noqa: E402


def _cube() -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    box = trimesh.creation.box(extents=(0.8, 0.8, 0.8))
    return np.asarray(box.vertices, dtype=np.float32), np.asarray(box.faces)


def test_a_cube_seen_from_above_shows_six_corners_and_hides_the_two_far_bottom_ones() -> None:
    verts, faces = _cube()
    cam = orbit_cameras([15.0], [0.0], radius=3.0, fov_deg=40.0)
    eye = cam.c2w[0, :3, 3].numpy()
    vis = vertex_visibility(verts[None], faces, cam, size=128, samples=100_000)
    assert vis.shape == (1, 1, 8)
    # hidden: the bottom corners on the far side from the camera (y below the centre, away from the eye)
    far_bottom = (verts[:, 1] < 0) & ((verts[:, [0, 2]] @ eye[[0, 2]]) < 0)
    assert far_bottom.sum() == 2
    np.testing.assert_array_equal(vis[0, 0], ~far_bottom)


def test_a_corner_hidden_in_one_view_is_seen_from_the_opposite_one_and_frames_are_scored_apart() -> None:
    verts, faces = _cube()
    cams = orbit_cameras([15.0, 15.0], [0.0, 180.0], radius=3.0, fov_deg=40.0)
    turned = verts @ np.array([[-1, 0, 0], [0, 1, 0], [0, 0, -1]], dtype=np.float32).T  # half a turn about y
    vis = vertex_visibility(np.stack([verts, turned]), faces, cams, size=128, samples=100_000)
    assert vis.shape == (2, 2, 8)
    assert vis.any(axis=1).all()  # two opposite elevated views see every corner of a cube
    assert (~vis[0, 0]).sum() == 2 and (~vis[0, 1]).sum() == 2
    np.testing.assert_array_equal(vis[1, 0], vis[0, 1])  # turned half way, view 0 sees what view 1 saw
