"""A three.js splat viewer (@mkkellogg/gaussian-splats-3d) reads a3d's 3DGS PLYs as we wrote them.

Its PLY parser runs in node; the splats it holds (position, scale, rotation, colour, opacity) must be ours.
Opt-in: set A3D_SPLAT_VIEWER to a folder holding node_modules/@mkkellogg/gaussian-splats-3d.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from expect import metrics
from helpers import needs_program, splat_viewer_parse

from a3d_cli.gaussians.ply import read_ply

pytestmark = needs_program("A3D_SPLAT_VIEWER")


def _assert_viewer_reads(path):
    """The viewer's splats equal what a3d's reader gets from the file (colour and opacity to 1/255)."""
    seen = splat_viewer_parse(path)
    g = read_ply(path)
    assert seen["count"] == len(g)
    s = np.array(seen["splats"], dtype=np.float64)  # [N, 14]
    np.testing.assert_allclose(s[:, 0:3], g.means.double().numpy(), atol=1e-6)
    np.testing.assert_allclose(s[:, 3:6], g.scales.double().numpy(), rtol=1e-5, atol=1e-9)
    q = g.quats.double().numpy()
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs((s[:, 6:10] * q).sum(1)), 1.0, atol=1e-5)  # the same rotation (±q)
    rgba = np.concatenate([g.colors.double().clamp(0, 1).numpy(), g.opacities.double().numpy()[:, None]], 1) * 255
    np.testing.assert_allclose(s[:, 10:14], rgba, atol=1.01)
    return seen


def test_the_ply_sequence_and_static_splats_open_in_the_viewer(mesh_runs):
    run = mesh_runs["morph"]
    sequence = json.loads((run / "export" / "gaussians" / "sequence.json").read_text())
    files = sorted((run / "export" / "gaussians").glob("frame_*.ply"))
    assert [f.name for f in files] == [f["file"] for f in sequence["frames"]]
    assert len(files) == metrics(run, "export")["frames"]
    for path in (files[0], files[len(files) // 2], files[-1], run / "static" / "gaussians.ply"):
        assert _assert_viewer_reads(path)["count"] == sequence["num_gaussians"]


@pytest.mark.parametrize("convention", ["yup", "inria"])
def test_looped_and_inria_plys_open_in_the_viewer(mesh_runs, tmp_path, convention):
    from conftest import a3d

    run = mesh_runs["loop"]
    if convention == "inria":  # +Y down for COLMAP-style viewers: a rotation of the same splats
        import shutil

        run = shutil.copytree(run, tmp_path / "INRIA")
        a3d(
            "export",
            str(run),
            "--loop",
            "--fps",
            "12",
            "--duration",
            "2",
            "--ply-convention",
            "inria",
            "--no-preview",
            "--force",
        )
    _assert_viewer_reads(run / "export" / "gaussians" / "frame_0005.ply")


def test_the_lifted_splats_open_in_the_viewer(lift_run):
    assert _assert_viewer_reads(lift_run / "lift" / "gaussians.ply")["count"] == metrics(lift_run, "lift")["splats"]
