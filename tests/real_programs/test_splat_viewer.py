"""Splat viewers read a3d's 3DGS PLYs as we wrote them: the three.js viewer @mkkellogg/gaussian-splats-3d
(its PLY parser, in node) and Spark (@sparkjsdev/spark, in a web page in headless chromium).

The splats each holds (position, scale, rotation, colour, opacity) must be ours, to the viewer's storage
precision. Opt-in: A3D_SPLAT_VIEWER (a folder holding node_modules/@mkkellogg/gaussian-splats-3d);
A3D_SPARK (a folder holding node_modules/@sparkjsdev/spark and three) with A3D_CHROMIUM (the browser).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import needs_program, run_a3d, spark_parse, splat_viewer_parse, stage_metrics

from a3d_cli.gaussians.ply import read_ply

PLYS = ["first_frame", "middle_frame", "last_frame", "static", "loop_frame", "inria_frame", "lift"]


@pytest.fixture(scope="module")
def plys(mesh_runs, lift_run, tmp_path_factory) -> dict[str, Path]:
    """Every kind of PLY a user gets, by name (see PLYS); the sequence checked against its own records."""
    run = mesh_runs["morph"]
    sequence = json.loads((run / "export" / "gaussians" / "sequence.json").read_text())
    files = sorted((run / "export" / "gaussians").glob("frame_*.ply"))
    assert [f.name for f in files] == [f["file"] for f in sequence["frames"]]
    assert len(files) == stage_metrics(run, "export")["frames"]
    assert len(read_ply(files[0])) == sequence["num_gaussians"]
    inria = shutil.copytree(mesh_runs["loop"], tmp_path_factory.mktemp("inria") / "RUN")  # +Y down, COLMAP-style
    run_a3d(
        "export",
        str(inria),
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
    return {
        "first_frame": files[0], "middle_frame": files[len(files) // 2], "last_frame": files[-1],
        "static": run / "static" / "gaussians.ply", "loop_frame": mesh_runs["loop"] / "export" / "gaussians" / "frame_0005.ply",
        "inria_frame": inria / "export" / "gaussians" / "frame_0005.ply", "lift": lift_run / "lift" / "gaussians.ply",
    }  # fmt: skip


def _ours(path: Path) -> dict[str, np.ndarray]:
    g = read_ply(path)
    q = g.quats.double().numpy()
    return {
        "means": g.means.double().numpy(), "scales": g.scales.double().numpy(), "quats": q / np.linalg.norm(q, axis=1, keepdims=True),
        "rgb": g.colors.double().clamp(0, 1).numpy(), "opacity": g.opacities.double().numpy(),
    }  # fmt: skip


@needs_program("A3D_SPLAT_VIEWER")
@pytest.mark.parametrize("name", PLYS)
def test_gaussian_splats_3d_reads_our_splats(plys, name):
    seen = splat_viewer_parse(plys[name])
    ours = _ours(plys[name])
    assert seen["count"] == len(ours["means"])
    s = np.array(seen["splats"], dtype=np.float64)  # [N, 14], full-precision floats, 8-bit colour
    np.testing.assert_allclose(s[:, 0:3], ours["means"], atol=1e-6)
    np.testing.assert_allclose(s[:, 3:6], ours["scales"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(np.abs((s[:, 6:10] * ours["quats"]).sum(1)), 1.0, atol=1e-5)  # the same rotation (±q)
    rgba = np.concatenate([ours["rgb"], ours["opacity"][:, None]], 1) * 255
    np.testing.assert_allclose(s[:, 10:14], rgba, atol=1.01)


@needs_program("A3D_SPARK", "A3D_CHROMIUM")
@pytest.mark.parametrize("name", ["first_frame", "last_frame", "inria_frame", "lift"])
def test_spark_reads_our_splats(plys, name):
    seen = spark_parse(plys[name])
    ours = _ours(plys[name])
    assert seen["count"] == len(ours["means"])
    s = np.array(seen["splats"], dtype=np.float64)  # [N, 14] as Spark packs them
    # float16 positions: half a step at the largest magnitude
    np.testing.assert_allclose(s[:, 0:3], ours["means"], atol=np.abs(ours["means"]).max() * 2.0**-11 + 1e-7)
    # log scales in 254 steps over [-12, 9]: half a step
    np.testing.assert_allclose(np.log(s[:, 3:6]), np.log(ours["scales"]), atol=21 / 254 / 2 + 1e-4)
    assert np.abs((s[:, 6:10] * ours["quats"]).sum(1)).min() > 0.999  # 8-bit axis and angle: within ~5°
    rgba = np.concatenate([ours["rgb"], ours["opacity"][:, None]], 1)
    np.testing.assert_allclose(s[:, 10:14], rgba, atol=0.51 / 255)  # 8-bit colour and opacity, rounded
