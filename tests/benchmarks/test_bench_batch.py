"""benchmarks/bench_batch.py: one side per invocation, the two combined, the cache state, the preview stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_batch as bench  # noqa: E402

from a3d_cli.io.video import write_mp4  # noqa: E402

SCRIPT = REPO / "benchmarks" / "bench_batch.py"


def _record(worker: int, finished: str, stages: dict[str, float]) -> dict:
    """One `results.jsonl` line as `a3d batch` writes it (only the fields the benchmark reads)."""
    return {
        "worker": worker,
        "finished": finished,
        "seconds": sum(stages.values()) + 0.5,
        "stages": {k: {"seconds": v, "skipped": False} for k, v in stages.items()},
        "peak_memory_bytes": 2**30,
        "models_built": {"mvvdm": 1} if finished.endswith("1") else {},
        "status": "done",
    }


def _one_side(side: str, cache: str, device: str = "NVIDIA H200") -> dict:
    """A one-side result as `--side SIDE` writes it, built by the script's own summaries."""
    result = {
        "benchmark": "a3d batch vs separate a3d animate processes",
        "device": device,
        "gpus": 1,
        "torch": "2.11.0",
        "compile": True,
        "job_options": {"tiny_model": True, "sds_steps": 20, "video": f"/tmp/{side}/gt/video"},
        "side": side,
    }
    start = {"inductor_cache": {"state": cache}, "gsplat_warmup_s": 100.0, "date": "2026-12-05T18:00:00+00:00"}
    if side == "batch":
        records = [_record(0, "t1", {"mvvideo": 120.0, "sds": 140.0}), _record(0, "t2", {"mvvideo": 5.0, "sds": 10.0})]
        raw = {"jobs": 2, "wall_s": 300.0, "records": records}
        result["batch"] = {**bench.summarize_batch(raw, gpus=1, cuda=True), **start}
    else:
        raw = {"jobs": 1, "wall_s": 290.0, "process_wall_s": [289.0], "stages_s": [{"mvvideo": 125.0, "sds": 145.0}]}
        result["separate"] = {**bench.summarize_separate(raw), **start}
    return result


def _combine_cli(tmp_path: Path, first: dict, second: dict) -> subprocess.CompletedProcess:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(first))
    b.write_text(json.dumps(second))
    cmd = [sys.executable, str(SCRIPT), "--combine", str(a), str(b), "--out", str(tmp_path / "c.json")]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_combine_compares_the_two_sides_and_says_which_cache_each_saw(tmp_path):
    batch, separate = _one_side("batch", "cold"), _one_side("separate", "warm")
    proc = _combine_cli(tmp_path, batch, separate)
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "c.json").read_text())
    assert out["side"] == "combined"
    assert out["batch"] == batch["batch"] and out["separate"] == separate["separate"]
    per_asset_b, per_asset_s = 300.0 / 2, 290.0 / 1
    assert out["batch_over_separate"] == pytest.approx(per_asset_b / per_asset_s, abs=1e-3)
    assert out["inductor_cache_at_start"] == {"batch": "cold", "separate": "warm"}
    assert "separate" in out["cache_note"]
    assert out["batch"]["gsplat_warmup_s"] == 100.0  # recorded per side, not in its figures
    assert out["batch"]["first_job_extra_s"]["mvvideo"] == pytest.approx(115.0)
    assert "inductor cache at start" in proc.stdout


def test_combine_with_the_same_cache_state_has_no_note():
    out = bench.combine(_one_side("batch", "cold"), _one_side("separate", "cold"))
    assert out["inductor_cache_at_start"] == {"batch": "cold", "separate": "cold"}
    assert "cache_note" not in out


def test_combine_refuses_sides_from_different_devices_or_a_missing_side(tmp_path):
    proc = _combine_cli(tmp_path, _one_side("batch", "cold"), _one_side("separate", "cold", device="NVIDIA H100"))
    assert proc.returncode == 2 and "differ in device" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "c.json").exists()
    with pytest.raises(ValueError, match="no batch side"):
        bench.combine(_one_side("separate", "cold"), _one_side("separate", "cold"))


def test_inductor_cache_state_is_cold_until_a_file_is_in_it(tmp_path, monkeypatch):
    cache = tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))
    missing = bench.inductor_cache_state()
    assert (missing["existed"], missing["state"], missing["dir"]) == (False, "cold", str(cache))
    (cache / "fxgraph").mkdir(parents=True)
    empty = bench.inductor_cache_state()
    assert (empty["existed"], empty["non_empty"], empty["state"]) == (True, False, "cold")
    (cache / "fxgraph" / "entry").write_bytes(b"x")
    assert bench.inductor_cache_state()["state"] == "warm"


def test_the_preview_stand_in_returns_what_write_mp4_returns(tmp_path):
    frames = torch.rand(3, 15, 21, 3)  # odd sizes: write_mp4 pads them to even
    stand_in = bench.empty_mp4(tmp_path / "empty.mp4", frames, fps=12.0)
    assert stand_in == write_mp4(tmp_path / "real.mp4", frames, fps=12.0)
    assert (tmp_path / "empty.mp4").stat().st_size == 0
