"""benchmarks/profile_stage_busy.py: the trace arithmetic behind the busy fraction and host time per step."""

from __future__ import annotations

import json
import os
import sys

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import profile_stage_busy as busy  # noqa: E402


def test_covered_counts_overlaps_once():
    assert busy.covered([]) == 0
    assert busy.covered([(0, 2), (1, 3), (5, 6), (5.5, 5.8)]) == pytest.approx(4.0)


def _x(cat: str, name: str, ts: float, dur: float, correlation: int | None = None) -> dict:
    event = {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}
    return event if correlation is None else event | {"args": {"correlation": correlation}}


def test_trace_analysis_of_a_two_step_window():
    trace = {
        "traceEvents": [
            _x("kernel", "k1", 0, 300, 7), _x("kernel", "k2", 200, 300, 8),  # overlapping: 500 µs busy
            _x("kernel", "k1", 700, 100, 9),  # launched by the graph launch (correlation 9)
            _x("gpu_memcpy", "Memcpy HtoD", 1000, 100),
            _x("cuda_runtime", "cudaLaunchKernel", 0, 5, 7), _x("cuda_runtime", "cudaLaunchKernel", 10, 5, 8),
            _x("cuda_runtime", "cudaGraphLaunch", 20, 5, 9),
            _x("cuda_runtime", "cudaStreamSynchronize", 600, 400),  # the host waited 0.4 ms
            _x("cpu_op", "aten::add", 0, 50), {"ph": "i", "name": "marker"},
        ]
    }  # fmt: skip
    r = busy.analyse_trace(trace, wall_s=2e-3, steps=2)
    assert r["gpu_busy_pct"] == pytest.approx(35.0)  # 0.7 ms of 2 ms
    assert r["gpu_ms_per_step"] == pytest.approx(0.35)
    assert r["host_ms_per_step"] == pytest.approx(0.8)  # (2 − 0.4) / 2
    assert r["syncs_per_step"] == 0.5 and r["kernel_launches_per_step"] == 1.0 and r["graph_launches_per_step"] == 0.5
    assert r["device_ops_per_step"] == 2.0
    assert r["top_kernels"][:2] == [["k1", 0.2, 1.0], ["k2", 0.15, 0.5]]  # 400 µs in 2 calls, then 300 µs
    assert sorted(r["eager_kernels"]) == [["k1", 0.5], ["k2", 0.5]]  # the host's own launches, not the graph's


def test_cpu_model_schedule_and_interpolation():
    info = "processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\nprocessor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
    assert busy.cpu_model(info) == "AMD EPYC 9654 96-Core Processor (2 logical cores)"
    assert busy.cpu_model("")  # falls back to platform, never empty
    frames = busy.schedule_frames(800, 50)
    assert frames[0] == 1 and frames[49] == 1 and frames[50] == 2 and frames[699] == 14 and frames[700:] == [15] * 100
    pts = {1: 1.0, 5: 5.0, 15: 10.0}
    assert busy.interpolate(pts, 3) == 3.0 and busy.interpolate(pts, 10) == 7.5
    assert busy.interpolate(pts, 0) == 1.0 and busy.interpolate(pts, 20) == 10.0


def test_table_has_a_row_per_window_and_names_failures():
    ok = {"tree": "after", "stage": "reconstruct", "cpu": "X", "total_seconds": 5.0, "loop_seconds": 4.0,
          "seconds_per_step": 0.005, "quality": {"heldout_psnr": 36.8, "vertex_error_pct": 1.3}, "estimated_busy_pct": 90.0,
          "windows": [busy.analyse_trace({"traceEvents": []}, 1e-3, 1) | {"label": f"F={f}"} for f in (1, 15)]}  # fmt: skip
    bad = {"tree": "before", "stage": "mvvideo", "cpu": "X", "error": "ImportError: nope"}
    table = busy.markdown([ok, bad]).splitlines()
    assert len(table) == 2 + 2 + 1 + 1  # header, rule, two windows, the estimate, the failure
    assert "PSNR 36.8 dB" in table[2] and "F=15" in table[3] and "whole fit (estimated) | 90.0" in table[4]
    assert "failed: ImportError: nope" in table[5]


