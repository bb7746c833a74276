"""The benchmarks' one lookup of asset names (benchmarks/public_assets.py) and bench_lift's use of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO

from a3d_cli.lift.masks import AUTO_THRESHOLD_FLOOR
from a3d_cli.models.sv3d.cameras import dynamic_orbit, static_orbit

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_lift  # noqa: E402
import bench_reconstruct  # noqa: E402
from public_assets import asset_sources  # noqa: E402


def _tall_box_obj(path: Path) -> None:
    """A box 3 units tall along Z (an OBJ exported Z-up)."""
    import trimesh

    trimesh.creation.box(extents=(1.0, 1.0, 3.0)).export(path)


@pytest.fixture()
def assets_dir(tmp_path: Path) -> Path:
    _tall_box_obj(tmp_path / "tower.obj")
    manifest = {
        "Tower": {"file": "tower.obj", "up": "+z"},
        "TowerY": {"file": "tower.obj"},
    }
    (tmp_path / "assets.json").write_text(json.dumps(manifest))
    return tmp_path


def test_names_resolve_to_files_and_up_axes_from_the_manifest(assets_dir: Path) -> None:
    found = asset_sources(["fox", "Tower", "TowerY"], assets_dir)
    assert found["fox"] == (None, "+y")
    assert found["Tower"] == (str(assets_dir / "tower.obj"), "+z")
    assert found["TowerY"][1] == "+y"  # no up in the manifest: +Y


def test_an_unknown_name_says_what_to_run(assets_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="public_assets.py.*known: fox, Tower, TowerY"):
        asset_sources(["Duck"], assets_dir)
    with pytest.raises(SystemExit, match="none yet"):
        asset_sources(["Duck"], tmp_path / "not_fetched")


def test_both_benchmarks_use_the_one_lookup() -> None:
    assert bench_reconstruct.asset_sources is asset_sources and bench_lift.asset_sources is asset_sources


def test_bench_lift_loads_named_assets_upright_and_normalized(assets_dir: Path) -> None:
    assets = bench_lift.load_assets(["toy", "Tower"], [], assets_dir)
    assert set(assets) == {"toy", "Tower"}
    v = assets["Tower"].vertices
    extent = v.max(0) - v.min(0)
    assert np.argmax(extent) == 1  # its Z-up long axis now points along +Y, the orbit's up
    assert np.isclose(np.linalg.norm(v, axis=1).max(), 0.5, atol=1e-6)  # farthest point at the object radius


def test_bench_reconstruct_runs_an_asset_end_to_end(tmp_path: Path, monkeypatch) -> None:
    """A few CPU steps on the fox: the script against this tree's stage and run layout, row by row."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "r.json"
    rows = bench_reconstruct.main(["--device", "cpu", "--preset", "quickstart", "--steps", "6", "--splats", "400",
                                   "--size", "64", "--no-profile", "--assets", "fox", "--work", str(tmp_path / "w"),
                                   "--out", str(out)])  # fmt: skip
    assert [r["variant"] for r in rows] == ["fox"]
    saved_all = json.loads(out.read_text())
    saved = saved_all["rows"][0]["result"]
    assert saved["heldout_psnr"] > 10 and 0 <= saved["vertex_error_pct"] < 100
    per_frame = saved["vertex_error_per_frame_pct"]  # frames 1-15, whose mean is the headline figure
    assert len(per_frame) == len(saved["true_motion_per_frame_pct"]) == 15
    assert abs(sum(per_frame) / 15 - saved["vertex_error_pct"]) < 0.01
    # the error split by what the video cameras see, the area-uniform surface error, the motion's non-rigidity
    assert 50 < saved["visible_vertex_frames_pct"] <= 100 and 0 <= saved["vertex_error_visible_pct"] < 100
    for r in (saved, saved_all["rows"][0]["static"]):  # seen and unseen vertex-frames make up the whole
        share = r["visible_vertex_frames_pct"] / 100
        hidden = r["vertex_error_hidden_pct"] or 0.0
        assert abs(share * r["vertex_error_visible_pct"] + (1 - share) * hidden - r["vertex_error_pct"]) < 0.02
    assert saved_all["rows"][0]["static"]["surface_error_pct"] > 0  # the static model misses the true motion
    assert 0 < saved_all["rows"][0]["gt_nonrigidity_pct"] < 50
    header = saved_all["markdown"].splitlines()[0]
    assert "vertex err % r (static)" in header and "seen / unseen" in header and "non-rigid" in header


