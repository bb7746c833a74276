"""Time `a3d prepare` (CPU) on large synthetic assets: wall and CPU seconds, the stage's own seconds and peak memory.

Usage:
    python benchmarks/bench_prepare_large.py --work /tmp/scale --out prepare_large.json
    python benchmarks/bench_prepare_large.py --work /tmp/scale --assets splats-3m --tree /path/to/other/checkout

The assets are built once into --work (several GB at full size; never inside the repository) and reused:

- `scan-1tex`: a photogrammetry-like GLB, a bumpy sphere of 2.1M triangles cut into 16 × 16 UV charts (UV seams,
  as scans have), one 8192² JPEG base-colour texture;
- `scan-4tex`: the same surface in 4 primitives, each with its own material and 8192² JPEG;
- `obj-50mat`: an OBJ + MTL of 1.04M triangles, 50 materials, each with its own 1024² JPEG (`map_Kd`);
- `tex-N` (any N, e.g. `tex-100`): a GLB of N small quads, each with its own material and its own 4096² PNG of one
  colour (a 1-bit palette image of about 2 kB each: `tex-100` is a 0.2 MB file
  that declares 100 × 64 MB of RGBA texels), the hostile or careless asset a
  total texture budget is for;
- `stl-2m`: a binary STL of 2.0M triangles (a bumpy sphere, 1000 × 1000 quads, every corner written apart as STL
  does), what a 3D-print sculpt looks like;
- `splats-1m`, `splats-3m`, `splats-6m`: Inria 3DGS PLYs (binary, SH degree 3: 62 float properties) of 1M, 3M and
  6M splats.

`--scale` shrinks every asset (triangles, splats and texture sides by that factor, at least a little of each) for
a quick look. Each `prepare` runs in its own process (the code of --tree, default this checkout) under a
small parent that reports the child's peak resident memory (`ru_maxrss`); the stage's seconds come from the run
folder's manifest. Synthetic textures are smooth colour plus pixel noise (JPEG quality 90), which compress
about as a photo does.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SH_REST = 45  # f_rest_* of SH degree 3


def jpeg_texture(size: int, seed: int) -> bytes:
    """A size² JPEG: a smooth random colour field plus per-pixel noise, like a photo texture."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (max(2, size // 64), max(2, size // 64), 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR)).astype(np.int16)
    img += rng.integers(-12, 12, (size, size), dtype=np.int16)[..., None]
    out = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def chart_surface(cells: int, charts: int, parts: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A bumpy sphere of cells × cells quads (2 triangles each) cut into charts × charts UV charts with their own
    vertices (positions shared along chart borders, UVs not: seams), the charts dealt round-robin to `parts`
    parts, each part's charts laid out side by side in its own [0, 1]² texture.

    Returns:
        per part: positions [V, 3] float32, UVs [V, 2] float32, triangles [T, 3] uint32.
    """
    k = cells // charts
    jj, ii = np.meshgrid(np.arange(k + 1), np.arange(k + 1))  # [k+1, k+1] column, row inside a chart
    corner = (ii[:-1, :-1] * (k + 1) + jj[:-1, :-1]).reshape(-1)  # [k²] first vertex of each quad
    quads = np.stack([corner, corner + 1, corner + k + 2, corner, corner + k + 2, corner + k + 1], -1)
    tri = quads.reshape(-1, 3).astype(np.uint32)  # [2k², 3]
    per_side = int(np.ceil(np.sqrt(charts * charts / parts)))  # charts per texture row
    pieces: list[list] = [[] for _ in range(parts)]
    for c in range(charts * charts):
        gi, gj = (c // charts) * k + ii, (c % charts) * k + jj  # [k+1, k+1] global grid row, column
        theta = gi / cells * np.pi * 0.98 + 0.01 * np.pi
        phi = gj / cells * 2 * np.pi
        r = 1 + 0.02 * np.sin(13 * theta) * np.cos(17 * phi) + 0.003 * np.sin(gi * 12.9898 + gj * 78.233 + 0.5 * gi * gj % 7)
        pos = np.stack([r * np.sin(theta) * np.cos(phi), r * np.cos(theta), r * np.sin(theta) * np.sin(phi)], -1)
        part = pieces[c % parts]
        u0, v0 = (len(part) % per_side) / per_side, (len(part) // per_side) / per_side
        uv = np.stack([u0 + (jj / k) * 0.98 / per_side, v0 + (ii / k) * 0.98 / per_side], -1)
        part.append((pos.reshape(-1, 3).astype(np.float32), uv.reshape(-1, 2).astype(np.float32)))
    out = []
    for part in pieces:
        n = (k + 1) ** 2
        out.append(
            (
                np.concatenate([p for p, _ in part]),
                np.concatenate([uv for _, uv in part]),
                np.concatenate([tri + i * n for i in range(len(part))]),
            )
        )
    return out


class GlbChunks:
    """The binary chunk of a GLB being written (`view` appends data as a bufferView) and the file's writer."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        """Append `data` (4-byte aligned) as a bufferView, with `target` if given; its index."""
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        entry = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        self.views.append(entry | ({"target": target} if target else {}))
        self.blob.extend(data)
        return len(self.views) - 1

    def write(self, path: Path, doc: dict) -> None:
        """Write the GLB of `doc` (meshes, accessors, materials ...: one scene of one node holding mesh 0)."""
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        doc = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
               "bufferViews": self.views, "buffers": [{"byteLength": len(self.blob)}], **doc}  # fmt: skip
        text = json.dumps(doc).encode()
        text += b" " * (-len(text) % 4)
        with open(path, "wb") as f:
            f.write(struct.pack("<4sII", b"glTF", 2, 28 + len(text) + len(self.blob)))
            f.write(struct.pack("<II", len(text), 0x4E4F534A) + text)
            f.write(struct.pack("<II", len(self.blob), 0x004E4942) + bytes(self.blob))


