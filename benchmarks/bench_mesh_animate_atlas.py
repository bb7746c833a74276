"""Time `a3d mesh-animate` (CPU) on a run folder whose processed mesh holds a large texture atlas.

Usage:
    python benchmarks/bench_mesh_animate_atlas.py --work /tmp/atlas --out atlas.json
    python benchmarks/bench_mesh_animate_atlas.py --work /tmp/atlas --assets blend --tree /path/to/other/checkout

The run folders are built once into --work (never inside the repository) and reused: `a3d prepare` of a
synthetic GLB (the bumpy sphere of `bench_prepare_large.py`, `--cells`² quads in 16 × 16 UV charts, one texture
of `--side`² texels: at 8192 the whole atlas budget, `appearance.ATLAS_TEXELS`), then a motion of 16 frames (a
tiny `MotionField` with perturbed parameters, as the tests make one without a GPU), so only `mesh-animate` runs
in the measured process:

- `opaque`: the texture a JPEG (smooth colour plus pixel noise, quality 90): `prepare` writes an RGB atlas;
- `blend`: the texture an RGBA PNG of the same colours with an alpha ramp, the material BLEND: an RGBA atlas.

Each `mesh-animate` (morph targets, the defaults, `--force`) runs in its own process (the code of --tree) under
a small parent that reports the child's peak resident memory (`ru_maxrss`) and CPU seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_prepare_large import _MEASURE, GlbChunks, chart_surface, jpeg_texture  # noqa: E402

FRAMES = 16
ASSETS = ("opaque", "blend")


def rgba_png_texture(side: int, seed: int) -> bytes:
    """A side² RGBA PNG: `jpeg_texture`'s colours with alpha ramping from 32 to 255 across the columns."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(jpeg_texture(side, seed))).convert("RGB"))
    alpha = np.broadcast_to(np.linspace(32, 255, side).astype(np.uint8)[None, :, None], (side, side, 1))
    out = io.BytesIO()
    Image.fromarray(np.concatenate([rgb, alpha], axis=2)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def write_asset(path: Path, kind: str, cells: int, side: int) -> None:
    """A GLB of `chart_surface(cells, 16, 1)` with one `kind` texture (see the module docstring)."""
    ((pos, uv, tri),) = chart_surface(cells, 16, 1)
    glb = GlbChunks()
    accessors = [
        {"bufferView": glb.view(pos.tobytes(), 34962), "componentType": 5126, "count": len(pos), "type": "VEC3",
         "min": pos.min(0).tolist(), "max": pos.max(0).tolist()},
        {"bufferView": glb.view(uv.tobytes(), 34962), "componentType": 5126, "count": len(uv), "type": "VEC2"},
        {"bufferView": glb.view(tri.tobytes(), 34963), "componentType": 5125, "count": tri.size, "type": "SCALAR"},
    ]  # fmt: skip
    data, mime = (jpeg_texture(side, 0), "image/jpeg") if kind == "opaque" else (rgba_png_texture(side, 0), "image/png")
    pbr = {"baseColorTexture": {"index": 0}, "metallicFactor": 0, "roughnessFactor": 1}
    material: dict = {"pbrMetallicRoughness": pbr}
    if kind == "blend":
        material["alphaMode"] = "BLEND"
    doc = {"meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "material": 0}]}],
           "accessors": accessors, "images": [{"bufferView": glb.view(data), "mimeType": mime}],
           "textures": [{"source": 0}], "materials": [material]}  # fmt: skip
    glb.write(path, doc)


def write_motion(run: Path) -> None:
    """`motion/coarse.safetensors`: a tiny field of FRAMES frames, perturbed so that it moves the splats."""
    import torch

    from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig
    from a3d_cli.gaussians.motion_io import save_motion
    from a3d_cli.gaussians.ply import read_ply

    g = torch.Generator().manual_seed(1)
    field = MotionField(MotionFieldConfig.tiny(num_frames=FRAMES), generator=g)
    with torch.no_grad():
        for p in field.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    save_motion(run / "motion" / "coarse.safetensors", field, read_ply(run / "static" / "gaussians.ply"))


def build_run(work: Path, kind: str, cells: int, side: int) -> Path:
    """The run folder of `kind` (prepared with this checkout's code, a motion added), built once."""
    run = work / f"run-{kind}-{side}"
    if (run / "motion" / "coarse.safetensors").is_file():
        return run
    model = work / f"{kind}-{side}.glb"
    write_asset(model, kind, cells, side)
    cmd = [sys.executable, "-m", "a3d_cli.cli", "--device", "cpu", "prepare", str(model), "-o", str(run), "--force"]
    subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    write_motion(run)
    return run


def run_mesh_animate(run: Path, tree: Path) -> dict:
    """One `a3d mesh-animate --force` in a fresh process of the code in `tree`: exit code, wall s, CPU s, the
    stage's s, peak RSS, and the written GLB's size."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "a3d_cli.cli", "--device", "cpu", "mesh-animate",
           str(run.resolve()), "--force"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rc, wall, peak, cpu = proc.stderr.strip().splitlines()[-1].split()
    stage = json.loads((run / "a3d.json").read_text())["stages"].get("mesh-animate", {})
    glb = run / "export" / "animated.glb"
    return {"exit": int(rc), "wall_s": round(float(wall), 1), "cpu_s": round(float(cpu), 1),
            "stage_s": stage.get("seconds"), "peak_gb": round(int(peak) / 1e9, 2),
            "glb_mb": round(glb.stat().st_size / 1e6, 1) if glb.is_file() else None}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the assets and run folders")
    parser.add_argument("--assets", default=",".join(ASSETS), help="comma-separated: opaque, blend")
    parser.add_argument("--side", type=int, default=8192, help="the texture's side in texels")
    parser.add_argument("--cells", type=int, default=128, help="quads a side of the surface (2 triangles each)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the a3d checkout whose mesh-animate runs")
    parser.add_argument("--out", type=Path, help="JSON file for the figures")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}
    print("| run | mesh.glb MB | wall s | CPU s | stage s | peak GB | animated.glb MB |\n|---|---|---|---|---|---|---|")
    for kind in args.assets.split(","):
        run = build_run(args.work, kind, args.cells, args.side)
        row = run_mesh_animate(run, args.tree.resolve())
        row["mesh_glb_mb"] = round((run / "source" / "mesh.glb").stat().st_size / 1e6, 1)
        results[kind] = row
        print(f"| {kind} | {row['mesh_glb_mb']} | {row['wall_s']} | {row['cpu_s']} | {row['stage_s']} | "
              f"{row['peak_gb']} | {row['glb_mb']} |", flush=True)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
