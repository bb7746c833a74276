"""Benchmark `a3d mesh-animate --skin`: how well N fitted bones reproduce a motion, how long the fit takes,
how large the GLB is, and how the loop modes close the seam. CPU only (the fit is not GPU-bound).

Usage:
    python benchmarks/bench_skinning.py --out skinning.json                  # the full table (a few minutes)
    python benchmarks/bench_skinning.py --tiny                               # smoke run (seconds)
    python benchmarks/bench_skinning.py --dem-bones                          # + py-dem-bones on the same data

Assets (all made here; nothing is downloaded or committed):

- fox: the bundled `examples/assets/fox.glb` with the known ground-truth motion of
  `examples/make_ground_truth_motion.py` (nod + twist + bend + turn and hop), normalized as `a3d prepare`;
- tentacle: a procedural tapered tube whose centre line carries a travelling wave (non-rigid everywhere);
- flag: a procedural cloth grid with a travelling wave across it (no rigid parts at all: the hard case).

Each motion is sampled exactly as `a3d mesh-animate` samples a 16-frame motion by default: 24 fps over
15 motion frames at 8 fps = 46 keys. The skin is fitted by `fit_animation_skin` (weights on 16 evenly
spaced keys, bone transforms on all 46), and scored on all 46 keys against the motion: vertex error mean
and max in % of the bounding radius (max distance from the bounding-box centre). GLB sizes: the morph-target
GLB as written by default (POSITION + NORMAL per key), the skin, and the skin with residual morph targets.
Seam: position and velocity jump where a player repeats the clip, without a loop and with each loop mode.

Results go to --out as JSON and are printed as markdown rows for docs/PERF.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from a3d_cli.gaussians.motion_clip import PeriodicBlend, clip_timing, seam_jumps  # noqa: E402
from a3d_cli.mesh.gltf_animated import write_animated_glb, write_skinned_glb  # noqa: E402
from a3d_cli.mesh.skinning import bind_space_residual, fit_animation_skin, fit_skinning  # noqa: E402
from a3d_cli.mesh.topology import weld  # noqa: E402

MOTION_FRAMES, MOTION_FPS, FPS = 16, 8.0, 24.0
Trajectory = Callable[[float], np.ndarray]  # frame position s in [0, 15] -> [V, 3]


def fox_asset() -> tuple[np.ndarray, np.ndarray, Trajectory]:
    """The bundled fox, normalized as `a3d prepare` does, with the ground-truth motion of the example."""
    from make_ground_truth_motion import MotionSpec, motion_map

    from a3d_cli.mesh.load import load_mesh
    from a3d_cli.mesh.normalize import fit_normalization

    mesh = load_mesh(ROOT / "examples" / "assets" / "fox.glb")
    rest = fit_normalization(mesh.vertices, "+y", "+z").apply(mesh.vertices)
    spec = MotionSpec.for_points(rest)
    p = torch.from_numpy(rest)
    return rest, mesh.faces, lambda s: motion_map(p, s / (MOTION_FRAMES - 1), spec).numpy()


def _tube_faces(sections: int, ring: int) -> np.ndarray:
    faces = []
    for s in range(sections - 1):
        for r in range(ring):
            a, b = s * ring + r, s * ring + (r + 1) % ring
            faces += [(a, b + ring, b), (a, a + ring, b + ring)]
    return np.array(faces, dtype=np.int64)


def tentacle_asset(sections: int = 80, ring: int = 16) -> tuple[np.ndarray, np.ndarray, Trajectory]:
    """A tapered tube (length 2) whose centre line bends with a travelling wave, 1.3 periods over the clip."""
    u = np.linspace(0.0, 1.0, sections)  # arc length / 2
    ang = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    radius = 0.18 * (1.0 - 0.7 * u)  # [S]

    def at(s: float) -> np.ndarray:
        t = s / (MOTION_FRAMES - 1)
        curvature = 2.2 * u * np.sin(2 * np.pi * (1.5 * u - 1.3 * t))  # [S] grows towards the tip
        phi = np.cumsum(curvature) * (u[1] - u[0]) * 2.0  # [S] tangent angle
        d = np.stack([np.cos(phi), np.sin(phi)], 1)  # [S, 2]
        centre = np.cumsum(d, 0) * (u[1] - u[0]) * 2.0 - np.array([1.0, 0.0])  # [S, 2]
        normal = np.stack([-np.sin(phi), np.cos(phi)], 1)  # [S, 2]
        xy = centre[:, None] + radius[:, None, None] * np.cos(ang)[None, :, None] * normal[:, None]  # [S, R, 2]
        z = radius[:, None] * np.sin(ang)[None]  # [S, R]
        return np.concatenate([xy, z[..., None]], -1).reshape(-1, 3)

    return at(0.0), _tube_faces(sections, ring), at


def flag_asset(nx: int = 40, ny: int = 30) -> tuple[np.ndarray, np.ndarray, Trajectory]:
    """A 2 × 1.5 cloth grid, fixed along x = -1, with a travelling wave growing towards its free edge."""
    x, y = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(-0.75, 0.75, ny), indexing="ij")
    x, y = x.ravel(), y.ravel()
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])

    def at(s: float) -> np.ndarray:
        t = s / (MOTION_FRAMES - 1)
        amp = 0.25 * ((x + 1) / 2) ** 1.5
        z = amp * np.sin(2 * np.pi * (0.8 * x - 1.2 * t) + 1.5 * y)
        return np.stack([x - 0.3 * amp * np.abs(np.sin(np.pi * t)), y, z], 1)

    return at(0.0), faces, at


ASSETS = {"fox": fox_asset, "tentacle": tentacle_asset, "flag": flag_asset, "flag_tiny": lambda: flag_asset(12, 8)}


def _bounding_radius(rest: np.ndarray) -> float:
    return float(np.linalg.norm(rest - (rest.min(0) + rest.max(0)) / 2, axis=1).max())


def bench_asset(name: str, bones_list: list[int], tmp: Path, dem_bones: bool) -> dict:
    rest, faces, traj = ASSETS[name]()
    welded, _ = weld(rest)
    timing = clip_timing(MOTION_FRAMES, MOTION_FPS, FPS, None, "off")
    frames = np.stack([traj(float(s)) for s in timing.positions])  # [K, V, 3]
    radius = _bounding_radius(rest)
    morph_path = tmp / f"{name}_morph.glb"
    write_animated_glb(morph_path, rest, faces, frames, fps=timing.key_rate, loop=False)
    out: dict = {
        "asset": name, "vertices": int(len(rest)), "welded": int(welded.max() + 1), "faces": int(len(faces)),
        "keys": int(len(frames)), "radius": radius, "morph_glb_bytes": morph_path.stat().st_size,
        "motion_mean_pct": float(100 * np.linalg.norm(frames - rest, axis=-1).mean() / radius), "skins": [],
    }  # fmt: skip
    for n in bones_list:
        t0 = time.perf_counter()
        fit = fit_animation_skin(rest, frames, n, welded=welded)
        seconds = time.perf_counter() - t0
        miss = fit.residual(rest, frames)
        err = 100.0 * np.linalg.norm(miss, axis=-1) / radius  # [K, V]
        skin_path, res_path = tmp / f"{name}_{n}.glb", tmp / f"{name}_{n}_res.glb"
        args = (rest, faces, fit.joints, fit.weights, fit.centres, fit.rotations, fit.translations)
        write_skinned_glb(skin_path, *args, fps=timing.key_rate)
        deltas = bind_space_residual(fit.joints, fit.weights, fit.rotations, miss)
        write_skinned_glb(res_path, *args, residual=deltas, fps=timing.key_rate)
        row = {"bones": n, "bones_used": fit.num_bones, "fit_s": seconds, "err_mean_pct": float(err.mean()),
               "err_max_pct": float(err.max()), "skin_glb_bytes": skin_path.stat().st_size,
               "skin_residual_glb_bytes": res_path.stat().st_size}  # fmt: skip
        out["skins"].append(row)
        print(f"  {name} N={n}: mean {row['err_mean_pct']:.3f}% max {row['err_max_pct']:.2f}% in {seconds:.1f} s",
              flush=True)  # fmt: skip
    # seams: the same motion as an open clip and in each loop mode
    out["seam"] = {}
    for mode in ("off", "blend", "pingpong"):
        tm = clip_timing(MOTION_FRAMES, MOTION_FPS, FPS, None, mode)  # type: ignore[arg-type]
        sample = traj
        if mode == "blend":
            blend = PeriodicBlend(lambda s: (traj(s),), MOTION_FRAMES - 1, float(tm.positions[1]))
            sample = lambda s, blend=blend: blend(s)[0]  # noqa: E731
        clip = np.stack([sample(float(s)) for s in tm.positions])
        out["seam"][mode] = seam_jumps(clip, tm.key_rate, tm.closes, radius)
    if dem_bones:
        out["dem_bones"] = compare_dem_bones(rest, faces, welded, traj, radius, bones_list)
    return out


def compare_dem_bones(
    rest: np.ndarray, faces: np.ndarray, welded: np.ndarray, traj: Trajectory, radius: float, bones_list: list[int]
) -> list[dict]:
    """py-dem-bones (EA's Dem Bones) and our solve on the same 16 motion frames of the welded mesh."""
    from py_dem_bones import solve_skinning

    _, rep, inverse = np.unique(welded, return_index=True, return_inverse=True)
    w_rest = rest[rep]
    w_frames = np.stack([traj(float(k)) for k in range(MOTION_FRAMES)])[:, rep]
    w_faces = inverse.reshape(-1)[faces].tolist()
    rows = []
    for n in bones_list:
        t0 = time.perf_counter()
        res = solve_skinning(w_rest, w_frames, n, faces=w_faces, max_influences=4, iterations=30)
        t_db = time.perf_counter() - t0
        hom = np.concatenate([w_rest, np.ones((len(w_rest), 1))], 1)
        rec = np.einsum("bv,fbij,vj->fvi", res.weights, res.transforms[:, :, :3, :], hom)
        e_db = 100.0 * np.linalg.norm(rec - w_frames, axis=-1) / radius
        t0 = time.perf_counter()
        fit = fit_skinning(w_rest, w_frames, n)
        t_ours = time.perf_counter() - t0
        e_ours = 100.0 * np.linalg.norm(fit.skin(w_rest) - w_frames, axis=-1) / radius
        rows.append({"bones": n, "dem_bones_s": t_db, "dem_bones_mean_pct": float(e_db.mean()),
                     "dem_bones_max_pct": float(e_db.max()), "ours_s": t_ours, "ours_mean_pct": float(e_ours.mean()),
                     "ours_max_pct": float(e_ours.max())})  # fmt: skip
        print(f"  dem-bones N={n}: {e_db.mean():.3f}% in {t_db:.1f} s; ours {e_ours.mean():.3f}% in {t_ours:.1f} s",
              flush=True)  # fmt: skip
    return rows


def markdown(results: list[dict]) -> str:
    lines = [
        "| asset (V) | N | fit s | mean err % r | max err % r | skin GLB MB | + residual MB | morph GLB MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for s in r["skins"]:
            lines.append(
                f"| {r['asset']} ({r['vertices']}) | {s['bones']} | {s['fit_s']:.1f} | {s['err_mean_pct']:.3f} | "
                f"{s['err_max_pct']:.2f} | {s['skin_glb_bytes'] / 1e6:.2f} | {s['skin_residual_glb_bytes'] / 1e6:.2f} | "
                f"{r['morph_glb_bytes'] / 1e6:.2f} |"
            )
    lines += [
        "",
        "| asset | loop | position jump mean / max % r | velocity jump mean / max % r/s |",
        "|---|---|---|---|",
    ]
    for r in results:
        for mode, j in r["seam"].items():
            lines.append(f"| {r['asset']} | {mode} | {j['position_jump_mean_pct']:.2f} / {j['position_jump_max_pct']:.2f} | "
                         f"{j['velocity_jump_mean_pct_per_s']:.1f} / {j['velocity_jump_max_pct_per_s']:.1f} |")  # fmt: skip
    if any("dem_bones" in r for r in results):
        lines += ["", "| asset | N | py-dem-bones mean / max % r, s | ours mean / max % r, s |", "|---|---|---|---|"]
        for r in results:
            for d in r.get("dem_bones", []):
                lines.append(f"| {r['asset']} | {d['bones']} | {d['dem_bones_mean_pct']:.3f} / {d['dem_bones_max_pct']:.2f}, "
                             f"{d['dem_bones_s']:.1f} | {d['ours_mean_pct']:.3f} / {d['ours_max_pct']:.2f}, {d['ours_s']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bones", default="8,16,32,64", help="comma-separated bone counts")
    ap.add_argument("--assets", default="fox,tentacle,flag", help="comma-separated: " + ", ".join(ASSETS))
    ap.add_argument("--tiny", action="store_true", help="smoke run: a 12 × 8 flag, 2 and 4 bones")
    ap.add_argument("--dem-bones", action="store_true", help="also run py-dem-bones (pip install py-dem-bones)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    bones = [2, 4] if args.tiny else [int(b) for b in args.bones.split(",")]
    assets = ["flag_tiny"] if args.tiny else args.assets.split(",")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in assets:
            results.append(bench_asset(name, bones, Path(tmp), args.dem_bones))
    print(markdown(results))
    if args.out:
        meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor()
                or platform.machine(), "torch": torch.__version__, "command": " ".join(sys.argv)}  # fmt: skip
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