def write_scan_glb(path: Path, cells: int, textures: int, texture_size: int) -> None:
    """A GLB of `chart_surface(cells, 16, textures)`: one primitive, material and JPEG per part."""
    glb = GlbChunks()
    view = glb.view
    accessors: list[dict] = []
    prims, images, materials = [], [], []

    for m, (pos, uv, tri) in enumerate(chart_surface(cells, 16, textures)):
        a = len(accessors)
        accessors += [
            {"bufferView": view(pos.tobytes(), 34962), "componentType": 5126, "count": len(pos), "type": "VEC3",
             "min": pos.min(0).tolist(), "max": pos.max(0).tolist()},
            {"bufferView": view(uv.tobytes(), 34962), "componentType": 5126, "count": len(uv), "type": "VEC2"},
            {"bufferView": view(tri.tobytes(), 34963), "componentType": 5125, "count": tri.size, "type": "SCALAR"},
        ]  # fmt: skip
        images.append({"bufferView": view(jpeg_texture(texture_size, m)), "mimeType": "image/jpeg"})
        materials.append({"pbrMetallicRoughness": {"baseColorTexture": {"index": m}, "metallicFactor": 0, "roughnessFactor": 1}})
        prims.append({"attributes": {"POSITION": a, "TEXCOORD_0": a + 1}, "indices": a + 2, "material": m})
    textures = [{"source": i, "sampler": 0} for i in range(len(images))]
    doc = {"meshes": [{"primitives": prims}], "accessors": accessors, "images": images,
           "textures": textures, "samplers": [{}], "materials": materials}  # fmt: skip
    glb.write(path, doc)


def solid_png(size: int, colour: tuple[int, int, int]) -> bytes:
    """A size² PNG of one colour, a 1-bit palette image (4096² is about 2 kB)."""
    from PIL import Image

    out = io.BytesIO()
    image = Image.new("P", (size, size), 0)
    image.putpalette([*colour, *[0] * 765])
    image.save(out, "PNG", bits=1)
    return out.getvalue()


