"""Benchmark `a3d mvvideo`'s model: full-size MV-VDM with random weights, 4 views × 16 frames at 256².

Measures, per precision (fp16, bf16 by default):
  * one CFG-batched UNet evaluation ([2, 4, 16, 4, 32, 32]): seconds (median of N after warm-up), peak
    memory, TFLOP per evaluation (torch's FLOP counter) and achieved TFLOP/s;
  * the whole sampling pipeline (`generate_mvvideo`: CLIP text + image encoders, VAE encode, 25 DDIM steps
    × FreeInit passes × CFG, VAE decode of 64 frames) with FreeInit off (1 pass) and on (3 passes), so the
    cost of FreeInit's extra passes is reported directly.

The UNet's attention must run through fused SDPA kernels: while timing the UNet the math fallback is
forbidden, so a shape or dtype that would silently fall back to the slow, memory-hungry path fails loudly.

Usage:
    python benchmarks/bench_mvvideo.py --device cuda --out mvvideo_bench.json
    python benchmarks/bench_mvvideo.py --dtypes fp16 --freeinit-iters 1 3 --evals 10
    python benchmarks/bench_mvvideo.py --dtypes bf16 --freeinit-iters 3 --compile --out cmp.json

`--compile` adds, after the eager rows, the same measurements with `a3d_cli.models.speed.acceleration.accelerate(
compile=True)` applied to the UNet in place (regional compilation of its repeated blocks plus cuDNN/TF32
flags: what `a3d mvvideo --compile` does); the first call's extra seconds are `compile_first_run_seconds`.
Every configuration prints one markdown row, and the JSON is rewritten after each, so a run cut short by
`timeout` keeps what it finished.

About 2–4 minutes on one H100/H200 with the defaults. Random weights: the numbers are speed and memory, not
quality.
"""

from __future__ import annotations

import argparse
import contextlib
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
from random_mvvdm import build_components  # noqa: E402
from speed_variants import COMPILE_MODES, compile_with_mode  # noqa: E402

from a3d_cli.models.freeinit import FreeInitConfig  # noqa: E402
from a3d_cli.models.mvvdm import MVVDMUNet, generate_mvvideo  # noqa: E402
from a3d_cli.models.mvvdm.components import MVVDMComponents  # noqa: E402
from a3d_cli.models.mvvdm.sampling import SamplingConfig  # noqa: E402
from a3d_cli.models.mvvdm.shape import NUM_FRAMES, NUM_VIEWS, RESOLUTION  # noqa: E402
from a3d_cli.render.cameras import mvvdm_cameras  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
V, F, SIZE = NUM_VIEWS, NUM_FRAMES, RESOLUTION


def peak_gib(device: str) -> float | None:
    peak = peak_bytes(device)
    return None if peak is None else peak / 2**30


def no_math_sdpa(enabled: bool):
    """Allow only fused SDPA kernels (flash, memory-efficient, cuDNN) when `enabled`."""
    if not enabled:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        backends.append(SDPBackend.CUDNN_ATTENTION)
    return sdpa_kernel(backends)


def count_tflop(unet: MVVDMUNet, args: tuple) -> float | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover
        return None
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(*args)
    return counter.get_total_flops() / 1e12


def unet_args(comp: MVVDMComponents, device: str) -> tuple:
    cfg = comp.unet.config
    g = torch.Generator(device="cpu").manual_seed(0)
    dt = comp.dtype
    lat = SIZE // comp.vae_scale_factor
    x = torch.randn(2, V, F, cfg.in_channels, lat, lat, generator=g).to(device, dt)
    t = torch.tensor([500, 500], device=device)
    text = torch.randn(2, 77, cfg.cross_attention_dim, generator=g).to(device, dt)
    img = torch.randn(2, V, cfg.image_embed_dim, generator=g).to(device, dt)
    cams = torch.randn(V, 16, generator=g).to(device, dt)
    return x, t, text, img, cams


