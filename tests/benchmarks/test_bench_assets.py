"""The benchmarks' one lookup of asset names (benchmarks/public_assets.py) and bench_lift's use of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

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


def test_bench_reconstruct_at_a_set_nonrigidity_with_a_coarse_level(tmp_path: Path, monkeypatch) -> None:
    """`--nonrigidity` makes a ground truth that deforms that much; `--coarse-level` fits a field with one more level."""
    from a3d_cli.gaussians.motion_field import COARSE_GRID, MotionFieldConfig
    from a3d_cli.gaussians.motion_io import load_motion

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work = tmp_path / "w"
    rows = bench_reconstruct.main(["--device", "cpu", "--preset", "reference", "--steps", "4", "--splats", "400",
                                   "--size", "64", "--no-profile", "--assets", "fox", "--work", str(work),
                                   "--nonrigidity", "3", "--coarse-level"])  # fmt: skip
    row = rows[0]
    assert abs(row["gt_nonrigidity_pct"] - 3.0) < 0.3  # the fox's own is about 5
    assert (work / "gt_fox_nr3" / "ground_truth.npz").is_file()
    assert row["coarse_level"] and row["preset"] == "custom"
    assert "| fox + coarse level @ 3 % non-rigid | custom |" in bench_reconstruct.asset_table(rows)
    motion = load_motion(work / "run_fox" / "motion" / "coarse.safetensors")
    assert motion.field.config.grid_sizes == (COARSE_GRID, *MotionFieldConfig().grid_sizes)  # the reference's two after it
