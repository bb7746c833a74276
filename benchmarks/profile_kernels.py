"""Where the GPU time of our diffusion networks goes: per-kernel-family profile and layout/backend variants.

The stage benchmarks (`bench_orbit.py`, `bench_mvvideo.py`, `bench_sds.py`) say how long a stage takes;
this script says why, so speed work goes where the time is. For one target network at full size with
random weights it times one call under several *variants* and, for the plain eager variant, profiles that
call with `torch.profiler`, sorting every CUDA kernel into a family (convolution, GEMM, attention,
normalization, layout transforms, elementwise, fused Triton, other) and listing the costliest kernels.

Targets (all at the sizes the stages run):
- `orbit-unet`: SV3D_p UNet, one CFG-batched forward (2 × 21 frames × 72² latents), no gradients.
- `mvvdm-unet`: MV-VDM UNet, one CFG-batched eval (2 × 4 views × 16 frames × 32² latents), no gradients.
- `sds-vae`: SD VAE encoder, forward + backward of 60 renders at 256² under the sds stage's activation
  checkpointing (chunks of 16), as one SDS step runs it.
- `sds-step`: one whole `SdsRefiner.step()` (renders, VAE, UNet, reconstruction renders, ARAP, Adam) with the
  full-size MV-VDM and 20k splats, as `bench_sds.py` runs it.

Variants are `+`-joined flags over a freshly built network (so one variant never leaks into the next):
- `eager`: as the stages run it today without `--compile` (the SV3D UNet and the SDS VAE encoder already
  carry the attention shortcuts).
- `plain`: every `ShortcutAttnProcessor` put back to diffusers' `AttnProcessor2_0` (the baseline before
  the shortcuts).
- `cl`: every Conv2d/Conv3d weight and the input in channels-last (NHWC / NDHWC) memory format.
- `cudnn`: PyTorch SDPA with cuDNN attention first in priority, flash / memory-efficient as fallbacks.
- `sc`: `a3d_cli.models.speed.attention.ShortcutAttnProcessor` on every default attention layer (one-token
  cross-attention as a value broadcast, short sequences in the fused kernel of `a3d_cli.kernels.short_attention`
  on CUDA, wide heads as explicit products); the stages' default.
- `sc-math`: the same without the fused kernel (`speed_variants.MathShortAttnProcessor`: the route before it).
- `sc-sdpa`: the same, but short sequences left to SDPA (`speed_variants.SdpaShortAttnProcessor`; isolates the
  one-token and wide-head shortcuts).
- `compile`: `a3d_cli.models.speed.acceleration.accelerate(compile=True)` (regional compile, what `--compile` does).
- `clk`: with `compile`, channels-last kept from block to block (`accelerate(channels_last=True)`).
- `sub`: with `compile`, upsampling + 3×3 convolution as one 2×2 convolution (`accelerate(subpixel_upsampling=True)`).
- `geglu`: every GEGLU as one fused Gluon GEMM on Hopper, compiled or not (`accelerate(fused_geglu=True)`).

Usage (GPU machine):
    python benchmarks/profile_kernels.py --target orbit-unet --variants eager,cl,cudnn,cl+cudnn --out p.json
    python benchmarks/profile_kernels.py --target sds-vae --variants eager,cl,compile+cl
    python benchmarks/profile_kernels.py --target orbit-unet --tiny --device cpu --variants eager,cl  # smoke

Prints a markdown row per variant and the kernel-family table; `--out` receives everything as JSON, rewritten
after every variant so a cut-short run keeps what it finished.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import sync  # noqa: E402
from speed_variants import MathShortAttnProcessor, SdpaShortAttnProcessor  # noqa: E402

from a3d_cli.models.speed.acceleration import accelerate, channels_last_convs  # noqa: E402
from a3d_cli.models.speed.attention import (  # noqa: E402
    ShortcutAttnProcessor,
    replace_attention_processors,
    use_shortcut_attention,
)

TARGETS = ("orbit-unet", "mvvdm-unet", "sds-vae", "sds-step")
FLAGS = ("eager", "plain", "cl", "cudnn", "sc", "sc-math", "sc-sdpa", "compile", "clk", "sub", "geglu")

KERNEL_FAMILIES: tuple[tuple[str, str], ...] = (
    ("triton", r"^triton_"),
    ("attention", r"flash|fmha|attention|attn|sdpa"),
    ("layout", r"nchwToNhwc|nhwcToNchw|transpose|permute"),
    ("conv", r"conv|fprop|dgrad|wgrad|implicit"),
    ("gemm", r"gemm|nvjet|cutlass|cublas|xmma|sm90_|matmul"),
    ("norm", r"group_norm|layer_norm|groupnorm|layernorm|welford|norm"),
    ("copy", r"copy|cat|index|gather|scatter|fill"),
    ("elementwise", r"elementwise|vectorized|reduce|silu|gelu|add|mul"),
)
"""(family, regex) in matching order: the first family whose pattern is found in a kernel name wins."""


def kernel_family(name: str) -> str:
    """The family of a CUDA kernel name (see KERNEL_FAMILIES); "other" when none matches."""
    for family, pattern in KERNEL_FAMILIES:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return family
    return "other"


def input_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A 4-D image batch in NHWC layout (other ranks unchanged: the UNets reshape 5-D video inputs first)."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def sdpa_priority(flags: set[str]) -> contextlib.AbstractContextManager:
    """cuDNN attention first when asked, flash and memory-efficient behind it; otherwise PyTorch's choice."""
    if "cudnn" not in flags:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return sdpa_kernel(order, set_priority=True)


