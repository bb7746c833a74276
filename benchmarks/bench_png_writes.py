"""Time writing a stage's frames as PNGs: one `save_png` after another against one `save_pngs` call.

The frames are mvvideo's by default (4 views × 16 frames at 256², RGB): a smooth gradient with 5 % noise,
which compresses about as slowly as rendered frames do. Both ways write the same bytes (checked).

Usage:
    python benchmarks/bench_png_writes.py --out png_writes.json
    python benchmarks/bench_png_writes.py --frames 21 --size 576    # orbit's frames
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from a3d_cli.io.images import PNG_WRITERS, save_png, save_pngs  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, args.size)
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    frames = (
        torch.stack([xx, yy, xx * yy], -1)[None] + 0.05 * torch.randn(args.frames, args.size, args.size, 3, generator=g)
    ).clamp(0, 1)
    one_by_one, together = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            start = time.perf_counter()
            for i in range(args.frames):
                save_png(d / f"one_{i}.png", frames[i])
            one_by_one.append(time.perf_counter() - start)
            start = time.perf_counter()
            save_pngs([d / f"many_{i}.png" for i in range(args.frames)], frames)
            together.append(time.perf_counter() - start)
            same = all(
                (d / f"one_{i}.png").read_bytes() == (d / f"many_{i}.png").read_bytes() for i in range(args.frames)
            )
    result = {
        "benchmark": "png_writes",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "threads": PNG_WRITERS,
        "frames": args.frames,
        "size": args.size,
        "save_png_seconds": [round(s, 3) for s in one_by_one],
        "save_pngs_seconds": [round(s, 3) for s in together],
        "same_bytes": same,
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
