"""benchmarks/bench_precision.py: its measures, and CPU smoke runs on the tiny SV3D and the tiny SDS guidance."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from helpers import REPO

from a3d_cli.stages.sds import DEFAULT_CUDA_DTYPE

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_precision  # noqa: E402


def test_relative_l2_and_nonfinite_results() -> None:
    ref = torch.tensor([3.0, 4.0])
    assert bench_precision.rel_l2(torch.tensor([3.0, 4.5]), ref) == 0.1
    assert bench_precision.rel_l2(ref, ref) == 0.0
    assert bench_precision.rel_l2(torch.tensor([float("nan"), 4.0]), ref) != bench_precision.rel_l2(ref, ref)


def test_activation_probe_finds_the_largest_layer_output_and_nonfinite_layers() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[100.0, 0.0], [0.0, 1.0]]))
        net[0].bias.zero_()
    x = torch.tensor([[2.0, 1.0]])
    probe = bench_precision.activation_probe(net, lambda: net(x))
    assert probe["max_abs_activation"] == 200.0 and probe["max_abs_layer"] in ("0", "1")
    assert probe["layers_with_nonfinite_output"] == 0
    probe = bench_precision.activation_probe(net, lambda: net(torch.tensor([[float("inf"), 1.0]])))
    assert probe["layers_with_nonfinite_output"] >= 1


def test_tiny_smoke_run_writes_json_and_every_row_shares_the_weights(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    bench_precision.main(["--tiny", "--device", "cpu", "--models", "sv3d", "--dtypes", "fp32",
                          "--sv3d-steps", "1", "--reps", "0", "--out", str(out)])
    rows = json.loads(out.read_text())["results"]["sv3d (orbit)"]
    assert set(rows) == {"fp32-strict", "fp32"}
    # on a CPU the stage settings change nothing, so the fp32 row is the reference itself, bit for bit
    assert rows["fp32"]["forward_rel_l2"] == 0.0 and rows["fp32"]["sampler_rel_l2"] == 0.0
    assert rows["fp32"]["sampler_nonfinite"] == 0 and rows["fp32-strict"]["max_abs_activation"] > 0


def test_tiny_sds_rows_measure_the_guidance_forward_and_the_gradient_against_strict_fp32(tmp_path: Path) -> None:
    out = tmp_path / "sds.json"
    bench_precision.main(["--tiny", "--device", "cpu", "--models", "sds", "--dtypes", "fp32", "bf16",
                          "--reps", "0", "--out", str(out)])
    rows = json.loads(out.read_text())["results"]["mv-vdm guidance (sds)"]
    assert set(rows) == {"fp32-strict", "fp32", "bf16"}
    ref, bf16 = rows["fp32-strict"], rows["bf16"]
    assert ref["forward_rel_l2"] == 0.0 and ref["sampler_rel_l2"] == 0.0
    assert ref["grad_zero_where_fp32_nonzero"] == 0 and ref["grad_inf_where_fp32_finite"] == 0
    for row in rows.values():
        numbers = [row[k] for k in ("forward_rel_l2", "sampler_rel_l2", "max_abs_activation", "grad_max_abs",
                                    "forward_seconds", "sampler_seconds")]
        assert all(math.isfinite(x) for x in numbers), row
        assert row["forward_nonfinite"] == 0 and row["sampler_nonfinite"] == 0
        assert row["grad_max_abs"] > 0 and row["max_abs_activation"] > 0
    # bf16 really ran in bf16 (its rounding shows), and the table names the stage's default (fp16 is the reference's)
    assert 0 < bf16["forward_rel_l2"] < 1 and 0 < bf16["sampler_rel_l2"] < 1
    assert {r for r, v in rows.items() if "(default)" in v["label"]} == {DEFAULT_CUDA_DTYPE} & set(rows)