def write_many_textures_glb(path: Path, count: int, texture_size: int) -> None:
    """A GLB of `count` quads in a row, each a primitive with its own material and solid-colour PNG."""
    glb = GlbChunks()
    view = glb.view
    accessors: list[dict] = []
    prims, images, materials = [], [], []

    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    tri = np.array([0, 1, 2, 0, 2, 3], np.uint32)
    for m in range(count):
        pos = np.array([[m, 0, 0], [m + 0.9, 0, 0], [m + 0.9, 0.9, 0], [m, 0.9, 0]], np.float32)
        a = len(accessors)
        accessors += [
            {"bufferView": view(pos.tobytes(), 34962), "componentType": 5126, "count": 4, "type": "VEC3",
             "min": pos.min(0).tolist(), "max": pos.max(0).tolist()},
            {"bufferView": view(uv.tobytes(), 34962), "componentType": 5126, "count": 4, "type": "VEC2"},
            {"bufferView": view(tri.tobytes(), 34963), "componentType": 5125, "count": 6, "type": "SCALAR"},
        ]  # fmt: skip
        colour = (m * 37 % 256, m * 91 % 256, 255 - m * 53 % 256)
        images.append({"bufferView": view(solid_png(texture_size, colour)), "mimeType": "image/png"})
        materials.append({"pbrMetallicRoughness": {"baseColorTexture": {"index": m}, "metallicFactor": 0, "roughnessFactor": 1}})
        prims.append({"attributes": {"POSITION": a, "TEXCOORD_0": a + 1}, "indices": a + 2, "material": m})
    doc = {"meshes": [{"primitives": prims}], "accessors": accessors, "images": images,
           "textures": [{"source": i} for i in range(len(images))], "materials": materials}  # fmt: skip
    glb.write(path, doc)