def build_target(
    target: str, device: torch.device, dtype: torch.dtype, tiny: bool
) -> tuple[list[nn.Module], Callable[[], None]]:
    """(networks the variants act on, one call) for a target; the call runs what the stage runs once."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if target == "orbit-unet":
        from a3d_cli.models.sv3d.config import SV3DConfig
        from a3d_cli.models.sv3d.loading import build_models

        models = build_models(SV3DConfig.tiny() if tiny else SV3DConfig.full(), "sv3d_p", device=device)
        unet = models.unet.to(device, dtype)  # AlphaBlender's mix factors are built on the CPU whatever the device
        cfg = models.config
        f, s = cfg.num_frames, cfg.latent_size
        x = torch.randn(2, f, 8, s, s, generator=g).to(device, dtype)
        ctx = torch.randn(2, 1, cfg.unet.cross_attention_dim, generator=g).to(device, dtype)
        vec = torch.randn(2, f, unet.add_embedding.linear_1.in_features, generator=g).to(device, dtype)
        t = torch.tensor(0.5, device=device)

        @torch.no_grad()
        def call() -> torch.Tensor:
            return unet(x, t, ctx, vec, return_dict=False)[0]

        return [unet], call
    if target == "mvvdm-unet":
        from bench_mvvideo import unet_args
        from random_mvvdm import build_components

        comp = build_components(str(device), dtype, tiny)
        args = unet_args(comp, str(device))
        unet = comp.unet

        @torch.no_grad()
        def call() -> torch.Tensor:
            return unet(*args)

        return [unet], call
    if target == "sds-vae":
        from diffusers import AutoencoderKL

        from a3d_cli.gaussians.motion_refine import encode_checkpointed

        widths = (32, 32) if tiny else (128, 256, 512, 512)
        with torch.device(device):
            vae = AutoencoderKL(  # the SD1.5 VAE layout (tiny: two narrow levels)
                in_channels=3,
                out_channels=3,
                latent_channels=4,
                down_block_types=("DownEncoderBlock2D",) * len(widths),
                up_block_types=("UpDecoderBlock2D",) * len(widths),
                block_out_channels=widths,
                layers_per_block=2,
                norm_num_groups=32,
            )
        vae = vae.to(dtype).requires_grad_(False)
        n, size = (4, 32) if tiny else (60, 256)
        images = torch.rand(n, 3, size, size, generator=g).to(device)
        down = 2 ** (len(widths) - 1)
        post = torch.randn(n, 4, size // down, size // down, generator=g).to(device)

        class _Encoder:  # the SdsDenoiser.encode contract, on this VAE
            def encode(self, im: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
                x = input_channels_last(im.to(dtype) * 2 - 1)
                dist = vae.encode(x).latent_dist
                z = dist.mean if noise is None else dist.mean + dist.std * noise.to(dist.mean)
                return (z * 0.18215).float()

        enc = _Encoder()

        def call() -> None:
            x = images.clone().requires_grad_(True)
            encode_checkpointed(enc, x, post, 16).square().mean().backward()

        return [vae], call
    if target == "sds-step":
        import dataclasses

        from bench_sds import random_splats
        from random_mvvdm import build_denoiser

        from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig
        from a3d_cli.gaussians.motion_refine import SdsRefiner
        from a3d_cli.stages.sds import SdsOptions

        den = build_denoiser(str(device), dtype, tiny)
        static = random_splats(500 if tiny else 20_000, str(device))
        field = MotionField(
            dataclasses.replace(MotionFieldConfig(), use_delta_scale=True), generator=torch.Generator().manual_seed(0)
        ).to(device)
        size = 256  # the tiny VAE downsamples by 32 and its UNet wants latents in multiples of 8
        opts = SdsOptions(prompt="a dog wags its tail", render_size=size, target_size=size if tiny else 1024)
        refiner = SdsRefiner(static, field, den, opts, seed=0)

        def call() -> None:
            refiner.step()

        return den.hot_networks(), call
    raise ValueError(f"unknown target {target!r}")


def time_call(call: Callable[[], None], device: torch.device, warmup: int, reps: int) -> dict[str, float]:
    first = []
    for _ in range(max(warmup, 1)):
        t0 = time.perf_counter()
        call()
        sync(device)
        first.append(time.perf_counter() - t0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        sync(device)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    out = {
        "seconds_median": round(med, 5),
        "seconds_min": round(min(times), 5),
        "first_call_seconds": round(first[0], 3),
    }
    if device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return out


def profile_call(call: Callable[[], None], device: torch.device, top: int, stack_op: str = "") -> dict:
    """Kernel time by family and the `top` costliest kernels of one call (CPU ops when not on CUDA).

    With `stack_op` (e.g. "aten::copy_"), also the Python call sites of that op, by device time.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    t0 = time.perf_counter()
    with profile(
        activities=activities, record_shapes=True, with_stack=bool(stack_op), with_modules=bool(stack_op)
    ) as prof:
        call()
        sync(device)
    wall = time.perf_counter() - t0
    per_kernel: dict[str, float] = {}
    want = "cuda" if device.type == "cuda" else "cpu"
    for e in prof.events():
        if want == "cuda":
            if str(getattr(e, "device_type", "")).lower().find("cuda") < 0:
                continue
            if e.name.startswith("## "):  # a user annotation (compiled-graph call) spanning kernels: not one
                continue
            us = float(e.time_range.elapsed_us())
        else:
            if e.name.startswith("aten::") is False:
                continue
            us = float(getattr(e, "self_cpu_time_total", 0.0))
        per_kernel[e.name] = per_kernel.get(e.name, 0.0) + us
    total_us = sum(per_kernel.values())
    families: dict[str, float] = {}
    for name, us in per_kernel.items():
        fam = kernel_family(name)
        families[fam] = families.get(fam, 0.0) + us
    ranked = sorted(per_kernel.items(), key=lambda kv: -kv[1])[:top]
    ops = []  # aten ops (with input shapes) by the device time of the kernels they launched themselves
    for a in prof.key_averages(group_by_input_shape=True):
        us = float(getattr(a, "self_device_time_total", 0.0) or getattr(a, "self_cuda_time_total", 0.0) or 0.0)
        if want == "cpu":
            us = float(a.self_cpu_time_total)
        if a.key.startswith("aten::") and us > 0:
            ops.append((a.key, str(a.input_shapes)[:120], a.count, us))
    ops.sort(key=lambda o: -o[3])
    sites = []
    if stack_op:  # group the op's calls by their chain of parent events (aten ops, then Python frames)
        by_chain: dict[tuple[str, ...], list[float]] = {}
        for e in prof.events():
            if e.name != stack_op:
                continue
            chain, parent = [], e.cpu_parent
            while parent is not None and len(chain) < 8:
                chain.append(parent.name[:90])
                parent = parent.cpu_parent
            us = float(getattr(e, "self_device_time_total", 0.0) or 0.0) if want == "cuda" else e.self_cpu_time_total
            entry = by_chain.setdefault(tuple(chain), [0.0, 0.0])
            entry[0] += us
            entry[1] += 1
        sites = [{"seconds": round(v[0] / 1e6, 5), "calls": int(v[1]), "stack": list(k)} for k, v in by_chain.items()]
        sites.sort(key=lambda x: -x["seconds"])
    return {
        "wall_seconds_under_profiler": round(wall, 4),
        "kernel_seconds": round(total_us / 1e6, 4),
        "families_seconds": {k: round(v / 1e6, 4) for k, v in sorted(families.items(), key=lambda kv: -kv[1])},
        "stack_sites": sites[:top],
        "top_ops": [{"op": o, "shapes": sh, "calls": c, "seconds": round(us / 1e6, 5)} for o, sh, c, us in ops[:top]],
        "top_kernels": [
            {"name": n[:160], "family": kernel_family(n), "seconds": round(us / 1e6, 5)} for n, us in ranked
        ],
    }