def bench_unet(comp: MVVDMComponents, device: str, evals: int, warmup: int, forbid_math: bool, unet=None) -> dict:
    unet = comp.unet if unet is None else unet  # not `or`: a module's truthiness is len(), which may not exist
    args = unet_args(comp, device)
    out: dict = {}
    with torch.no_grad(), no_math_sdpa(forbid_math):
        t0 = time.perf_counter()
        unet(*args)
        sync(device)
        first = time.perf_counter() - t0
        for _ in range(warmup - 1):
            unet(*args)
        sync(device)
        out["warmup_seconds"] = round(time.perf_counter() - t0, 3)
        out["first_call_seconds"] = round(first, 3)
        reset_peak(device)
        times = []
        for _ in range(evals):
            sync(device)
            t0 = time.perf_counter()
            unet(*args)
            sync(device)
            times.append(time.perf_counter() - t0)
    out["seconds_per_eval_median"] = round(statistics.median(times), 4)
    out["compile_first_run_seconds"] = round(max(first - statistics.median(times), 0.0), 3)
    out["seconds_per_eval_min"] = round(min(times), 4)
    out["peak_memory_gib"] = None if peak_gib(device) is None else round(peak_gib(device), 3)
    return out


def bench_pipeline(comp: MVVDMComponents, device: str, steps: int, iters: int) -> dict:
    """The whole `generate_mvvideo` call. SDPA is left unrestricted here: the VAE's mid-block attention has
    one 512-wide head, which not every fused kernel takes; the UNet's calls are the ones `bench_unet` checks."""
    views = torch.rand(V, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    cfg = SamplingConfig(steps=steps, guidance_scale=7.5, num_frames=F, freeinit=FreeInitConfig(iters=iters))
    stamps: list[float] = []

    def on_step(k: int, i: int, _lat: torch.Tensor) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    out = generate_mvvideo(comp, views, mvvdm_cameras().c2w, "a fox wags its tail", config=cfg,
                           generator=torch.Generator().manual_seed(0), callback=on_step)
    sync(device)
    total = time.perf_counter() - t0
    assert out.frames.shape == (V, F, 3, SIZE, SIZE)
    sampling = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    return {
        "freeinit_passes": cfg.freeinit.passes,
        "unet_evaluations": cfg.unet_evaluations,
        "total_seconds": round(total, 3),
        "seconds_per_step": round(sampling / (len(stamps) - 1), 4) if len(stamps) > 1 else None,
        "before_first_step_seconds": round(stamps[0] - t0, 3),  # encoders + VAE encode + first step
        "after_last_step_seconds": round(t0 + total - stamps[-1], 3),  # VAE decode of 64 frames
        "peak_memory_gib": None if peak_gib(device) is None else round(peak_gib(device), 3),
        "finite": bool(torch.isfinite(out.latents).all()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtypes", nargs="+", default=["fp16", "bf16"], choices=list(DTYPES))
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--freeinit-iters", type=int, nargs="+", default=[1, 3], help="FreeInit passes to time")
    ap.add_argument("--evals", type=int, default=10, help="timed UNet evaluations")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--allow-math-sdpa", action="store_true", help="do not forbid the unfused attention fallback")
    ap.add_argument("--compile", action="store_true",
                    help="after the eager rows, compile the UNet's repeated blocks in place and measure again")
    ap.add_argument("--compile-mode", default="default", choices=COMPILE_MODES)
    ap.add_argument("--skip-pipeline", action="store_true", help="UNet timings only")
    ap.add_argument("--tiny", action="store_true", help="smoke-test this script on a CPU with the tiny model")
    ap.add_argument("--out", type=Path, default=Path("mvvideo_bench.json"))
    args = ap.parse_args()

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("CUDA is not available; pass --device cpu for a (very slow) CPU run")
    forbid_math = device.startswith("cuda") and not args.allow_math_sdpa
    import diffusers
    import transformers

    report: dict = {
        "benchmark": "mvvideo",
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor(),
        "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "shape": {"views": V, "frames": F, "size": SIZE, "cfg_batch": 2, "steps": args.steps},
        "model": "tiny (smoke test)" if args.tiny else "full size, random weights",
        "sdpa_math_forbidden": forbid_math,
        "results": {},
    }
    rows = ["| device | dtype | variant | s / UNet eval | TFLOP/s | first-run compile s | peak GiB (eval) | "
            "stage s (FreeInit 1) | stage s (FreeInit 3) | peak GiB (stage) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.dtypes:
        dtype = DTYPES[name]
        torch.backends.cudnn.benchmark = False  # a true eager baseline, even after a compiled dtype
        torch.backends.cuda.matmul.allow_tf32 = False
        t0 = time.perf_counter()
        comp = build_components(device, dtype, tiny=args.tiny)
        res: dict = {"build_seconds": round(time.perf_counter() - t0, 2),
                     "unet_params_m": round(sum(p.numel() for p in comp.unet.parameters()) / 1e6, 1)}
        print(f"[{name}] built in {res['build_seconds']} s", flush=True)
        res["unet"] = bench_unet(comp, device, args.evals, args.warmup, forbid_math)
        tflop = count_tflop(comp.unet, unet_args(comp, device))
        if tflop is not None:
            res["unet"]["tflop_per_eval"] = round(tflop, 2)
            res["unet"]["achieved_tflops"] = round(tflop / res["unet"]["seconds_per_eval_median"], 1)
        print(f"[{name}] unet: {res['unet']}", flush=True)
        report["results"][name] = res
        variants = [("eager", "unet", "pipeline")]
        if args.compile:
            variants.append(("compile", "unet_compiled", "pipeline_compiled"))
        for variant, unet_key, pipe_key in variants:
            try:
                if variant == "compile":
                    res["acceleration"] = comp.accelerate(device, compile=True).as_metrics()
                    if args.compile_mode != "default":  # the same blocks, compiled again in the other mode
                        compile_with_mode([comp.unet], args.compile_mode)
                        res["acceleration"]["compile_mode"] = args.compile_mode
                    res[unet_key] = bench_unet(comp, device, args.evals, args.warmup, forbid_math)
                    if tflop is not None:
                        res[unet_key]["achieved_tflops"] = round(tflop / res[unet_key]["seconds_per_eval_median"], 1)
                    print(f"[{name}] compiled unet: {res[unet_key]}", flush=True)
                if not args.skip_pipeline:
                    res[pipe_key] = {}
                    for iters in args.freeinit_iters:
                        r = bench_pipeline(comp, device, args.steps, iters)
                        res[pipe_key][f"freeinit_iters_{iters}"] = r
                        print(f"[{name} {variant}] pipeline freeinit={iters}: {r}", flush=True)
            except Exception as exc:  # one failing configuration must not lose the others
                res[f"{variant}_error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
                print(f"[{name} {variant}] FAILED: {res[f'{variant}_error']}", flush=True)
            args.out.write_text(json.dumps(report, indent=2))
            u, p = res.get(unet_key, {}), res.get(pipe_key, {})
            p1, p3 = p.get("freeinit_iters_1", {}), p.get("freeinit_iters_3", {})
            rows.append(
                f"| {report['device']} | {name} | {variant} | {u.get('seconds_per_eval_median')} | "
                f"{u.get('achieved_tflops')} | {u.get('compile_first_run_seconds')} | {u.get('peak_memory_gib')} | "
                f"{p1.get('total_seconds')} | {p3.get('total_seconds')} | "
                f"{p3.get('peak_memory_gib', p1.get('peak_memory_gib'))} |"
            )
            print(rows[-1], flush=True)
        runs = res.get("pipeline", {})
        if "freeinit_iters_1" in runs and "freeinit_iters_3" in runs:
            extra = runs["freeinit_iters_3"]["total_seconds"] - runs["freeinit_iters_1"]["total_seconds"]
            res["freeinit_extra_seconds_for_3_passes"] = round(extra, 3)
        report["results"][name] = res
        del comp
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
