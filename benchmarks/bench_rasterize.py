"""Rasterizer benchmark: reference-vs-gsplat parity and forward+backward timings.

Usage:
    # GPU machine (gsplat JIT-compiles on first use, ~40 s): parity on random scenes, then timings of both
    # backends at 64 cameras × 256² × {10k, 100k} splats.
    python benchmarks/bench_rasterize.py --device cuda --out rasterize_cuda.json
    # CPU: the PyTorch reference at 5k splats × 16 views × 128², and a reconstruct-like 4 frames × 4 views.
    python benchmarks/bench_rasterize.py --device cpu --out rasterize_cpu.json

What it measures, honestly: every timed region is warmed up first, bracketed by torch.cuda.synchronize(),
repeated, and reported as the median ("fwd" runs under torch.no_grad, "fwd+bwd" builds the graph and
back-propagates a fixed random cotangent into all five splat inputs); peak memory is torch.cuda.max_memory_allocated() over one timed
forward+backward (CPU runs report the machine's load average instead, since shared cores skew timings).
The reference renders the 64 cameras in camera chunks when one call does not fit in memory; the chunk
used is reported. The scene is an object-like shell of splats (the kind of asset a3d renders) seen by
orbit cameras at MV-VDM's distance and field of view. Results go to --out (JSON) and stdout (markdown).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import sync  # noqa: E402

from a3d_cli.kernels import available_backends, rasterize  # noqa: E402
from a3d_cli.render.cameras import orbit_cameras  # noqa: E402

INPUT_NAMES = ("means", "quats", "scales", "opacities", "colors")


# ------------------------------------------------------------------------------------------------- scenes
def make_scene(n: int, views: int, size: int, seed: int, device: str, sh_degree: int | None = None):
    """N splats on a noisy shell of radius 0.8 (sized from their spacing) and `views` orbit cameras.

    Returns:
        (params dict of leaf tensors, viewmats [V, 4, 4], Ks [V, 3, 3]).
    """
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    means = d * 0.8 * (1 + 0.05 * torch.randn(n, 1, generator=g))  # [N, 3]
    spacing = math.sqrt(4 * math.pi * 0.64 / n)
    scales = (torch.rand(n, 3, generator=g) * 0.8 + 0.3) * spacing  # [N, 3]
    quats = torch.randn(n, 4, generator=g)  # [N, 4]
    opacities = torch.rand(n, generator=g) * 0.5 + 0.5  # [N]
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g)  # [N, 3]
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.3  # [N, K, 3]
    elev = [15.0 + 30.0 * math.sin(i * 0.7) for i in range(views)]
    azim = [360.0 * i / views for i in range(views)]
    cams = orbit_cameras(elev, azim, radius=3.0, fov_deg=40.0)
    params = {k: v.to(device) for k, v in zip(INPUT_NAMES, (means, quats, scales, opacities, colors), strict=True)}
    return params, cams.viewmats.to(device), cams.Ks(size, size).to(device)


def leaves(params: dict) -> dict:
    return {k: v.detach().clone().requires_grad_() for k, v in params.items()}


# --------------------------------------------------------------------------------------------- utilities
def render_loss(
    p: dict,
    viewmats,
    Ks,
    size: int,
    backend: str,
    cot: torch.Tensor | None,
    sh_degree=None,
    cam_chunk: int | None = None,
    backward: bool = True,
) -> None:
    """Forward (and backward of Σ colors·cot) over all cameras, `cam_chunk` cameras per call."""
    c = viewmats.shape[0]
    step = cam_chunk or c
    for s in range(0, c, step):
        out = rasterize(p["means"], p["quats"], p["scales"], p["opacities"], p["colors"], viewmats[s : s + step],
                        Ks[s : s + step], size, size, sh_degree=sh_degree, backend=backend)  # fmt: skip
        if backward:
            (out.colors * cot[s : s + step]).sum().backward()
        del out


def time_backend(params: dict, viewmats, Ks, size: int, backend: str, device: str, repeats: int,
                 cam_chunk: int | None = None) -> dict:  # fmt: skip
    """Median forward and forward+backward wall time (ms) and peak memory of one forward+backward."""
    gen = torch.Generator().manual_seed(1)
    cot = torch.randn(viewmats.shape[0], size, size, 3, generator=gen).to(device)
    p = leaves(params)
    for _ in range(2):  # warm-up (also JIT-compiles gsplat on its first call)
        render_loss(p, viewmats, Ks, size, backend, cot, cam_chunk=cam_chunk)
    fwd, both = [], []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            render_loss(p, viewmats, Ks, size, backend, None, cam_chunk=cam_chunk, backward=False)
        sync(device)
        t1 = time.perf_counter()
        render_loss(p, viewmats, Ks, size, backend, cot, cam_chunk=cam_chunk)
        sync(device)
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        both.append(t2 - t1)
    peak = None
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        render_loss(p, viewmats, Ks, size, backend, cot, cam_chunk=cam_chunk)
        sync(device)
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return {"fwd_ms": 1e3 * statistics.median(fwd), "fwd_bwd_ms": 1e3 * statistics.median(both), "peak_mib": peak}


def time_with_chunking(params, viewmats, Ks, size, backend, device, repeats) -> dict:
    """time_backend over all cameras at once, halving the camera chunk on out-of-memory."""
    chunk = viewmats.shape[0]
    while True:
        try:
            res = time_backend(params, viewmats, Ks, size, backend, device, repeats, cam_chunk=chunk)
            res["camera_chunk"] = chunk
            return res
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if chunk == 1:
                return {"fwd_ms": None, "fwd_bwd_ms": None, "peak_mib": None, "camera_chunk": 0, "error": "OOM"}
            chunk //= 2


# ----------------------------------------------------------------------------------------------- parity
def parity(n: int, views: int, size: int, seed: int, device: str, sh_degree: int | None) -> dict:
    """Reference vs gsplat on one random scene: image differences and per-input gradient errors."""
    params, viewmats, Ks = make_scene(n, views, size, seed, device, sh_degree)
    gen = torch.Generator().manual_seed(seed + 1)
    bg = torch.rand(views, 3, generator=gen).to(device)
    outs, grads = {}, {}
    for backend in ("torch", "gsplat"):
        p = leaves(params)
        out = rasterize(*p.values(), viewmats, Ks, size, size, sh_degree=sh_degree, backgrounds=bg,
                        render_mode="RGB+ED", backend=backend)  # fmt: skip
        outs[backend] = out
        gen_c = torch.Generator().manual_seed(seed + 2)
        tensors = [out.colors, out.alphas, out.depths]
        cots = [torch.randn(t.shape, generator=gen_c).to(device) for t in tensors]
        g = torch.autograd.grad(tensors, list(p.values()), cots)
        grads[backend] = dict(zip(INPUT_NAMES, g, strict=True))
    r, s = outs["torch"], outs["gsplat"]
    res = {"splats": n, "cameras": views, "size": size, "sh_degree": sh_degree}
    for name in ("colors", "alphas", "depths"):
        a, b = getattr(r, name).detach(), getattr(s, name).detach()
        if name == "depths":  # compare expected depth only where the pixel is covered
            cov = s.alphas.detach() > 0.05
            a, b = a[cov], b[cov]
        diff = (a - b).abs()
        res[f"{name}_max_abs"] = float(diff.max())
        res[f"{name}_mean_abs"] = float(diff.mean())
    for name in INPUT_NAMES:
        a, b = grads["torch"][name], grads["gsplat"][name]
        res[f"grad_{name}_rel"] = float((a - b).norm() / b.norm().clamp(min=1e-20))
        res[f"grad_{name}_cos"] = float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
    return res


# ------------------------------------------------------------------------------------------------ report
def markdown(report: dict) -> str:
    lines = [f"Device: {report['device']}; torch {report['torch']}; gsplat {report.get('gsplat')}; {report['date']}"]
    if report.get("parity"):
        lines += ["", "| splats | cams | size | SH | colors max/mean abs | alphas max/mean abs | depths max/mean abs | "
                  "grad rel err (means, quats, scales, opac, colors) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for p in report["parity"]:
            grads = ", ".join(f"{p[f'grad_{k}_rel']:.1e}" for k in INPUT_NAMES)
            lines.append(
                f"| {p['splats']} | {p['cameras']} | {p['size']} | {p['sh_degree']} | "
                f"{p['colors_max_abs']:.1e} / {p['colors_mean_abs']:.1e} | "
                f"{p['alphas_max_abs']:.1e} / {p['alphas_mean_abs']:.1e} | "
                f"{p['depths_max_abs']:.1e} / {p['depths_mean_abs']:.1e} | {grads} |"
            )
    lines += ["", "| backend | splats | cams (×frames) | size | fwd ms | fwd+bwd ms | peak MiB | camera chunk |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for t in report["timings"]:

        def fmt(v, spec=".1f"):
            return "—" if v is None else format(v, spec)

        cams = f"{t['cameras']}" + (f" × {t['frames']}" if t.get("frames") else "")
        lines.append(
            f"| {t['backend']} | {t['splats']} | {cams} | {t['size']}² | {fmt(t['fwd_ms'])} | "
            f"{fmt(t['fwd_bwd_ms'])} | {fmt(t.get('peak_mib'))} | {t.get('camera_chunk', '—')} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--out", type=Path, default=Path("bench_rasterize.json"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--splats", type=int, nargs="+", default=None, help="override the splat counts timed")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "parity": [],
        "timings": [],
    }
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("--device cuda: no CUDA device visible")
        report["device"] = torch.cuda.get_device_name()
        t0 = time.perf_counter()
        backends = available_backends()
        report["gsplat_probe_s"] = time.perf_counter() - t0
        if "gsplat" not in backends:
            sys.exit("gsplat's CUDA extension did not load; run with VERBOSE=1 to see why")
        import gsplat

        report["gsplat"] = gsplat.__version__
        # 1. Parity on random scenes (all pixels, all inputs' gradients).
        for n, views, size, seed, sh in [(2000, 8, 128, 0, None), (20000, 4, 256, 1, None), (5000, 4, 128, 2, 3)]:
            report["parity"].append(parity(n, views, size, seed, "cuda", sh))
        # 2. Timings at 64 cameras × 256².
        for n in args.splats or [10_000, 100_000]:
            params, viewmats, Ks = make_scene(n, 64, 256, 3, "cuda")
            for backend in ("gsplat", "torch"):
                res = time_with_chunking(params, viewmats, Ks, 256, backend, "cuda", args.repeats)
                report["timings"].append({"backend": backend, "splats": n, "cameras": 64, "size": 256, **res})
                torch.cuda.empty_cache()
    else:
        report["device"] = f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"
        report["load_average_before"] = os.getloadavg()
        for n in args.splats or [5000]:
            # 16 views at 128², all in one call.
            params, viewmats, Ks = make_scene(n, 16, 128, 3, "cpu")
            res = time_backend(params, viewmats, Ks, 128, "torch", "cpu", args.repeats)
            report["timings"].append({"backend": "torch", "splats": n, "cameras": 16, "size": 128, **res})
            # Reconstruct-like: 4 frames of moved splats × 4 views in one call.
            params, viewmats, Ks = make_scene(n, 4, 128, 4, "cpu")
            frames = torch.stack([params["means"] + 0.01 * i for i in range(4)])  # [F, N, 3]
            params = {**params, "means": frames}
            res = time_backend(params, viewmats, Ks, 128, "torch", "cpu", args.repeats)
            report["timings"].append({"backend": "torch", "splats": n, "cameras": 4, "frames": 4, "size": 128, **res})
        report["load_average_after"] = os.getloadavg()

    args.out.write_text(json.dumps(report, indent=2))
    print(markdown(report))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