def test_bench_reconstruct_at_a_set_nonrigidity_with_animate3d_s_settings(tmp_path: Path, monkeypatch) -> None:
    """`--nonrigidity` makes a ground truth that deforms that much; `--preset animate3d` fits Animate3D's settings
    (two levels, ARAP at a constant weight)."""
    from a3d_cli.gaussians.motion_field import MotionFieldConfig
    from a3d_cli.gaussians.motion_io import load_motion

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work = tmp_path / "w"
    rows = bench_reconstruct.main(["--device", "cpu", "--preset", "animate3d", "--steps", "4", "--splats", "400",
                                   "--size", "64", "--no-profile", "--assets", "fox", "--work", str(work),
                                   "--nonrigidity", "3"])  # fmt: skip
    row = rows[0]
    assert abs(row["gt_nonrigidity_pct"] - 3.0) < 0.3  # the fox's own is about 5
    assert (work / "gt_fox_nr3" / "ground_truth.npz").is_file()
    assert row["arap_anneal"] == 1.0 and row["motion_prior"] == "arap" and row["lambda_rgb"] == 100.0
    assert row["preset"] == "animate3d" and row["affine_neighbours"] is None
    assert "| fox @ 3 % non-rigid | animate3d |" in bench_reconstruct.asset_table(rows)
    motion = load_motion(work / "run_fox" / "motion" / "coarse.safetensors")
    assert motion.field.config == MotionFieldConfig()  # Animate3D's field


def test_bench_lift_orbits_are_a3d_s_own_and_the_dynamic_one_is_seeded_like_the_stage() -> None:
    static = bench_lift.make_orbit("static", 10.0, 3)
    assert torch.equal(static.elevation_deg, static_orbit(10.0).elevation_deg)
    dyn, ref = bench_lift.make_orbit("dynamic", 10.0, 3), dynamic_orbit(3, 10.0)
    assert torch.equal(dyn.elevation_deg, ref.elevation_deg) and torch.equal(dyn.azimuth_deg, ref.azimuth_deg)
    assert not torch.equal(dyn.elevation_deg, bench_lift.make_orbit("dynamic", 10.0, 4).elevation_deg)


def test_bench_lift_refuses_held_out_views_that_repeat_orbit_views() -> None:
    held = bench_lift.held_out_cameras()
    with pytest.raises(SystemExit, match="held-out camera"):
        bench_lift.check_disjoint(held, held)
    assert held.elevation_deg.tolist() == [-10.0] * 8 + [30.0] * 8  # 20° below and above the orbit's 10°
    for seed in range(20):  # no seed's dynamic orbit comes near the held-out elevations (−10°, +30°)
        orbit = bench_lift.orbit_camera_set(dynamic_orbit(seed, bench_lift.WRONG_ELEVATION))
        assert bench_lift.check_disjoint(held, orbit) >= bench_lift.MIN_SEPARATION_DEG


def test_held_out_psnr_is_split_by_what_the_orbit_saw() -> None:
    truth = torch.full((16, 8, 8, 3), 0.5)
    alpha = torch.ones(16, 8, 8)
    alpha[:, 0] = 0.0  # a background row: counted by no split
    seen = torch.zeros(16, 8, 8)
    seen[..., :4], seen[..., 4:6] = 0.9, 0.2  # square, grazed, then unseen columns
    img = truth.clone()
    img[:, :, 6:] += 0.1  # wrong only where no orbit view saw the surface …
    img[:, 0] = 0.0  # … and on the background
    s = bench_lift.coverage_scores(img, truth, alpha, seen)
    assert s["psnr_unseen"] == pytest.approx(20.0, abs=1e-3)
    assert s["psnr_square"] > 100 and s["psnr_grazed"] > 100
    assert s["share_unseen"] == s["share_grazed"] == 0.25
    assert s["psnr_low"] == s["psnr_high"] < s["psnr_unseen"] - 4  # whole views include the background error
    assert s["psnr_low"] < s["psnr_unseen_right"] < 100  # the unseen columns put right, the background not


