"""Benchmark `a3d sds` (4D-SDS refinement) with full-size random-weight networks.

Builds MV-VDM at the released size with random weights (UNet, SD VAE, CLIP ViT-L text encoder, CLIP ViT-H
image encoder), a random static splat cloud and a full-size motion field, then times the SDS refiner's steps
exactly as the stage runs them (random 4 views × 16 frames at 256², VAE encode with gradients under
checkpointing, one CFG-batched UNet call, reconstruction renders of 4 views × 15 frames, ARAP, Adam).

The stage's time is reported as: setup (coarse-target renders, ARAP neighbours) + 200 × the mean step time;
with `--steps 200` the 200 steps are measured, otherwise the figure is extrapolated from `--steps` timed
steps after `--warmup` untimed ones (the JSON says which). Peak memory is `torch.cuda.max_memory_allocated`
over the timed steps; it does not count a CUDA-graph recording's private pool, which `reserved_after_steps_gib`
(what the allocator holds from the device after them) does. One UNet evaluation, one VAE encode+backward of the 60 moving renders and one render
forward+backward are also timed on their own.

Usage:
    python benchmarks/bench_sds.py --device cuda --out sds.json
    python benchmarks/bench_sds.py --device cuda --sweep --out sds_sweep.json   # target size / checkpoint chunk
    python benchmarks/bench_sds.py --device cuda --steps 200                     # the full 200 steps
    python benchmarks/bench_sds.py --device cuda --steps 5 --compile --out cmp.json  # eager, then compiled

`--compile` adds, after the eager rows, the same rows with `a3d_cli.models.speed.acceleration.accelerate(compile=True)`
applied in place to MV-VDM's UNet and VAE encoder (what `a3d sds --compile` does); the warm-up steps then
include compilation, reported as `compile_first_run_seconds` (first step minus a steady step). Each row is
printed as one markdown line and the JSON is rewritten after every row.

`--encoder-layout nhwc,nchw` times the eager rows with the VAE encoder NHWC and its fused GroupNorm kernels
(the stage's default, `MvvdmDenoiser.accelerate(nhwc_encoder=True)`), then NCHW as PyTorch runs it.

`--cuda-graph off,on,off,on` times the eager rows with MV-VDM's guided call run eagerly and replayed from its
CUDA graph (the stage's default where memory allows), alternating, in one process: pairs on one machine.

`--no-wide-head-shortcut` takes the VAE encoder's attention shortcut out (diffusers' processor again, so its
one 512-wide head runs through SDPA's fallback kernel): run once with and once without it to measure that
trick's gain on the stage (docs/PERF.md, "Speed tricks: keep or drop").
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import peak_bytes, reserved_bytes, sync  # noqa: E402
from random_mvvdm import build_denoiser  # noqa: E402
from speed_variants import COMPILE_MODES, compile_with_mode  # noqa: E402

from a3d_cli.gaussians.container import Gaussians  # noqa: E402
from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig  # noqa: E402
from a3d_cli.gaussians.motion_refine import (  # noqa: E402
    SdsRefiner,
    encode_checkpointed,
    kept_render_count,
    render_motion,
)
from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser  # noqa: E402
from a3d_cli.models.sds import GraphsGuidance, SdsCondition  # noqa: E402
from a3d_cli.models.speed.attention import ShortcutAttnProcessor, replace_attention_processors  # noqa: E402
from a3d_cli.models.speed.handles import SpeedHandle  # noqa: E402
from a3d_cli.render.random_cameras import sample_orthogonal_cameras  # noqa: E402
from a3d_cli.stages.sds import SdsOptions  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def take_out_wide_head_shortcut(den: MvvdmDenoiser) -> SpeedHandle:
    """Give the VAE encoder's attention layers diffusers' `AttnProcessor2_0` back (`MvvdmDenoiser` gave them
    the shortcut processor for the 512-wide head); `remove()` puts the shortcut back."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    return replace_attention_processors(den.comp.vae.encoder, (ShortcutAttnProcessor,), AttnProcessor2_0())