def test_phase_split_accounts_for_the_whole_total():
    row = {"tree": "after", "stage": "reconstruct", "variant": "frames exact", "total_seconds": 8.0, "loop_seconds": 5.0,
           "cuda_graph_seconds": 0.8, "cuda_graph_recordings": 15,
           "seconds_per_phase": {"inputs": 0.4, "masks": 0.2, "fit": 5.5, "scoring_and_writing": 0.6}}  # fmt: skip
    split = busy.phase_split(row)
    assert split == {"inputs": 0.4, "masks": 0.2, "fit setup": 0.5, "graph recording": 0.8, "fit steps": 4.2,
                     "scoring and writing": 0.6, "other": 1.3}  # fmt: skip
    assert sum(split.values()) == pytest.approx(row["total_seconds"])
    assert busy.phase_split({"total_seconds": 1.0, "loop_seconds": 0.5}) is None  # a tree without phases
    table = busy.phase_markdown([row, {"tree": "after", "stage": "mvvideo", "total_seconds": 16.0}]).splitlines()
    assert len(table) == 3 and table[2].startswith("| after [frames exact] | 8.0 | 0.4 |") and table[2].endswith("| 15 |")
    assert busy.phase_markdown([]) == ""
    failed = row | {"variant": "", "cuda_graph_recordings": 3, "cuda_graph_failure": "recording 4 (padded, 15 frames): X"}
    lines = busy.phase_markdown([failed]).splitlines()
    assert len(lines) == 5 and lines[4] == "after: a recording failed, later steps ran eagerly: recording 4 (padded, 15 frames): X"


def test_variant_flags_name_their_rows():
    assert busy.graph_frame_counts("default") is None and busy.graph_frame_counts("exact") == ()
    assert busy.graph_frame_counts("4,8,15") == (4, 8, 15)
    assert busy.variant_name("reconstruct", "default") == "" and busy.variant_name("mvvideo", "on") == ""
    assert busy.variant_name("reconstruct", "exact") == "frames exact" and busy.variant_name("mvvideo", "off") == "geglu off"
    assert busy.row_label({"tree": "after", "variant": "geglu off"}) == "after [geglu off]"
    with pytest.raises(SystemExit):
        busy.main(["--graph-frames", "4,99", "--device", "cpu"])


def test_tiny_run_profiles_the_reconstruct_stage_end_to_end(tmp_path, monkeypatch):
    """The script against this tree's stage and run layout (it broke silently when a file name moved)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "busy.json"
    busy.main(["--tiny", "--device", "cpu", "--stages", "reconstruct", "--graphs", "off", "--work", str(tmp_path / "w"),
               "--out", str(out)])  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and "error" not in rows[0], rows
    row = rows[0]
    assert row["stage"] == "reconstruct" and row["graphs"] == "off" and row["total_seconds"] > 0
    assert row["quality"]["heldout_psnr"] > 10 and [w["label"] for w in row["windows"]] == ["F=1", "F=2"]
    assert sum(row["phase_split"].values()) == pytest.approx(row["total_seconds"], abs=0.02)  # rounded to 0.01 s


def test_an_older_tree_gets_the_modules_it_lacks(tmp_path, monkeypatch):
    """`_backfill_moved_modules` maps moved names onto an older tree's modules and loads missing leaves."""
    old = tmp_path / "pkg"
    (old / "models").mkdir(parents=True)
    for init in (old / "__init__.py", old / "models" / "__init__.py"):
        init.write_text("")
    (old / "models" / "acceleration.py").write_text("def accelerate():\n    return 'old'\n")
    monkeypatch.setattr(busy, "_MOVED_MODULES", {"pkg.models.speed": "pkg.models", "pkg.models.speed.acceleration": "pkg.models.acceleration"})
    monkeypatch.setattr(busy, "_MISSING_NAMES", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
        monkeypatch.delitem(sys.modules, name)
    busy._backfill_moved_modules()
    from pkg.models.speed.acceleration import accelerate

    assert accelerate() == "old"
    for name in [m for m in list(sys.modules) if m == "pkg" or m.startswith("pkg.")]:
        del sys.modules[name]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_shared_core_pins_busy_loops_to_one_core_and_stops_them():
    with busy.shared_core(1) as (core, spinners):
        assert len(spinners) == 1 and spinners[0].poll() is None
        assert os.sched_getaffinity(spinners[0].pid) == {core}
        rc, _seconds, tail = busy._run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"], dict(os.environ), "pin", core)
        assert rc == 0 and f"[{core}]" in tail
    assert spinners[0].poll() is not None
    with busy.shared_core(0) as (_core, none):
        assert none == []
