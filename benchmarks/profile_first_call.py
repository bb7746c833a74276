"""What a fresh process pays before the diffusion stages run at speed: their first calls against later ones.

A stage's steady step time (`bench_mvvideo`, `bench_sds`, `profile_stage_busy`) leaves out what its first
call costs: Triton kernels compiled (the fused GEGLU, the short-sequence attention), cuDNN trying every
algorithm for each new convolution shape (`cudnn.benchmark`), CUDA graph recording, library handles. The
`animate` chain pays all of that once per process. This script times the same short call three times in
one process (cold, then warm twice) for each diffusion stage, in a child process per variant, so the
first call's surplus can be split into what survives on disk and what every process pays again:

- `default`: the stage's own settings, in a fresh Triton cache folder;
- `warm disk cache`: the same again, reusing that Triton cache (compiled kernels are on disk);
- `cudnn autotuning`: as the second, with `torch.backends.cudnn.benchmark` on after the stage's flags (the
  stages leave it off);
- `no fused GEGLU`: as the second, with MV-VDM's GEGLUs left as diffusers has them.

mvvideo: one 2-step, 1-pass guided sampling of the full-size random-weight MV-VDM (fp16, the stage's
default; encoders, VAE encode and decode included). sds: one refinement step (bf16, 20k random splats,
4 × 16 renders at 256², VAE encode with gradients, guided UNet call, 1024² reconstruction renders).

Usage:
    python benchmarks/profile_first_call.py --out first_call.json [--stages mvvideo,sds] [--variants ...]
    python benchmarks/profile_first_call.py --device cpu --tiny   # smoke test of the script
    a3d info --warmup && python benchmarks/profile_first_call.py --triton-cache ~/.triton/cache \
        --variants "warm disk cache,cudnn autotuning"            # what is left after the warm-up
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "default": {"cache": "fresh"},
    "warm disk cache": {"cache": "kept"},
    "cudnn autotuning": {"cache": "kept", "cudnn_benchmark": True},
    "no fused GEGLU": {"cache": "kept", "fused_geglu": False},
}


def _child(stage: str, variant: dict, calls: int, dev: str, tiny: bool) -> dict:
    """Time `calls` calls of one stage's unit of work in this process; the first is the cold one."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from gpu_timing import sync
    from random_mvvdm import build_components

    from a3d_cli.device import torch_dtype
    from a3d_cli.models.speed.flags import backend_flags_kept

    fused = variant.get("fused_geglu", True)
    seconds: list[float] = []
    t_build = time.perf_counter()
    with backend_flags_kept():
        if stage == "mvvideo":
            from a3d_cli.models.freeinit import FreeInitConfig
            from a3d_cli.models.mvvdm.pipeline import generate_mvvideo
            from a3d_cli.models.mvvdm.sampling import SamplingConfig
            from a3d_cli.render.cameras import mvvdm_cameras
            from a3d_cli.stages import mvvideo

            comp = build_components(dev, torch_dtype("auto", dev, cuda_auto=mvvideo.DEFAULT_CUDA_DTYPE), tiny)
            comp.accelerate(dev, compile=False, fused_geglu=fused)
            views = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(1))
            cfg = SamplingConfig(steps=2, guidance_scale=7.5, num_frames=16, freeinit=FreeInitConfig(iters=1))

            def call() -> None:
                generate_mvvideo(comp, views, mvvdm_cameras().c2w, "a fox wags its tail", config=cfg,
                                 generator=torch.Generator().manual_seed(0), cuda_graph=True)  # fmt: skip
        else:
            from bench_sds import random_splats

            from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig
            from a3d_cli.gaussians.motion_refine import SdsRefiner
            from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser
            from a3d_cli.stages import sds

            den = MvvdmDenoiser(build_components(dev, torch_dtype("auto", dev, cuda_auto=sds.DEFAULT_CUDA_DTYPE), tiny))
            den.accelerate(dev, compile=False, fused_geglu=fused)
            cfg_field = dataclasses.replace(MotionFieldConfig(), use_delta_scale=True)
            field = MotionField(cfg_field, generator=torch.Generator().manual_seed(0)).to(dev)
            opts = sds.SdsOptions(prompt="a dog", target_size=256) if tiny else sds.SdsOptions(prompt="a dog")
            refiner = SdsRefiner(random_splats(400 if tiny else 20_000, dev), field, den, opts, seed=0)
            call = refiner.step  # type: ignore[assignment]
        if "cudnn_benchmark" in variant:
            torch.backends.cudnn.benchmark = variant["cudnn_benchmark"]
        sync(dev)
        build = time.perf_counter() - t_build
        for _ in range(calls):
            start = time.perf_counter()
            call()
            sync(dev)
            seconds.append(time.perf_counter() - start)
    warm = min(seconds[1:])
    later = sorted(seconds[1:])
    return {
        "device": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu",
        "build_and_setup_seconds": round(build, 2),
        "call_seconds": [round(s, 3) for s in seconds],
        "first_call_surplus_seconds": round(seconds[0] - warm, 2),
        "later_call_median_seconds": round(later[len(later) // 2], 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="mvvideo,sds")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma list of: " + ", ".join(VARIANTS))
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--triton-cache",
        type=Path,
        default=None,
        help="use this Triton cache folder for every variant (e.g. the one `a3d info --warmup` filled); "
        "default: a fresh one per stage",
    )
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test of this script with the tiny MV-VDM")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-variant", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        row = _child(args.child, VARIANTS[args.child_variant], args.calls, args.device, args.tiny)
        Path(args.child_out).write_text(json.dumps(row))
        return
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or args.calls < 2:
        raise SystemExit(
            f"unknown variants {unknown} (known: {', '.join(VARIANTS)})" if unknown else "--calls must be >= 2"
        )
    if any(VARIANTS[n]["cache"] == "fresh" for n in names[1:]):
        raise SystemExit("a fresh-cache variant must come first: the others reuse its cache")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for stage in [s.strip() for s in args.stages.split(",") if s.strip()]:
            cache = args.triton_cache or Path(tmp) / f"triton-{stage}"
            for name in names:
                if VARIANTS[name]["cache"] == "fresh" and (cache.exists() and any(cache.iterdir())):
                    raise SystemExit(f"the fresh-cache variant needs an empty Triton cache; {cache} is not")
                env = {**os.environ, "TRITON_CACHE_DIR": str(cache)}
                out = Path(tmp) / "row.json"
                start = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", stage, "--child-variant", name, "--calls", str(args.calls),
                     "--child-out", str(out), "--device", args.device, *(["--tiny"] if args.tiny else [])],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                row = {"stage": stage, "variant": name, "process_seconds": round(time.perf_counter() - start, 1)}
                if proc.returncode == 0:
                    row.update(json.loads(out.read_text()))
                else:
                    row["error"] = proc.stderr[-1500:]
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("| stage | variant | process s | build + setup s | calls s | first-call surplus s | later calls, median s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        calls = " / ".join(f"{s:.2f}" for s in r.get("call_seconds", []))
        print(f"| {r['stage']} | {r['variant']} | {r['process_seconds']} | {r.get('build_and_setup_seconds')} | "
              f"{calls} | {r.get('first_call_surplus_seconds', r.get('error', '')[-200:])} | {r.get('later_call_median_seconds')} |")  # fmt: skip
    if args.out:
        report = {"benchmark": "first call", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "rows": rows}  # fmt: skip
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
