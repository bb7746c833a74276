"""Time `simplify_mesh` on large untextured meshes and score how close its result stays to the input surface.

Usage:
    python benchmarks/bench_simplify.py --work /tmp/simplify                      # this checkout
    python benchmarks/bench_simplify.py --work /tmp/simplify --tree /path/to/other/checkout --tag before
    python benchmarks/bench_simplify.py --work /tmp/simplify --cases stl-2m --repeat 2

Each case is a binary STL built once into --work and read as `a3d prepare` reads it (`load_mesh`, merged corners
and hard edges, then normalized into the radius-0.9 sphere). A child process of the code in --tree runs
`simplify_mesh` to --max-vertices and reports its CPU seconds (`time.process_time`: the 2-core machine is shared,
and CPU time moves less with the other jobs than wall time) and the child's peak resident memory; the result is
kept as --work/out-TAG-CASE.npz and scored here against the input surface. The peak memory is that of a process
which reads the prepared mesh (arrays of the loaded, normalized mesh, made by an earlier child) and simplifies it:

- `chamfer`: mean distance between the surfaces, both ways (points sampled uniformly by area on each, distance
  to the nearest point of the other surface), `p99` its 99th percentile and `hausdorff` its maximum (both
  ways), all in % of the input's bounding radius;
- `normal`: angle between the result's face normal at a sampled point and the input's face normal nearest to
  it (mean and 99th percentile, degrees);
- `slivers`: share of the result's triangles with an angle below 10°.

Cases (`side` of the STL grids as in `bench_prepare_large.write_stl`):
- `stl-2m`: bench_prepare_large's 2.0M-triangle bumpy sphere (smooth, like a 3D-print sculpt);
- `stl-0.5m`: the same at 499k triangles;
- `scan-0.5m`: bench_prepare_large's chart surface, 524k triangles with per-vertex noise (like a scan);
- `flat-base-0.5m`: `stl-0.5m` pressed flat below 0.8 of its radius, then turned off the axes (a scan on a
  turntable, its cut base a float32 plane);
- `faceted-0.3m`: an icosphere of 320 faces with every face cut into 1024 (flat facets meeting at edges: a
  low-poly shape cut finely, as CAD exports of flat parts are).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

CASES = ("stl-2m", "stl-0.5m", "scan-0.5m", "flat-base-0.5m", "faceted-0.3m")

_LOAD = """
import sys
import numpy as np
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.normalize import fit_normalization
mesh = load_mesh(sys.argv[1])
mesh = mesh.with_vertices(fit_normalization(mesh.vertices, "+z", "-y").apply(mesh.vertices))
groups = np.zeros(0, np.int64) if mesh.normal_groups is None else mesh.normal_groups
np.savez(sys.argv[2], v=mesh.vertices, f=mesh.faces, c=mesh.vertex_colors, g=groups)
"""
_SIMPLIFY = """
import json, resource, sys, time
import numpy as np
from a3d_cli.mesh.simplify import simplify_mesh, welded_vertex_count
from a3d_cli.mesh.surface import SurfaceMesh
z = np.load(sys.argv[1])
mesh = SurfaceMesh(z["v"], z["f"], z["c"], normal_groups=z["g"] if len(z["g"]) else None)
t = time.process_time()
out = simplify_mesh(mesh, int(sys.argv[3]))
seconds = time.process_time() - t
np.savez(sys.argv[2], v=out.vertices, f=out.faces)
try:  # this process's own high-water mark (ru_maxrss also counts the parent's memory copied at fork)
    peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"cpu_s": round(seconds, 2), "peak_gb": round(peak / 1e9, 2), "welded": welded_vertex_count(out)}))
"""


def write_stl(path: Path, points: np.ndarray, faces: np.ndarray) -> None:
    """A binary STL of `faces` over `points` (facet normals zero, as many writers leave them)."""
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
    triangles = np.zeros(len(faces), dtype=record)
    triangles["corners"] = points[faces]
    path.write_bytes(b"a3d benchmark".ljust(80, b" ") + struct.pack("<I", len(faces)) + triangles.tobytes())


def _read_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Corners [3T, 3] of a binary STL as points with faces [T, 3] (a soup)."""
    data = path.read_bytes()
    count = struct.unpack("<I", data[80:84])[0]
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
    corners = np.frombuffer(data, dtype=record, count=count, offset=84)["corners"].reshape(-1, 3)
    return corners.astype(np.float64), np.arange(len(corners)).reshape(-1, 3)


