"""GPU time of the fixed-length tile lists against gsplat's own, at the motion fit's sizes (CUDA only).

Times, with CUDA events over repeated calls after a warm-up, for F frames × MV-VDM's 4 views of N splats at S²:
- `isect`: gsplat's `isect_tiles` + `isect_offset_encode` against `fixed_tile_lists` + `tile_offsets`
  (capacity = the count × the fit's margin);
- `render`: forward + backward of `gsplat.rasterization` against `rasterize_fixed`, launched eagerly, and
  `rasterize_fixed` replayed from a CUDA graph (what the whole-step recording runs).

    python benchmarks/bench_tile_lists.py --frames 1,8,15 --out tile_lists.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scene(frames: int, n: int, size: int, seed: int = 0):  # noqa: ANN201
    """Splats in the unit-ish ball, sized like the fit's (1–3 % of the radius), MV-VDM's orbit cameras."""
    from a3d_cli.render.cameras import mvvdm_cameras

    g = torch.Generator(device="cuda").manual_seed(seed)
    dev = "cuda"
    means = (torch.rand(frames, n, 3, generator=g, device=dev) - 0.5) * 0.9
    quats = torch.nn.functional.normalize(torch.randn(frames, n, 4, generator=g, device=dev), dim=-1)
    scales = torch.rand(frames, n, 3, generator=g, device=dev) * 0.02 + 0.01
    opacities = torch.rand(frames, n, generator=g, device=dev) * 0.9 + 0.05
    colors = torch.rand(frames, n, 3, generator=g, device=dev)
    cams = mvvdm_cameras()
    viewmats = cams.viewmats.to(dev).expand(frames, -1, 4, 4).contiguous()
    ks = cams.Ks(size, size).to(dev).expand(frames, -1, 3, 3).contiguous()
    bgs = torch.full((frames, viewmats.shape[1], 3), 0.5, device=dev)
    return means, quats, scales, opacities, colors, viewmats, ks, bgs


def timed(fn, reps: int) -> float:  # noqa: ANN001
    """Milliseconds per call (CUDA events, after two warm-up calls)."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def measure(frames: int, n: int, size: int, reps: int, margin: float) -> dict:
    from gsplat import rasterization
    from gsplat.cuda._wrapper import fully_fused_projection, isect_offset_encode, isect_tiles

    from a3d_cli.kernels.rasterize_fixed import TILE_SIZE, fixed_looks, intersections_needed, rasterize_fixed
    from a3d_cli.kernels.tile_lists import fixed_tile_lists, tile_offsets

    means, quats, scales, opac, colors, viewmats, ks, bgs = scene(frames, n, size)
    looks = fixed_looks(opac, colors, None, viewmats, ks, bgs)
    need, _ = intersections_needed(means, quats, scales, looks, size, size)
    capacity = int(need * margin)
    tiles = -(-size // TILE_SIZE)
    with torch.no_grad():
        radii, means2d, depths, _, _ = fully_fused_projection(
            means, None, quats, scales, viewmats, ks, size, size, packed=False, opacities=opac
        )
    images = frames * viewmats.shape[1]
    flat = (means2d.reshape(images, n, 2), radii.reshape(images, n, 2), depths.reshape(images, n))

    def gsplat_isect() -> None:
        _, ids, _ = isect_tiles(*flat, TILE_SIZE, tiles, tiles, n_images=images)
        isect_offset_encode(ids, images, tiles, tiles)

    def fixed_isect() -> None:
        lists = fixed_tile_lists(*flat, TILE_SIZE, tiles, tiles, capacity, filler=n - 1)
        tile_offsets(lists.isect_ids, images, tiles, tiles)

    geo = [t.clone().requires_grad_(True) for t in (means, quats, scales)]
    w = torch.rand(frames, viewmats.shape[1], size, size, 3, device="cuda")

    def gsplat_render() -> None:
        rgb, alpha, _ = rasterization(*geo, opac, colors, viewmats, ks, size, size, packed=False, backgrounds=bgs)
        ((rgb * w).sum() + alpha.sum()).backward()

    def fixed_render() -> None:
        out = rasterize_fixed(*geo, looks, size, size, capacity)
        ((out.colors * w).sum() + out.alphas.sum()).backward()

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fixed_render()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fixed_render()
    return {
        "frames": frames, "views": viewmats.shape[1], "splats": n, "size": size, "intersections": need,
        "capacity": capacity,
        "isect_ms": {"gsplat": round(timed(gsplat_isect, reps), 4), "fixed": round(timed(fixed_isect, reps), 4)},
        "render_fwd_bwd_ms": {
            "gsplat": round(timed(gsplat_render, reps), 4),
            "fixed": round(timed(fixed_render, reps), 4),
            "fixed, graph replay": round(timed(graph.replay, reps), 4),
        },
    }  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", default="1,4,8,15", help="comma list of frame counts")
    ap.add_argument("--splats", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--margin", type=float, default=1.5, help="capacity ÷ intersections (the fit's LIST_MARGIN)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_tile_lists.py needs a CUDA GPU and gsplat")
    rows = []
    for f in (int(v) for v in args.frames.split(",")):
        rows.append(measure(f, args.splats, args.size, args.reps, args.margin))
        print(json.dumps(rows[-1]))
    if args.out:
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