def random_splats(n: int, device: str, seed: int = 0) -> Gaussians:
    """N splats filling a ball of radius 0.6 (a normalized object), sizes as `a3d prepare` makes them."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    means = direction * 0.6 * torch.rand(n, 1, generator=g) ** (1 / 3)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    scale = 0.6 * (4 / 3 * math.pi / n) ** (1 / 3)
    return Gaussians(means, quats, torch.full((n, 3), scale), torch.full((n,), 0.8), torch.rand(n, 3, generator=g)).to(
        device
    )


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def timed(fn, device: str, repeat: int = 3) -> float:
    """Mean seconds of `fn()` after one warm-up call."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def components(
    den: MvvdmDenoiser, static: Gaussians, field: MotionField, opts: SdsOptions, device: str, keep: int = 0
) -> dict[str, float]:
    """Seconds of the step's main parts, each on its own."""
    g = torch.Generator().manual_seed(0)
    cams = sample_orthogonal_cameras(opts.cameras, g)
    frames = torch.arange(field.config.num_frames)
    c, h, w = den.latent_shape(opts.render_size, opts.render_size)
    noisy = torch.randn(4, 16, c, h, w, device=device)
    with torch.no_grad():
        rgb, _ = render_motion(static, field(static, frames), cams, opts.render_size)
    cond = SdsCondition("a dog wags its tail", "", rgb[:, 0], cams)

    def unet() -> None:
        den.predict_noise(noisy, 100, cond)

    images = rgb[:, 1:].reshape(60, 3, opts.render_size, opts.render_size).contiguous()
    post = torch.randn(60, c, h, w, device=device)

    def encode() -> None:
        x = images.clone().requires_grad_(True)
        encode_checkpointed(den, x, post, opts.vae_chunk, keep).sum().backward()

    def render() -> None:
        out = field(static, frames)
        r, a = render_motion(static, out, cams, opts.render_size)
        (r.sum() + a.sum()).backward()
        field.zero_grad(set_to_none=True)

    return {
        "unet_cfg_eval_seconds": timed(unet, device),
        "vae_encode_backward_60_seconds": timed(encode, device),
        "render_64_forward_backward_seconds": timed(render, device),
    }