def build(name: str, path: Path) -> None:
    """Write case `name` as a binary STL at `path`."""
    import bench_prepare_large as large

    if name in ("stl-2m", "stl-0.5m"):
        large.write_stl(path, 1000 if name == "stl-2m" else 500)
    elif name == "scan-0.5m":
        ((pos, _, tri),) = large.chart_surface(512, 16, 1)
        write_stl(path, pos, tri.astype(np.int64))
    elif name == "flat-base-0.5m":
        large.write_stl(path, 500)
        points, faces = _read_stl(path)
        radius = np.linalg.norm(points, axis=1).max()
        points[:, 2] = np.maximum(points[:, 2], -0.8 * radius)
        a = 0.5
        turn_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        turn_y = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        write_stl(path, points @ (turn_x @ turn_y).T, faces)
    elif name == "faceted-0.3m":
        import trimesh

        ico = trimesh.creation.icosphere(subdivisions=2)
        points, faces = np.asarray(ico.vertices), np.asarray(ico.faces)
        for _ in range(5):
            points, faces = trimesh.remesh.subdivide(points, faces)
        write_stl(path, points, faces)
    else:
        raise SystemExit(f"unknown case {name!r}; cases: {', '.join(CASES)}")


# -- surface distances -----------------------------------------------------------------------------------------


def sample_surface(points: np.ndarray, faces: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n points [n, 3] uniform by area on the triangles, and the face [n] each lies on."""
    rng = np.random.default_rng(seed)
    tri = points[faces]  # [T, 3, 3]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    face = rng.choice(len(faces), n, p=area / area.sum())
    s, t = np.sqrt(rng.random(n)), rng.random(n)
    weights = np.stack([1 - s, s * (1 - t), s * t], axis=1)  # [n, 3] uniform barycentric
    return np.einsum("nk,nkd->nd", weights, tri[face]), face


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The point of each triangle abc [..., 3] closest to p [..., 3]: the interior, an edge or a corner, whichever
    region of the triangle's plane p projects into (the standard Voronoi-region test)."""
    ab, ac = b - a, c - a
    d1, d2 = (ab * (p - a)).sum(-1), (ac * (p - a)).sum(-1)
    d3, d4 = (ab * (p - b)).sum(-1), (ac * (p - b)).sum(-1)
    d5, d6 = (ab * (p - c)).sum(-1), (ac * (p - c)).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        out = a + ab * (vb / denom)[..., None] + ac * (vc / denom)[..., None]
        on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        out = np.where(on_ab[..., None], a + ab * (d1 / (d1 - d3))[..., None], out)
        on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        out = np.where(on_ac[..., None], a + ac * (d2 / (d2 - d6))[..., None], out)
        on_bc = (va <= 0) & (d4 >= d3) & (d5 >= d6)
        out = np.where(on_bc[..., None], b + (c - b) * ((d4 - d3) / ((d4 - d3) + (d5 - d6)))[..., None], out)
    out = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, out)
    out = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, out)
    return np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, out)


