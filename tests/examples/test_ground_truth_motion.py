"""examples/make_ground_truth_motion.py: the known motion is smooth in time, tear-free, and works on splats."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import torch
import trimesh
from helpers import REPO

from a3d_cli.gaussians.ply import write_ply
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.to_gaussians import mesh_to_gaussians
from a3d_cli.mesh.topology import unique_edges

SCRIPT = REPO / "examples" / "make_ground_truth_motion.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_gt_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def _creature() -> tuple[np.ndarray, np.ndarray]:
    """A long body with a head, normalized like `a3d prepare` (radius 0.9)."""
    body = trimesh.creation.icosphere(subdivisions=3)
    body.apply_scale([1.0, 0.45, 0.4])
    head = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    head.apply_translation([1.0, 0.3, 0.0])
    m = trimesh.util.concatenate([body, head])
    v = np.asarray(m.vertices)
    v = (v - (v.min(0) + v.max(0)) / 2) * (0.9 / np.linalg.norm(v - (v.min(0) + v.max(0)) / 2, axis=1).max())
    return v, np.asarray(m.faces)


def test_motion_keeps_neighbours_together_and_moves_without_jumps():
    mod = _script()
    v, f = _creature()
    spec = mod.MotionSpec.for_points(v)
    frames = np.stack([mod.motion_map(torch.from_numpy(v), i / 15, spec).numpy() for i in range(16)])  # [16, V, 3]
    assert np.allclose(frames[0], v) and np.allclose(frames[-1], v, atol=1e-9)
    assert mod.max_stretch(v, unique_edges(f), frames) < 0.3  # tear-free: no edge stretches or shrinks by more
    disp = np.linalg.norm(frames - v, axis=-1)
    assert disp.max() > 0.05  # it does move
    # smooth in time: per-frame steps change gradually (no cut), the second difference stays small
    step = np.linalg.norm(np.diff(frames, axis=0), axis=-1)  # [15, V]
    accel = np.linalg.norm(np.diff(frames, n=2, axis=0), axis=-1)  # [14, V]
    assert accel.max() < 0.6 * step.max()


def test_nonrigid_scale_scales_the_deformation_and_keeps_the_rigid_turn_and_hop():
    mod = _script()
    v, f = _creature()
    edges = unique_edges(f)

    def frames(scale: float) -> np.ndarray:
        spec = mod.MotionSpec.for_points(v, nonrigid_scale=scale)
        return np.stack([mod.motion_map(torch.from_numpy(v), i / 15, spec).numpy() for i in range(16)])

    full, half, rigid = frames(1.0), frames(0.5), frames(0.0)
    assert mod.max_stretch(v, edges, rigid) < 1e-9  # only the turn and hop are left: no edge changes length
    assert np.linalg.norm(rigid - v, axis=-1).max() > 0.03  # and they still move it
    s_full, s_half = mod.max_stretch(v, edges, full), mod.max_stretch(v, edges, half)
    assert 0.35 * s_full < s_half < 0.65 * s_full  # stretch about halves with the angles


def test_nonrigidity_target_picks_the_scale_that_reaches_it():
    from a3d_cli.gaussians.arap import nonrigidity_pct

    mod = _script()
    v, _ = _creature()
    for target in (2.0, 6.0):
        scale = mod.calibrate_nonrigid_scale(v, target)
        spec = mod.MotionSpec.for_points(v, scale)
        moved = torch.stack([mod.motion_map(torch.from_numpy(v), i / 15, spec) for i in range(16)])
        assert abs(nonrigidity_pct(moved) - target) < 0.05 * target
    assert mod.calibrate_nonrigid_scale(v, 2.0) < mod.calibrate_nonrigid_scale(v, 6.0)


def test_ground_truth_from_a_3dgs_file_with_up_and_front(tmp_path):
    mod = _script()
    v, f = _creature()
    mesh = SurfaceMesh(v, f, np.full((len(v), 4), 0.7, np.float32))
    g, _ = mesh_to_gaussians(mesh, target_splats=1500, seed=0, shade=True)
    turned = g.with_(means=g.means * torch.tensor([1.0, -1.0, -1.0]))  # stored Y-down
    write_ply(tmp_path / "splats.ply", turned)
    out = mod.main([
        "--model", str(tmp_path / "splats.ply"), "--out", str(tmp_path / "gt"), "--up=-y", "--front=-z",
        "--size", "32", "--heldout", "1", "--device", "cpu",
    ])  # fmt: skip
    truth = np.load(out / "ground_truth.npz")
    assert str(truth["points"]) == "splats"
    assert truth["vertices"].shape == (16, len(g), 3)
    assert len(list((out / "video").glob("v*_f*.png"))) == 64 and len(list((out / "heldout").glob("*.png"))) == 16
    # the rest pose is the prepared splats: upright again (the body's long axis is horizontal)
    ext = truth["rest_vertices"].max(0) - truth["rest_vertices"].min(0)
    assert ext[1] < ext[0]