def write_obj(folder: Path, cells: int, materials: int, texture_size: int) -> Path:
    """`folder/model.obj` + `model.mtl` + `tex/mat{i}.jpg` of `chart_surface(cells, 10, materials)`."""
    (folder / "tex").mkdir(parents=True, exist_ok=True)
    (folder / "model.mtl").write_text("".join(f"newmtl mat{m}\nKd 1 1 1\nmap_Kd tex/mat{m}.jpg\n" for m in range(materials)))
    for m in range(materials):
        (folder / f"tex/mat{m}.jpg").write_bytes(jpeg_texture(texture_size, m))
    with open(folder / "model.obj", "w") as f:
        f.write("mtllib model.mtl\n")
        first = 1
        for m, (pos, uv, tri) in enumerate(chart_surface(cells, 10, materials)):
            np.savetxt(f, pos, fmt="v %.6f %.6f %.6f")
            np.savetxt(f, uv, fmt="vt %.6f %.6f")
            f.write(f"usemtl mat{m}\n")
            np.savetxt(f, np.repeat(tri.astype(np.int64) + first, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
            first += len(pos)
    return folder / "model.obj"


def write_stl(path: Path, side: int) -> None:
    """A binary STL of a bumpy sphere cut into side × side quads (2 · side · (side − 1) triangles), each
    triangle's corners written apart (as every STL holds them), facet normals zero (as many writers leave them)."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, side, endpoint=False), np.linspace(0.01, np.pi - 0.01, side))
    r = 10 + 0.3 * np.sin(7 * u) * np.sin(5 * v)
    points = np.stack([r * np.sin(v) * np.cos(u), r * np.sin(v) * np.sin(u), r * np.cos(v)], -1).reshape(-1, 3)
    grid = np.arange(side * side).reshape(side, side)
    a, b, c, d = grid[:-1], np.roll(grid, -1, 1)[:-1], grid[1:], np.roll(grid, -1, 1)[1:]
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
    triangles = np.zeros(len(faces), dtype=record)
    triangles["corners"] = points[faces]
    path.write_bytes(b"a3d benchmark".ljust(80, b" ") + struct.pack("<I", len(faces)) + triangles.tobytes())


def write_splat_ply(path: Path, n: int) -> None:
    """An Inria 3DGS PLY of n splats on a shell (radii 1, 1.6, 0.8), SH degree 3, small log-scales (−5)."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *[f"f_rest_{i}" for i in range(SH_REST)],
             "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        props = "".join(f"property float {p}\n" for p in names)
        f.write(f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n{props}end_header\n".encode())
        for start in range(0, n, 500_000):
            m = min(500_000, n - start)
            row = np.zeros((m, len(names)), np.float32)
            d = rng.standard_normal((m, 3))
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            row[:, :3] = d * (1 + 0.05 * rng.standard_normal((m, 1))) * np.array([1.0, 1.6, 0.8])
            row[:, 6:9] = rng.normal(0, 1, (m, 3))
            row[:, 9 : 9 + SH_REST] = rng.normal(0, 0.1, (m, SH_REST))
            row[:, 9 + SH_REST] = rng.normal(1, 2, m)
            row[:, 10 + SH_REST : 13 + SH_REST] = rng.normal(-5, 0.7, (m, 3))
            row[:, 13 + SH_REST :] = rng.standard_normal((m, 4))
            f.write(row.tobytes())


def assets(scale: float, names: tuple[str, ...] = ()) -> dict[str, tuple[str, Callable[[Path], Path]]]:
    """name → (file name in --work, builder writing it into a folder and returning the input's path); `names` adds
    the `tex-N` assets it names."""

    def cells(full: int, charts: int) -> int:
        return max(2 * charts, round(full * scale / charts) * charts)  # whole charts

    def side(full: int) -> int:
        return max(64, int(full * scale))

    def scan(textures: int) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            write_scan_glb(folder / f"scan-{textures}tex.glb", cells(1024, 16), textures, side(8192))
            return folder / f"scan-{textures}tex.glb"

        return build

    def splats(n: int) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            write_splat_ply(folder / f"splats-{n}.ply", max(1000, int(n * scale)))
            return folder / f"splats-{n}.ply"

        return build

    def textures(count: int) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            write_many_textures_glb(folder / f"tex-{count}.glb", count, side(4096))
            return folder / f"tex-{count}.glb"

        return build

    many = {n: (f"{n}.glb", textures(int(n[4:]))) for n in names if n.startswith("tex-") and n[4:].isdigit()}
    return many | {
        "scan-1tex": ("scan-1tex.glb", scan(1)),
        "scan-4tex": ("scan-4tex.glb", scan(4)),
        "obj-50mat": ("obj-50mat/model.obj", lambda folder: write_obj(folder / "obj-50mat", cells(720, 10), 50, side(1024))),
        "stl-2m": ("stl-2m.stl", lambda folder: write_stl(folder / "stl-2m.stl", max(8, round(1000 * scale**0.5)))),
        "splats-1m": ("splats-1000000.ply", splats(1_000_000)),
        "splats-3m": ("splats-3000000.ply", splats(3_000_000)),
        "splats-6m": ("splats-6000000.ply", splats(6_000_000)),
    }


_MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); rc = subprocess.run(sys.argv[1:]).returncode; "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(rc, time.perf_counter() - t, u.ru_maxrss * 1024, u.ru_utime + u.ru_stime, file=sys.stderr)"
)


def run_prepare(model: Path, run_dir: Path, tree: Path) -> dict:
    """One `a3d prepare` in a fresh process of the code in `tree`: exit code, wall s, CPU s (user + system, the
    figure least moved by other jobs on a shared machine), the stage's s, peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    model, run_dir = model.resolve(), run_dir.resolve()
    cmd = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "a3d_cli.cli", "prepare", str(model), "-o", str(run_dir), "--force"]
    # run from `tree`: `python -m` puts the working folder ahead of PYTHONPATH, so another checkout's code would run
    proc = subprocess.run(cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rc, wall, peak, cpu = proc.stderr.strip().splitlines()[-1].split()
    manifest = json.loads((run_dir / "a3d.json").read_text()) if (run_dir / "a3d.json").exists() else {}
    stage = manifest.get("stages", {}).get("prepare", {})
    return {"exit": int(rc), "wall_s": round(float(wall), 1), "cpu_s": round(float(cpu), 1), "stage_s": stage.get("seconds"),
            "peak_gb": round(int(peak) / 1e9, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the built assets and run folders")
    parser.add_argument("--assets", default=",".join(assets(1.0)), help="comma-separated names (see the docstring)")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every asset by this factor")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the a3d checkout whose code runs")
    parser.add_argument("--out", type=Path, help="JSON file for the figures")
    args = parser.parse_args(argv)
    table = assets(args.scale, tuple(args.assets.split(",")))
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}
    print("| asset | input MB | wall s | CPU s | stage s | peak GB |\n|---|---|---|---|---|---|")
    for name in args.assets.split(","):
        file_name, build = table[name]
        model = args.work / file_name
        if not model.exists():
            t = time.perf_counter()
            build(args.work)
            print(f"(built {name} in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
        size = sum(p.stat().st_size for p in model.parent.rglob("*") if p.is_file()) if name.startswith("obj") else model.stat().st_size
        row = run_prepare(model, args.work / "runs" / name, args.tree) | {"input_mb": round(size / 1e6, 1)}
        results[name] = row
        print(f"| {name} | {row['input_mb']} | {row['wall_s']} | {row['cpu_s']} | {row['stage_s']} | {row['peak_gb']} |", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"tree": str(args.tree), "scale": args.scale, "results": results}, indent=2))


if __name__ == "__main__":
    main()