def surface_distance(
    p: np.ndarray, points: np.ndarray, faces: np.ndarray, k: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Distance [n] from each of p [n, 3] to the surface (points, faces), and the nearest face [n].

    The triangles with the k nearest centroids are tried first (an upper bound); then, largest first, points
    are tried against every triangle that could be nearer (centroid within the bound + the largest centroid
    to corner distance) until the largest exact distance exceeds every bound left: the maximum is exact.
    """
    from scipy.spatial import cKDTree

    tri = points[faces]  # [T, 3, 3]
    centre = tri.mean(axis=1)
    tree = cKDTree(centre)
    dist, near = np.empty(len(p)), np.empty(len(p), dtype=np.int64)
    for s in range(0, len(p), 20_000):
        q = p[s : s + 20_000]
        _, cand = tree.query(q, k=min(k, len(faces)))
        cand = cand.reshape(len(q), -1)
        t = tri[cand]  # [n, k, 3, 3]
        d = np.linalg.norm(closest_on_triangles(q[:, None], t[:, :, 0], t[:, :, 1], t[:, :, 2]) - q[:, None], axis=-1)
        dist[s : s + 20_000] = d.min(axis=1)
        near[s : s + 20_000] = cand[np.arange(len(q)), d.argmin(axis=1)]
    reach = float(np.linalg.norm(tri - centre[:, None], axis=-1).max())
    best = 0.0
    for i in np.argsort(-dist):
        if dist[i] <= best:
            break
        cand = np.asarray(tree.query_ball_point(p[i], dist[i] + reach), dtype=np.int64)
        t = tri[cand]
        d = np.linalg.norm(closest_on_triangles(p[i], t[:, 0], t[:, 1], t[:, 2]) - p[i], axis=-1)
        dist[i], near[i] = d.min(), cand[d.argmin()]
        best = max(best, dist[i])
    return dist, near


def score(
    points: np.ndarray, faces: np.ndarray, out_points: np.ndarray, out_faces: np.ndarray, n: int = 100_000
) -> dict:
    """The scores of the module docstring for the result (out_points, out_faces) of the input (points, faces)."""
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    radius = float(np.linalg.norm(points - centre, axis=1).max())
    p_in, _ = sample_surface(points, faces, n, 0)
    p_out, face_out = sample_surface(out_points, out_faces, n, 1)
    d_in, _ = surface_distance(p_in, out_points, out_faces)
    d_out, near = surface_distance(p_out, points, faces)

    def unit_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
        cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        return cross / np.maximum(np.linalg.norm(cross, axis=1, keepdims=True), 1e-300)

    cos = np.abs((unit_normals(out_points, out_faces)[face_out] * unit_normals(points, faces)[near]).sum(axis=1))
    angle = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))
    tri = out_points[out_faces]  # [T', 3, 3]
    smallest = np.full(len(out_faces), 180.0)
    for k in range(3):
        u, w = tri[:, (k + 1) % 3] - tri[:, k], tri[:, (k + 2) % 3] - tri[:, k]
        c = (u * w).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1), 1e-300)
        smallest = np.minimum(smallest, np.degrees(np.arccos(np.clip(c, -1, 1))))

    def pct(x: float) -> float:
        return round(100 * float(x) / radius, 4)

    return {
        "chamfer_pct": pct(0.5 * (d_in.mean() + d_out.mean())),
        "p99_pct": pct(max(np.percentile(d_in, 99), np.percentile(d_out, 99))),
        "hausdorff_pct": pct(max(d_in.max(), d_out.max())),
        "normal_mean_deg": round(float(angle.mean()), 3),
        "normal_p99_deg": round(float(np.percentile(angle, 99)), 2),
        "slivers_pct": round(100 * float((smallest < 10).mean()), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the STL files and results")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated names (see the docstring)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the a3d checkout whose simplify_mesh runs")
    parser.add_argument("--tag", default="this", help="name of the results (out-TAG-CASE.npz)")
    parser.add_argument("--max-vertices", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per case (the last one is scored)")
    parser.add_argument("--no-score", action="store_true", help="time only")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    print("| case | input faces | result welded vertices | CPU s | peak GB | chamfer % | p99 % | Hausdorff % | "
          "normal mean / p99 ° | slivers % |\n|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for name in args.cases.split(","):
        stl = args.work / f"{name}.stl"
        if not stl.exists():
            build(name, stl)
        source, out = args.work / f"in-{args.tag}-{name}.npz", args.work / f"out-{args.tag}-{name}.npz"
        env = dict(os.environ, PYTHONPATH=str(args.tree))
        # run in --work: `python -c` puts the working folder first on sys.path, before --tree
        subprocess.run([sys.executable, "-c", _LOAD, str(stl), str(source)], env=env, check=True, cwd=args.work)
        cmd = [sys.executable, "-c", _SIMPLIFY, str(source), str(out), str(args.max_vertices)]
        runs = [json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=args.work).stdout)
                for _ in range(args.repeat)]  # fmt: skip
        src, res = np.load(source), np.load(out)
        s = {} if args.no_score else score(src["v"], src["f"], res["v"], res["f"])
        cpu = ", ".join(str(r["cpu_s"]) for r in runs)
        print(f"| {name} | {len(src['f'])} | {runs[-1]['welded']} | {cpu} | {runs[-1]['peak_gb']} | "
              f"{s.get('chamfer_pct', '')} | {s.get('p99_pct', '')} | {s.get('hausdorff_pct', '')} | "
              f"{s.get('normal_mean_deg', '')} / {s.get('normal_p99_deg', '')} | {s.get('slivers_pct', '')} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
