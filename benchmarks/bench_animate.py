"""Wall time of the whole `a3d animate` chain at the reference sizes, full-size random-weight networks.

Runs the chain's stages in one run folder exactly as `a3d animate MODEL --prompt ...` does (prepare →
mvvideo → reconstruct → sds → mesh-animate → export), but hands mvvideo and sds full-size MV-VDM
components with random weights (no real weights can be had here). The pictures are meaningless; the
arithmetic, memory and wall time are the real ones. One set of components serves both diffusion stages.

Usage:
    python benchmarks/bench_animate.py --device cuda --out animate.json [--compile] [--sds-steps 200]

`--dtype auto` (the default) runs each diffusion stage at its own default precision, as `a3d animate` does
(mvvideo fp16, sds bf16 on CUDA), with one random-weight MV-VDM per precision, the first freed before the
second is built (as a single `a3d animate` holds no model past its stage); a named dtype shares one set.
Each stage's own metrics (its phases, loss summary, acceleration report) are kept in the JSON under `metrics`.

Where imageio-ffmpeg is missing (the lent GPU machine), preview videos are skipped and said so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from a3d_cli.device import torch_dtype  # noqa: E402
from a3d_cli.stages import export, mesh_animate, mvvideo, prepare, reconstruct, sds  # noqa: E402
from a3d_cli.stages.base import Runtime  # noqa: E402


def ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def skip_previews() -> None:
    """Replace the MP4 writer with a no-op (benchmark only: the GPU machine has no ffmpeg)."""
    import a3d_cli.io.video as video

    video.write_mp4 = lambda path, frames, fps=8.0: Path(path).write_bytes(b"")  # type: ignore[assignment]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", type=Path, default=ROOT / "examples" / "assets" / "fox.glb")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"],
                    help="auto: each stage's own default precision (mvvideo fp16, sds bf16 on CUDA)")
    ap.add_argument("--compile", action="store_true", help="regional torch.compile in mvvideo and sds")
    ap.add_argument("--sds-steps", type=int, default=200)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test of this script with the tiny MV-VDM")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from random_mvvdm import build_components

    from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser

    cuda = args.device.startswith("cuda")
    previews = ffmpeg_available()
    if not previews:
        skip_previews()
    rt = Runtime(device=args.device, seed=0)
    prompt = "a fox wags its tail"
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    metrics: dict[str, dict] = {}

    def timed(name: str, call) -> None:  # noqa: ANN001
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = call()
        metrics[name] = json.loads(json.dumps(getattr(result, "metrics", {}), default=str))
        if cuda:
            torch.cuda.synchronize()
            peaks[name] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        seconds[name] = round(time.perf_counter() - start, 2)
        print(f"{name}: {seconds[name]} s, peak {peaks.get(name)} GiB", flush=True)

    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "RUN"
        timed("prepare", lambda: prepare.run(run, prepare.PrepareOptions(model=str(args.model)), rt))
        mv_dtype = torch_dtype(args.dtype, args.device, cuda_auto=mvvideo.DEFAULT_CUDA_DTYPE)
        sds_dtype = torch_dtype(args.dtype, args.device, cuda_auto=sds.DEFAULT_CUDA_DTYPE)
        if not args.tiny:
            seconds["model_build"] = 0.0  # filled in below; its column stays between prepare and mvvideo
        start = time.perf_counter()
        comp = build_components(args.device, mv_dtype, tiny=args.tiny)
        build_seconds = time.perf_counter() - start
        timed(
            "mvvideo",
            lambda: mvvideo.run(
                run, mvvideo.MVVideoOptions(prompt=prompt, dtype=args.dtype, compile=args.compile), rt, components=comp
            ),
        )
        if sds_dtype != mv_dtype:  # as `a3d animate`: mvvideo's networks are freed before sds builds its own
            del comp
            if cuda:
                torch.cuda.empty_cache()
            start = time.perf_counter()
            comp = build_components(args.device, sds_dtype, tiny=args.tiny)
            build_seconds += time.perf_counter() - start
        if not args.tiny:
            seconds["model_build"] = round(build_seconds, 2)
        timed("reconstruct", lambda: reconstruct.run(run, reconstruct.ReconstructOptions(), rt))
        timed(
            "sds",
            lambda: sds.run(
                run,
                sds.SdsOptions(prompt=prompt, steps=args.sds_steps, dtype=args.dtype, compile=args.compile),
                rt,
                denoiser=MvvdmDenoiser(comp),
            ),
        )
        timed("mesh-animate", lambda: mesh_animate.run(run, mesh_animate.MeshAnimateOptions(motion="refined"), rt))
        timed("export", lambda: export.run(run, export.ExportOptions(motion="refined"), rt))
    total = round(time.perf_counter() - wall, 2)
    result = {
        "benchmark": "animate chain",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "dtype": {"mvvideo": str(mv_dtype).replace("torch.", ""), "sds": str(sds_dtype).replace("torch.", "")},
        "compile": args.compile,
        "sds_steps": args.sds_steps,
        "previews_written": previews,
        "seconds": seconds,
        "peak_gib": peaks,
        "metrics": metrics,
        "total_seconds": total,
        "max_peak_gib": max(peaks.values()) if peaks else None,
    }
    print(json.dumps(result, indent=2))
    row = " | ".join(f"{seconds[k]}" for k in seconds)
    dtypes = "/".join(result["dtype"].values())
    print(f"| {result['device']} | {dtypes} | {'compile' if args.compile else 'eager'} | {row} | {total} | {result['max_peak_gib']} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
