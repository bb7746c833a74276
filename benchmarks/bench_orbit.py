"""Benchmark the `orbit` stage (SV3D_p) at full size with random weights: speed and peak memory.

What is measured, per precision: the whole stage as `a3d orbit` runs it after loading (CLIP + VAE encode,
50 Euler steps with the fused 2-row CFG batch over 21 frames at 576², fp32 VAE decode), the seconds per
step, one UNet CFG forward alone, and `torch.cuda.max_memory_allocated` for each. Every timed region is
preceded by a warm-up and bracketed by `torch.cuda.synchronize()`. Random weights give the real speed and
memory of the real networks (no checkpoint needed); pass --checkpoint to time a real file instead.

Precisions: `fp32`, `bf16`, `fp16` (UNet and CLIP stored in that dtype, VAE in fp32), and `autocast-fp16`
(fp32 weights under `torch.autocast(float16)`, how Stability's script runs, for a like-for-like baseline).

Run on the GPU machine (about 2–3 minutes on one H100/H200 with the defaults):

    python benchmarks/bench_orbit.py --device cuda --out results.json
    python benchmarks/bench_orbit.py --dtypes bf16 --variants eager,compile --decode-chunks "" --out cmp.json
    python benchmarks/bench_orbit.py --dtypes bf16 --channels-last --variants compile --out compiled.json
    python benchmarks/bench_orbit.py --config tiny --device cpu --steps 2 --dtypes fp32   # smoke test

Variants (`--variants`): `eager` (plain PyTorch), `flags` (cuDNN benchmark + TF32 only), `default` (the
flags and each GEGLU fused into one GEMM: what `a3d orbit` runs without `--compile`),
`compile` (`a3d_cli.models.speed.acceleration.accelerate(compile=True, channels_last=True,
subpixel_upsampling=True, fused_geglu=True)`: regional compilation of the UNet's and VAE decoder's repeated
blocks, run channels-last, with upsampling folded into its convolution and each GEGLU fused into one GEMM;
exactly what `a3d orbit --compile` does) and `compile-nchw` (the regional compilation alone, as `--compile`
did before the channels-last work, for comparison). For compiled variants the first UNet call's extra
seconds (compilation, or loading inductor's disk cache) are reported separately as `compile_first_run_s`.

Each configuration prints one markdown row; the JSON is rewritten after every configuration, so a run cut
short by `timeout` keeps what it finished. Add the rows to docs/PERF.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import peak_bytes, reset_peak, sync  # noqa: E402
from speed_variants import COMPILE_MODES, compile_with_mode  # noqa: E402

from a3d_cli.models.guidance import triangular_cfg_scales  # noqa: E402
from a3d_cli.models.speed.acceleration import accelerate, channels_last_conv2d  # noqa: E402
from a3d_cli.models.sv3d.cameras import static_orbit  # noqa: E402
from a3d_cli.models.sv3d.config import SV3DConfig  # noqa: E402
from a3d_cli.models.sv3d.loading import build_models, load_sv3d  # noqa: E402
from a3d_cli.models.sv3d.pipeline import SV3DPipeline  # noqa: E402

VARIANTS = ("eager", "flags", "default", "compile", "compile-nchw")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "autocast-fp16": torch.float32}


def sdpa_context(kind: str):  # noqa: ANN201
    """Restrict PyTorch SDPA to one backend ("default" leaves the choice to PyTorch)."""
    if kind == "default":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }[kind]
    return sdpa_kernel(backend)


def make_models(args: argparse.Namespace, dtype: torch.dtype, device: torch.device):  # noqa: ANN201
    if args.checkpoint:
        return load_sv3d(Path(args.checkpoint), device=device, unet_dtype=dtype).models
    config = SV3DConfig.tiny() if args.config == "tiny" else SV3DConfig.full()
    torch.manual_seed(0)
    models = build_models(config, "sv3d_p", device=device)  # random init on the device itself (fast)
    models.unet.to(dtype)
    models.image_encoder.to(dtype)
    return models


def unet_forward_args(models, device: torch.device, dtype: torch.dtype):  # noqa: ANN001, ANN201
    """Inputs of one fused CFG UNet call: [2, F, 8, h, w]."""
    cfg = models.config
    f, s = cfg.num_frames, cfg.latent_size
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(2, f, 8, s, s, generator=g).to(device, dtype)
    ctx = torch.randn(2, 1, cfg.unet.cross_attention_dim, generator=g).to(device, dtype)
    vec = torch.randn(2, f, models.unet.add_embedding.linear_1.in_features, generator=g).to(device, dtype)
    return x, torch.tensor(0.5, device=device), ctx, vec


def count_tflop(models, device: torch.device, dtype: torch.dtype) -> float | None:  # noqa: ANN001
    """FLOPs of one fused CFG UNet call (2 rows × 21 frames), counted by PyTorch."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        args = unet_forward_args(models, device, dtype)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            models.unet(*args, return_dict=False)
        return counter.get_total_flops() / 1e12
    except Exception as exc:  # the counter is best effort; timing does not depend on it
        print(f"  (flop count unavailable: {exc})", file=sys.stderr)
        return None


