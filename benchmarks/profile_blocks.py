"""Single compiled blocks of the SV3D UNet, timed and profiled kernel by kernel (with call counts).

`profile_kernels.py` says which kernel families a whole UNet forward spends its time in; this script goes
one level down, to find kernels that run far below the memory bandwidth or the tensor-core rate. It runs one
full-size CFG-batched UNet forward (random weights) to capture the real inputs of the chosen blocks, then
compiles each block alone under several *specs* and reports, per spec, the time per call and every CUDA
kernel with its call count. `--code-dir` also writes inductor's generated code per spec, to read what a
slow kernel does.

Specs are a block key (`res`, `attn`, `up`) joined by `+` with flags over the orbit stage's `--compile`
path (`keep_channels_last`, which is always applied unless `nocl`):
- `nocl`: no channels-last hooks and no per-channel GroupNorm (the compiled path before them).
- `nogn`: channels-last, but every GroupNorm back to `nn.GroupNorm` (inductor's own lowering).
- `gn5`: channels-last, per-channel GroupNorm for the 5-D (temporal) inputs only.
- `sub`: upsampling + 3×3 convolution as one 2×2 convolution (`a3d_cli.models.speed.upsampling`).

Usage (GPU machine; docs/PERF.md, orbit, "Fourth pass"):
    python benchmarks/profile_blocks.py --specs res+nogn,res,res+gn5,attn+nogn,attn,up,up+sub
    python benchmarks/profile_blocks.py --tiny --device cpu --backend eager --specs res,attn,up+sub  # smoke
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import sync  # noqa: E402

from a3d_cli.models.speed.acceleration import configure_cuda, keep_channels_last  # noqa: E402
from a3d_cli.models.speed.group_norm import ChannelsLastGroupNorm  # noqa: E402
from a3d_cli.models.speed.upsampling import use_subpixel_upsampling  # noqa: E402

BLOCKS_FULL = {"res": "down_blocks.0.resnets.0", "attn": "down_blocks.0.attentions.0", "up": "up_blocks.1.upsamplers.0"}
"""The 72² resnet and transformer, and the upsampler whose convolution runs at 36² × 1280 channels."""
BLOCKS_TINY = {"res": "down_blocks.0.resnets.0", "attn": "down_blocks.0.attentions.0", "up": "up_blocks.0.upsamplers.0"}
FLAGS = ("nocl", "nogn", "gn5", "sub")


class TemporalOnlyGroupNorm(ChannelsLastGroupNorm):
    """Per-channel GroupNorm for 5-D inputs only; 4-D ones through `F.group_norm` (the `gn5` flag)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.GroupNorm's argument name
        if input.ndim == 5:
            return super().forward(input)
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)


def capture_inputs(unet: nn.Module, names: dict[str, str], call) -> dict[str, tuple[tuple, dict]]:  # noqa: ANN001
    """(args, kwargs) each named block receives in one UNet call; 4-D tensors made channels-last (as the
    compiled stage hands them on)."""
    modules = dict(unet.named_modules())
    captured: dict[str, tuple[tuple, dict]] = {}

    def keep(key: str):  # noqa: ANN202
        def hook(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            if key not in captured:
                cl = lambda v: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.ndim == 4 else v  # noqa: E731
                captured[key] = (tuple(cl(a) for a in args), {k: cl(v) for k, v in kwargs.items()})

        return hook

    handles = [modules[name].register_forward_pre_hook(keep(key), with_kwargs=True) for key, name in names.items()]
    try:
        call()
    finally:
        for h in handles:
            h.remove()
    return captured


def prepare_block(block: nn.Module, flags: set[str]) -> nn.Module:
    """A copy of `block` set up as the spec's flags say (see the module docstring)."""
    block = copy.deepcopy(block)
    if "sub" in flags:
        use_subpixel_upsampling(block)
    if "nocl" not in flags:
        keep_channels_last(block)
    for m in block.modules():
        if type(m) is ChannelsLastGroupNorm and "nogn" in flags:
            m.__class__ = nn.GroupNorm
        elif isinstance(m, nn.GroupNorm) and "gn5" in flags:
            m.__class__ = TemporalOnlyGroupNorm
    return block


def kernel_table(call, device: torch.device) -> list[tuple[float, int, str]]:  # noqa: ANN001
    """(device µs, calls, kernel name) of one call, costliest first (CPU ops' self time off CUDA)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        call()
        sync(device)
    rows = []
    for e in prof.key_averages():
        us = float(e.device_time_total if device.type == "cuda" else e.self_cpu_time_total)
        if us > 0 and not e.key.startswith("## "):  # skip compiled-graph annotations that span kernels
            rows.append((us, int(e.count), e.key))
    return sorted(rows, reverse=True)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--specs", default="res+nogn,res,attn+nogn,attn,up,up+sub")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backend", default="inductor", help="torch.compile backend ('eager': a trace-only smoke test)")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--top", type=int, default=20, help="kernels listed per spec")
    p.add_argument("--code-dir", type=Path, default=None, help="write inductor's generated code here, per spec")
    p.add_argument("--tiny", action="store_true", help="tiny networks: a CPU smoke test of this script")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        configure_cuda()

    from profile_kernels import build_target

    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    (unet,), unet_call = build_target("orbit-unet", device, dtype, args.tiny)
    names = BLOCKS_TINY if args.tiny else BLOCKS_FULL
    inputs = capture_inputs(unet, names, unet_call)
    blocks = dict(unet.named_modules())
    results = []
    for spec in [s for s in args.specs.split(",") if s]:
        key, *flags = spec.split("+")
        if key not in names or set(flags) - set(FLAGS):
            raise SystemExit(f"bad spec {spec!r}: blocks {sorted(names)}, flags {FLAGS}")
        block = prepare_block(blocks[names[key]], set(flags))
        block_args, block_kwargs = inputs[key]
        compiled = torch.compile(block, backend=args.backend, dynamic=False)

        def call(compiled=compiled, block_args=block_args, block_kwargs=block_kwargs) -> None:  # noqa: ANN001
            with torch.no_grad():
                compiled(*block_args, **block_kwargs)

        t0 = time.perf_counter()
        if args.code_dir is not None and args.backend == "inductor":
            from torch._inductor.utils import run_and_get_code

            _, codes = run_and_get_code(call)
            args.code_dir.mkdir(parents=True, exist_ok=True)
            (args.code_dir / f"{spec.replace('+', '_')}.py").write_text("\n\n# ======\n\n".join(codes))
        else:
            call()
        sync(device)
        compile_s = time.perf_counter() - t0
        call()  # warm-up
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            call()
            sync(device)
            times.append(time.perf_counter() - t0)
        rows = kernel_table(call, device)
        row = {"spec": spec, "ms_per_call": 1e3 * statistics.median(times), "compile_s": compile_s}
        row["kernel_ms"] = sum(r[0] for r in rows) / 1e3
        results.append(row)
        print(f"{spec}: {row['ms_per_call']:.3f} ms per call, kernels {row['kernel_ms']:.3f} ms, first call {compile_s:.1f} s")
        for us, count, name in rows[: args.top]:
            print(f"  {us / 1e3:8.3f} ms {count:3d}x {name[:140]}")
        torch._dynamo.reset()
    return results


if __name__ == "__main__":
    main()