def test_bench_lift_runs_a_dynamic_orbit_end_to_end(tmp_path: Path, monkeypatch) -> None:
    """Tiny sizes: the truth rendered on SV3D_p's dynamic orbit (seed 3), lifted, scored."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rows = bench_lift.main(["--device", "cpu", "--assets", "toy", "--orbit", "dynamic", "--seed", "3", "--size", "48",
                            "--resolution", "32", "--steps", "5", "--eval-size", "32", "--gt-splats", "2000",
                            "--points", "2000", "--preview-frames", "2", "--mesh-resolution", "32",
                            "--perturbations", "none", "--out", str(tmp_path / "l.json")])  # fmt: skip
    row = json.loads((tmp_path / "l.json").read_text())["rows"][0]
    assert row == rows[0] and row["orbit"] == "dynamic"
    assert row["lighting"] == "studio" and row["held_out_elevations"] == [-10.0, 30.0]
    assert row["white_threshold"] == AUTO_THRESHOLD_FLOOR  # measured by the stage: a clean rendered background
    elev = dynamic_orbit(3, bench_lift.ELEVATION).elevation_deg
    assert row["orbit_elevations"] == [round(float(elev.min()), 2), round(float(elev.max()), 2)]
    assert row["separation_deg"] >= bench_lift.MIN_SEPARATION_DEG
    assert 0 <= row["mesh_share_unseen"] + row["mesh_share_grazed"] <= 1 and row["psnr_mesh"] > 5


def test_bench_reconstruct_changes_the_image_weight_alone(tmp_path: Path, monkeypatch) -> None:
    """`--lambda-rgb W` fits the preset's settings with that RGB weight and every other field as the preset has it
    (but for the stage's own options given beside it), each named in the table."""
    from dataclasses import asdict

    from a3d_cli.stages.reconstruct import ReconstructOptions

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work = tmp_path / "w"
    rows = bench_reconstruct.main(["--device", "cpu", "--preset", "reference", "--steps", "2", "--splats", "300",
                                   "--size", "64", "--no-profile", "--assets", "fox", "--work", str(work),
                                   "--lambda-rgb", "100", "--affine-neighbours", "16"])  # fmt: skip
    assert rows[0]["lambda_rgb"] == 100.0 and rows[0]["preset"] == "custom"
    assert "| fox, RGB weight 100, 16 affine neighbours | custom |" in bench_reconstruct.asset_table(rows)
    ran = json.loads((work / "run_fox" / "a3d.json").read_text())["stages"]["reconstruct"]["params"]["settings"]
    preset = asdict(ReconstructOptions(preset="reference", steps=2).resolve("cpu")[1])
    assert ran["lambda_rgb"] == 100.0 and preset["lambda_rgb"] == 300.0
    changed = {k for k in preset if json.loads(json.dumps(preset[k])) != ran[k]}
    assert changed == {"lambda_rgb", "affine_neighbours"} and ran["affine_neighbours"] == 16


def test_bench_lift_normal_scores_see_lumps_and_inverted_normals_but_not_a_faithful_copy() -> None:
    """The shading-normal angle: small for a fine sphere against itself, larger once its surface ripples
    (the same sphere, its vertices moved in and out), and about 180° for a copy with inward normals."""
    import trimesh

    from a3d_cli.mesh.surface import SurfaceMesh

    def surface(tm: trimesh.Trimesh) -> SurfaceMesh:
        return SurfaceMesh(np.asarray(tm.vertices), np.asarray(tm.faces), np.ones((len(tm.vertices), 4), np.float32))

    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    rng = np.random.default_rng(0)
    lumpy = sphere.copy()
    lumpy.vertices = lumpy.vertices * (1 + 0.01 * rng.standard_normal(len(lumpy.vertices)))[:, None]
    inverted = sphere.copy()
    inverted.faces = inverted.faces[:, ::-1]
    truth = surface(sphere)
    same = bench_lift.normal_scores(truth, truth, 20_000, 0.5)
    rippled = bench_lift.normal_scores(surface(lumpy), truth, 20_000, 0.5)
    flipped = bench_lift.normal_scores(surface(inverted), truth, 20_000, 0.5)
    assert same["normal_deg_mean"] < 1.0 and same["normal_deg_p90"] < 2.0  # faces 1.2° apart at this subdivision
    assert rippled["normal_deg_mean"] > 3 * same["normal_deg_mean"] + 2.0
    assert rippled["normal_deg_p90"] > rippled["normal_deg_mean"]
    assert flipped["normal_deg_mean"] > 175.0