def count_host_syncs(fn, device: str) -> int | None:
    """How many times `fn()` makes the host wait for the GPU (`.item()`, blocking copies, gsplat's intersection
    count), as PyTorch's sync debug mode reports them; None off CUDA."""
    import warnings

    if not device.startswith("cuda"):
        return None
    sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    sync(device)
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def bench_one(
    den,
    static,
    args,
    target_size: int,
    vae_chunk: int,
    variant: str = "eager",
    vae_keep: int | None = 0,
    cuda_graph: bool = True,
) -> dict:
    device = args.device
    opts = SdsOptions(
        prompt="a dog wags its tail",
        steps=args.steps,
        target_size=target_size,
        vae_chunk=vae_chunk,
        vae_keep=vae_keep,
        render_size=args.render_size,
        cuda_graph=cuda_graph,
    )
    field = MotionField(
        dataclasses.replace(MotionFieldConfig(), use_delta_scale=True), generator=torch.Generator().manual_seed(0)
    ).to(device)
    row: dict = {"variant": variant, "target_size": target_size, "vae_chunk": vae_chunk,
                 "vae_keep": "auto" if vae_keep is None else vae_keep, "render_size": args.render_size}  # fmt: skip
    try:
        reset_peak(device)
        sync(device)
        t0 = time.perf_counter()
        refiner = SdsRefiner(static, field, den, opts, seed=0)
        sync(device)
        row["setup_seconds"] = time.perf_counter() - t0
        first = []
        for _ in range(args.warmup):
            t1 = time.perf_counter()
            refiner.step()
            sync(device)
            first.append(time.perf_counter() - t1)
        row["warmup_step_seconds"] = [round(x, 3) for x in first]
        reset_peak(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            losses = refiner.step()
        sync(device)
        per_step = (time.perf_counter() - t0) / max(args.steps, 1)
        row["compile_first_run_seconds"] = round(max(first[0] - per_step, 0.0), 3) if first else None
        reserved = reserved_bytes(device)
        row.update(
            seconds_per_step=per_step,
            sds_seconds_200_steps=row["setup_seconds"] + 200 * per_step,
            measured_steps=args.steps,
            extrapolated=args.steps != 200,
            peak_memory_bytes=peak_bytes(device),
            peak_memory_gib=None if peak_bytes(device) is None else round(peak_bytes(device) / 2**30, 2),
            reserved_after_steps_gib=None if reserved is None else round(reserved / 2**30, 2),
            final_loss=float(losses.total.detach()),
        )
        row["host_syncs_per_step"] = count_host_syncs(refiner.step, device)
        row["vae_renders_kept"] = kept_render_count(refiner.moving_renders(), vae_chunk, refiner.vae_keep)
        row["guided_graph"] = refiner.guided_graph
        row["guided_graph_replays"] = den.graph_replays if isinstance(den, GraphsGuidance) else 0
        row.update(components(den, static, field, opts, device, refiner.vae_keep))
    except torch.cuda.OutOfMemoryError as exc:
        row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
    except Exception as exc:  # one failing configuration must not lose the others
        row["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--dtype", default="bf16", choices=sorted(DTYPES), help="MV-VDM precision (the stage's auto on CUDA: bf16)"
    )
    ap.add_argument("--splats", type=int, default=20_000, help="static splats (a3d prepare's default for meshes)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (200 = the whole stage, no extrapolation)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--target-size", type=int, default=1024, help="reconstruction-branch size (reference: 1024)")
    ap.add_argument("--vae-chunk", type=int, default=16)
    ap.add_argument("--vae-keep", default="auto",
                    help="renders whose VAE activations are kept (the stage's --vae-keep): auto or a number; "
                         "a comma list times each in turn (e.g. 0,auto: recomputed against kept)")  # fmt: skip
    ap.add_argument("--encoder-layout", default="nhwc",
                    help="the VAE encoder's layout in the eager rows: nhwc (the stage's default: NHWC with the fused "
                         "GroupNorm kernels) or nchw; a comma list times each in turn")  # fmt: skip
    ap.add_argument("--cuda-graph", default="on",
                    help="the guided UNet call replayed from a CUDA graph where memory allows (on, the stage's "
                         "default) or eager (off); a comma list times each in turn, e.g. off,on,off,on")  # fmt: skip
    ap.add_argument("--sweep", action="store_true", help="also target 256 and vae_chunk 0 / 8 / 60")
    ap.add_argument("--compile", action="store_true", help="then compile UNet + VAE encoder blocks and repeat")
    ap.add_argument("--compile-mode", default="default", choices=COMPILE_MODES)
    ap.add_argument("--compile-configs", default="first", choices=["first", "all"],
                    help="compiled rows for the first configuration only (default) or for every one")
    ap.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    ap.add_argument(
        "--no-wide-head-shortcut",
        action="store_true",
        help="take the VAE encoder's attention shortcut out (its gain: this run against one without the flag)",
    )
    ap.add_argument(
        "--tiny", action="store_true", help="tiny random MV-VDM: a CPU smoke run of this script, not a benchmark"
    )
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(
            "no CUDA device here; numbers need --device cuda on the GPU machine (or --tiny --device cpu to smoke-test)"
        )
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    t0 = time.perf_counter()
    den = build_denoiser(args.device, DTYPES[args.dtype], tiny=args.tiny)
    build = time.perf_counter() - t0
    shortcut_layers = take_out_wide_head_shortcut(den).count if args.no_wide_head_shortcut else 0
    static = random_splats(args.splats, args.device)
    keeps = [None if k.strip() == "auto" else int(k) for k in args.vae_keep.split(",")]
    configs = [(args.target_size, args.vae_chunk, k) for k in keeps]
    if args.sweep:
        configs += [(256, args.vae_chunk, 0), (args.target_size, 0, 0), (args.target_size, 8, 0), (args.target_size, 60, 0)]
    result: dict = {}
    rows: list[dict] = []
    table = ["| device | variant | target | vae_chunk | VAE renders kept | s/step | 200-step s | UNet eval s | VAE enc+bwd s | "
             "first-run compile s | peak GiB | host syncs / step |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"

    def record(row: dict) -> None:
        rows.append(row)
        table.append(
            f"| {device_name} | {row['variant']} | {row['target_size']} | {row['vae_chunk']} | "
            f"{row.get('vae_renders_kept')} ({row['vae_keep']}) | "
            f"{_r(row.get('seconds_per_step'))} | {_r(row.get('sds_seconds_200_steps'), 1)} | "
            f"{_r(row.get('unet_cfg_eval_seconds'))} | {_r(row.get('vae_encode_backward_60_seconds'))} | "
            f"{row.get('compile_first_run_seconds')} | {row.get('peak_memory_gib')} | {row.get('host_syncs_per_step')} |"
            + (f" {row['error']}" if "error" in row else "")
        )
        print(table[-1], flush=True)
        if args.out is not None:
            args.out.write_text(json.dumps({**result, "rows": rows}, indent=2))

    result.update({
        "benchmark": "sds",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu",
        "tiny_model": args.tiny,
        "torch": torch.__version__,
        "dtype": args.dtype,
        "splats": args.splats,
        "views_x_frames": "4 x 16",
        "model_build_seconds": build,
        "wide_head_shortcut": not args.no_wide_head_shortcut,
        "wide_head_shortcut_layers_taken_out": shortcut_layers,
    })
    eager: SpeedHandle | None = None
    for layout in args.encoder_layout.split(","):  # as the stage runs without --compile (nhwc: its default)
        if eager is not None:
            eager.remove()
        accel = den.accelerate(args.device, nhwc_encoder=layout.strip() == "nhwc")
        eager = accel.handle
        result[f"acceleration_eager_{layout.strip()}"] = accel.as_metrics()
        for graph in (g.strip() == "on" for g in args.cuda_graph.split(",")):
            for t, c, k in configs:
                variant = f"eager {layout.strip()}" + (" graph" if graph else "")
                record(bench_one(den, static, args, t, c, variant=variant, vae_keep=k, cuda_graph=graph))
    if args.compile:
        if eager is not None:
            eager.remove()  # compiled blocks fuse their GroupNorms themselves
        nets = den.hot_networks()
        result["acceleration"] = den.accelerate(args.device, compile=True).as_metrics()
        if args.compile_mode != "default":  # the same blocks, compiled again in the other mode
            compile_with_mode(nets, args.compile_mode)
            result["acceleration"]["compile_mode"] = args.compile_mode
        for t, c, k in configs if args.compile_configs == "all" else configs[:1]:
            record(bench_one(den, static, args, t, c, variant="compile", vae_keep=k))
    result["rows"] = rows
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    print("\n".join(table))
    return result


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


if __name__ == "__main__":
    main()