def run_variant(args: argparse.Namespace, variant: str, device: torch.device, dtype: torch.dtype) -> dict:
    flags = set(variant.split("+"))
    unknown = flags - set(FLAGS)
    if unknown:
        raise SystemExit(f"unknown variant flag(s) {sorted(unknown)}; choose from {FLAGS}")
    row: dict = {"target": args.target, "variant": variant}
    try:
        nets, call = build_target(args.target, device, dtype, args.tiny)
        if "cl" in flags:
            row["channels_last_convs"] = sum(channels_last_convs(n).count for n in nets)
        if "plain" in flags:
            from diffusers.models.attention_processor import AttnProcessor2_0

            row["plain_attention_layers"] = sum(
                replace_attention_processors(n, (ShortcutAttnProcessor,), AttnProcessor2_0()).count for n in nets
            )
        for flag, processor in (
            ("sc", ShortcutAttnProcessor),
            ("sc-math", MathShortAttnProcessor),
            ("sc-sdpa", SdpaShortAttnProcessor),
        ):
            if flag in flags:
                proc = processor()
                row["shortcut_attention_layers"] = sum(  # shortcut processors of another kind, then default ones
                    replace_attention_processors(n, (ShortcutAttnProcessor,), proc).count
                    + use_shortcut_attention(n, proc).count
                    for n in nets
                )
        accel = accelerate(
            device,
            nets,
            compile="compile" in flags,
            channels_last="clk" in flags,
            subpixel_upsampling="sub" in flags,
            fused_geglu="geglu" in flags,
        )
        row.update(accel.as_metrics())
        with sdpa_priority(flags):
            row.update(time_call(call, device, args.warmup, args.reps))
            if variant in args.profile.split(","):
                row["profile"] = profile_call(call, device, args.top, args.stack_op)
        del nets, call
    except Exception as exc:  # one failing variant must not lose the others
        row["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def print_row(row: dict) -> None:
    if "error" in row:
        print(f"| {row['target']} | {row['variant']} | error: {row['error']} |", flush=True)
        return
    print(
        f"| {row['target']} | {row['variant']} | {row['seconds_median']:.4f} s | first {row['first_call_seconds']} s"
        f" | {row.get('peak_gib', '–')} GiB |",
        flush=True,
    )
    prof = row.get("profile")
    if prof:
        print(f"  kernels {prof['kernel_seconds']} s of {prof['wall_seconds_under_profiler']} s wall (profiled)")
        for fam, s in prof["families_seconds"].items():
            print(f"    {fam:12s} {s:8.4f} s  {100 * s / max(prof['kernel_seconds'], 1e-9):5.1f} %")
        for k in prof["top_kernels"]:
            print(f"    {k['seconds']:8.5f} s  [{k['family']}] {k['name'][:110]}")
        for site in prof["stack_sites"]:
            print(f"    {site['seconds']:8.5f} s  {site['calls']:4d}x at " + " <- ".join(site["stack"]))
        for o in prof["top_ops"]:
            print(f"    {o['seconds']:8.5f} s  {o['calls']:4d}x {o['op']} {o['shapes']}")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=TARGETS, required=True)
    p.add_argument("--variants", default="eager,cl,cudnn,cl+cudnn", help="comma-separated, flags joined by '+'")
    p.add_argument("--profile", default="eager", help="comma-separated variants to profile ('' = none)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--top", type=int, default=25, help="kernels listed per profile")
    p.add_argument("--stack-op", default="", help="also list the Python call sites of this op (e.g. aten::copy_)")
    p.add_argument("--tiny", action="store_true", help="tiny networks: a CPU smoke test of this script")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    meta = {
        "date": dt.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": args.dtype,
        "tiny": args.tiny,
    }
    rows: list[dict] = []
    for variant in [v for v in args.variants.split(",") if v]:
        row = run_variant(args, variant, device, dtype)
        rows.append(row)
        print_row(row)
        if args.out:
            args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
