"""Smoke test of benchmarks/bench_skinning.py (the tiny mode): it runs and reports sane numbers."""

from __future__ import annotations

import importlib.util
import json

from helpers import REPO

ROOT = REPO


def test_tiny_benchmark_runs_and_writes_json(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_skinning", ROOT / "benchmarks" / "bench_skinning.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "skin.json"
    bench.main(["--tiny", "--threads", "1", "--out", str(out)])
    (result,) = json.loads(out.read_text())["results"]
    errors = [s["err_mean_pct"] for s in result["skins"]]
    assert errors[1] <= errors[0] and all(0 <= e < result["motion_mean_pct"] for e in errors)
    assert all(s["skin_glb_bytes"] < result["morph_glb_bytes"] for s in result["skins"])
    assert result["seam"]["blend"]["position_jump_mean_pct"] == 0.0 < result["seam"]["off"]["position_jump_mean_pct"]
