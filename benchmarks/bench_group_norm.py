"""Benchmark the NHWC GroupNorm + SiLU kernels against PyTorch's NCHW GroupNorm + SiLU, forward and backward.

The shapes are the SD VAE encoder's GroupNorm inputs for one chunk of 16 renders at 256² (what `a3d sds`
differentiates through every step). Each row is one GroupNorm + SiLU forward and backward (input gradient
only, as sds needs): PyTorch's on NCHW activations, `a3d_cli.kernels.group_norm.group_norm_act` on NHWC
ones. `--sweep` also times every combination of the kernels' launch parameters (`ROWS_PER_PROGRAM`,
`TILE_VALUES`, `NUM_WARPS` of `a3d_cli.kernels.group_norm_triton`) and reports the fastest in total.

These are wall times of a loop, so shapes whose GPU work is shorter than the Python launch cost measure the
host, not the GPU; the stage-level figure is `bench_sds.py --encoder-layout nhwc,nchw`.

Usage:
    python benchmarks/bench_group_norm.py --out group_norm.json
    python benchmarks/bench_group_norm.py --sweep --out group_norm_sweep.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = [(16, 128, 256, 256), (16, 256, 128, 128), (16, 512, 64, 64), (16, 512, 32, 32)]
"""[N, C, H, W] of the SD VAE encoder's GroupNorms at 256², 16 renders per chunk (32 groups each)."""


def _time_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1000


def _forward_backward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dy: torch.Tensor, nhwc: bool) -> None:
    from a3d_cli.kernels.group_norm import group_norm_act

    xx = x.detach().requires_grad_()
    y = group_norm_act(xx, 32, w, b, 1e-6, silu=True) if nhwc else F.silu(F.group_norm(xx, 32, w, b, 1e-6))
    torch.autograd.grad(y, xx, dy)


def time_shapes(dtype: torch.dtype, repeats: int) -> list[dict]:
    """One row per shape: PyTorch NCHW and the NHWC kernels, forward + backward, in ms."""
    rows = []
    for shape in SHAPES:
        g = torch.Generator(device="cuda").manual_seed(0)
        x = (torch.randn(shape, generator=g, device="cuda") * 2 + 1).to(dtype)
        dy = torch.randn(shape, generator=g, device="cuda").to(dtype)
        w = torch.randn(shape[1], generator=g, device="cuda").to(dtype)
        b = torch.randn(shape[1], generator=g, device="cuda").to(dtype)
        x_l, dy_l = (t.contiguous(memory_format=torch.channels_last) for t in (x, dy))
        rows.append({
            "shape": list(shape),
            "megabytes": round(x.numel() * x.element_size() / 2**20, 1),
            "pytorch_nchw_ms": round(_time_ms(lambda: _forward_backward(x, w, b, dy, False), repeats), 3),  # noqa: B023
            "triton_nhwc_ms": round(_time_ms(lambda: _forward_backward(x_l, w, b, dy_l, True), repeats), 3),  # noqa: B023
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--sweep", action="store_true", help="also time every combination of the launch parameters")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        ap.error("the kernels run on CUDA only: run this on the GPU machine")
    import a3d_cli.kernels.group_norm_triton as kernels

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    result: dict = {
        "benchmark": "group_norm",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "defaults": {"rows_per_program": kernels.ROWS_PER_PROGRAM, "tile_values": kernels.TILE_VALUES,
                     "num_warps": kernels.NUM_WARPS},
        "rows": time_shapes(dtype, args.repeats),
    }  # fmt: skip
    print("| shape | MiB | PyTorch NCHW ms | NHWC kernels ms |\n|---|---|---|---|")
    for row in result["rows"]:
        print(f"| {row['shape']} | {row['megabytes']} | {row['pytorch_nchw_ms']} | {row['triton_nhwc_ms']} |")
    if args.sweep:
        defaults = (kernels.ROWS_PER_PROGRAM, kernels.TILE_VALUES, kernels.NUM_WARPS)
        sweep = []
        for rows_per_program, tile, warps in itertools.product([128, 256, 512], [4096, 8192], [4, 8]):
            kernels.ROWS_PER_PROGRAM, kernels.TILE_VALUES, kernels.NUM_WARPS = rows_per_program, tile, warps
            ms = [r["triton_nhwc_ms"] for r in time_shapes(dtype, args.repeats)]
            sweep.append({"rows_per_program": rows_per_program, "tile_values": tile, "num_warps": warps,
                          "ms": ms, "total_ms": round(sum(ms), 3)})  # fmt: skip
            print(sweep[-1], flush=True)
        kernels.ROWS_PER_PROGRAM, kernels.TILE_VALUES, kernels.NUM_WARPS = defaults
        result["sweep"] = sweep
        result["fastest"] = min(sweep, key=lambda s: s["total_ms"])
        print("fastest:", result["fastest"])
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