def time_unet(  # noqa: ANN201
    models,  # noqa: ANN001
    device: torch.device,
    dtype: torch.dtype,
    reps: int,
    autocast: bool,
) -> dict[str, float | None]:
    args = unet_forward_args(models, device, dtype)
    ac = torch.autocast(device.type, dtype=torch.float16) if autocast else contextlib.nullcontext()

    def forward(*a: torch.Tensor) -> torch.Tensor:
        return models.unet(*a, return_dict=False)[0]

    with torch.no_grad(), ac:
        first = []
        for _ in range(2):  # warm-up (and compile, when asked)
            t0 = time.perf_counter()
            forward(*args)
            sync(device)
            first.append(time.perf_counter() - t0)
        reset_peak(device)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            forward(*args)
            sync(device)
            times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "unet_first_call_s": round(first[0], 3),
        "compile_first_run_s": round(max(first[0] - times[len(times) // 2], 0.0), 3),
        "unet_cfg_forward_s_median": times[len(times) // 2],
        "unet_cfg_forward_s_min": times[0],
        "unet_peak_bytes": peak_bytes(device),
    }


def mark_step(ends: list, device: torch.device) -> None:
    """Record a CUDA event where a sampling step ends (the pipeline's callback), to time steps on the GPU."""
    if device.type == "cuda":
        ends.append(torch.cuda.Event(enable_timing=True))
        ends[-1].record()


def step_times(ends: list) -> dict:
    """GPU time of each step, from `mark_step`'s events: step 1 apart, and the median / min / max of the
    rest (the steady state)."""
    if len(ends) < 3:
        return {}
    ms = [a.elapsed_time(b) for a, b in zip(ends, ends[1:], strict=False)]
    rest = sorted(ms[1:])
    return {
        "step1_ms": round(ms[0], 2),
        "step_ms_median": round(statistics.median(rest), 2),
        "step_ms_min": round(rest[0], 2),
        "step_ms_max": round(rest[-1], 2),
    }


def release_previous_variant(device: torch.device) -> None:
    """Free what an earlier configuration left behind before the next one is measured.

    Dynamo's caches keep the compiled blocks, and through them the whole previous network, alive; without
    this, the peak memory of every configuration after a compiled one counted 3–7 GB of a network it no
    longer used (seen on an H200: the `encode` phase of the next configuration already above 9 GB).
    """
    import gc

    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peak(device)


def set_backend_defaults() -> None:
    """Undo `accelerate`'s process-wide flags so an eager variant after a compiled one is a true baseline."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False


def bench_dtype(name: str, args: argparse.Namespace, device: torch.device, variant: str = "eager") -> dict:
    dtype = DTYPES[name]
    autocast = name == "autocast-fp16"
    if variant == "eager":
        set_backend_defaults()
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
    t0 = time.perf_counter()
    models = make_models(args, dtype, device)
    sync(device)
    setup_s = time.perf_counter() - t0
    tflop = None
    if args.count_flops:  # before any compilation (counting must not trigger it)
        with sdpa_context(args.sdpa):
            tflop = count_tflop(models, device, dtype)
    if args.channels_last:  # Conv2d weights only: the temporal resnets' Conv3d weights are 5-D
        channels_last_conv2d(models.unet)
        channels_last_conv2d(models.vae)
    accel = None
    if variant != "eager":
        accel = accelerate(
            device,
            models.hot_networks(),
            compile=variant.startswith("compile"),
            channels_last=variant == "compile",  # as the orbit stage does with --compile
            subpixel_upsampling=variant == "compile",
            fused_geglu=variant in ("default", "compile"),  # as the orbit stage does
        )
    if variant.startswith("compile") and args.compile_mode != "default":  # the same blocks, in the other mode
        compile_with_mode(models.hot_networks(), args.compile_mode)
    cfg = models.config
    pipe = SV3DPipeline(models, device=device, offload=args.offload)
    image = torch.rand(3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    orbit = static_orbit(10.0)
    scales = triangular_cfg_scales(cfg.num_frames)
    result: dict = {"dtype": name, "variant": variant, "setup_s": round(setup_s, 3)}
    if accel is not None:
        result.update(accel.as_metrics())
    if tflop is not None:
        result["unet_cfg_forward_tflop"] = tflop
    ac = torch.autocast(device.type, dtype=torch.float16) if autocast else contextlib.nullcontext()
    with sdpa_context(args.sdpa):
        result.update(time_unet(models, device, dtype, args.unet_reps, autocast))
        with ac:
            t0 = time.perf_counter()
            pipe(
                image, orbit, num_steps=args.warmup_steps, cfg=scales, seed=0, decode_chunk=args.decode_chunk
            )  # warm-up
            sync(device)
            result["warmup_s"] = round(time.perf_counter() - t0, 3)
            reset_peak(device)
            step_ends: list[torch.cuda.Event] = []
            t0 = time.perf_counter()
            out = pipe(
                image, orbit, num_steps=args.steps, cfg=scales, seed=0, decode_chunk=args.decode_chunk,
                callback=lambda step, total: mark_step(step_ends, device),
            )  # fmt: skip
            sync(device)
            total = time.perf_counter() - t0
    result.update(step_times(step_ends))
    result.update(
        steps=args.steps,
        stage_s=round(total, 4),
        encode_s=round(out.seconds["encode"], 4),
        sample_s=round(out.seconds["sample"], 4),
        decode_s=round(out.seconds["decode"], 4),
        s_per_step=round(out.seconds["sample"] / args.steps, 5),
        stage_peak_bytes=peak_bytes(device),
        finite=bool(torch.isfinite(out.frames).all()),
    )
    result["phase_peak_bytes"] = dict(out.peak_bytes)  # running max at the end of encode / sample / decode
    if args.decode_chunks:
        sweep = []
        latents = out.latents.to(device)
        for chunk in [int(c) for c in args.decode_chunks.split(",")]:
            reset_peak(device)
            t0 = time.perf_counter()
            pipe.decode(latents, chunk)
            sync(device)
            sweep.append(
                {
                    "decode_chunk": chunk,
                    "decode_s": round(time.perf_counter() - t0, 4),
                    "peak_bytes": peak_bytes(device),
                }
            )
        result["decode_sweep"] = sweep
    tflop = result.get("unet_cfg_forward_tflop")
    if tflop:
        result["sample_tflops_per_s"] = round(tflop * args.steps / out.seconds["sample"], 1)
    for k in ("stage_peak_bytes", "unet_peak_bytes"):
        if result.get(k) is not None:
            result[k.replace("_bytes", "_gib")] = round(result[k] / 2**30, 3)
    del pipe, models, out
    reset_peak(device)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtypes", default="bf16,fp16,fp32,autocast-fp16", help="comma-separated: " + ", ".join(DTYPES))
    p.add_argument("--steps", type=int, default=50, help="Euler steps of the timed run (50 = SV3D default)")
    p.add_argument("--warmup-steps", type=int, default=2, help="steps of the untimed warm-up run")
    p.add_argument("--unet-reps", type=int, default=5, help="timed UNet-only CFG forwards")
    p.add_argument("--decode-chunk", type=int, default=3)
    p.add_argument("--decode-chunks", default="1,3,7,14", help="decode-only sweep over these chunk sizes ('' = skip)")
    p.add_argument("--sdpa", default="default", choices=["default", "flash", "efficient", "cudnn", "math"])
    p.add_argument("--channels-last", action="store_true", help="Conv2d weights of UNet and VAE in channels-last")
    p.add_argument("--variants", default="eager", help="comma-separated: " + ", ".join(VARIANTS) + " (see above)")
    p.add_argument("--compile", action="store_true", help="shorthand for --variants compile")
    p.add_argument("--compile-mode", default="default", choices=COMPILE_MODES)
    p.add_argument("--offload", action="store_true", help="keep idle networks on the CPU")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls for fp32")
    p.add_argument("--no-count-flops", dest="count_flops", action="store_false")
    p.add_argument("--config", default="full", choices=["full", "tiny"], help="tiny: CPU smoke test of this script")
    p.add_argument("--checkpoint", default=None, help="time a real checkpoint instead of random weights")
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = p.parse_args()

    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    info = {
        "benchmark": "orbit (SV3D_p)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "config": args.config,
        "frames": None,
        "size": None,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": [],
    }
    cfg = SV3DConfig.tiny() if args.config == "tiny" else SV3DConfig.full()
    info["frames"], info["size"] = cfg.num_frames, cfg.image_size
    variants = ["compile"] if args.compile else [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v}")
    rows = ["| device | dtype | variant | stage s | s/step | UNet CFG fwd s | TFLOP/s | first-run compile s | peak GiB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, variant in [(d.strip(), v) for d in args.dtypes.split(",") if d.strip() for v in variants]:
        if name not in DTYPES:
            p.error(f"unknown dtype {name}")
        print(f"[{name} {variant}] …", file=sys.stderr, flush=True)
        release_previous_variant(device)
        try:
            res = bench_dtype(name, args, device, variant)
        except Exception as exc:  # one failing configuration must not lose the others
            res = {"dtype": name, "variant": variant, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
            print(f"[{name} {variant}] FAILED: {res['error']}", file=sys.stderr, flush=True)
            info["results"].append(res)
            if args.out:
                args.out.write_text(json.dumps(info, indent=2))
            reset_peak(device)
            continue
        info["results"].append(res)
        if args.out:
            args.out.write_text(json.dumps(info, indent=2))
        tput = res.get("unet_cfg_forward_tflop")
        tput = round(tput / res["unet_cfg_forward_s_median"], 1) if tput else None
        rows.append(
            f"| {info['device']} | {name} | {variant} | {res['stage_s']:.2f} | {res['s_per_step']:.4f} | "
            f"{res['unet_cfg_forward_s_median']:.4f} | {tput} | {res['compile_first_run_s']} | {res.get('stage_peak_gib')} |"
        )
        print(rows[-1], flush=True)
        print(
            f"[{name} {variant}] stage {res['stage_s']:.2f} s (encode {res['encode_s']:.2f}, sample {res['sample_s']:.2f} = "
            f"{res['s_per_step'] * 1000:.0f} ms/step, decode {res['decode_s']:.2f}); peak {res.get('stage_peak_gib')} GiB; "
            f"UNet CFG forward {res['unet_cfg_forward_s_median'] * 1000:.0f} ms, {res.get('unet_peak_gib')} GiB",
            file=sys.stderr,
            flush=True,
        )
    text = json.dumps(info, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
