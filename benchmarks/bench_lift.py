"""Benchmark `a3d lift` on ground truth: SV3D-like orbits of known meshes, scored against the truth.

Usage:
    python benchmarks/bench_lift.py --device cuda --out lift.json                  # 576², full settings
    python benchmarks/bench_lift.py --device cpu --reduced --out lift_cpu.json     # CPU reduced size
    python benchmarks/public_assets.py && \
    python benchmarks/bench_lift.py --assets fox,Duck,CesiumMilkTruck,BoxTextured ...  # public glTF samples
    python benchmarks/bench_lift.py --asset my_model.glb ...                          # any mesh a3d reads
    python benchmarks/bench_lift.py --orbit dynamic ...                               # SV3D_p's dynamic orbit
    python benchmarks/bench_lift.py --mesh-smoothing 0 ...                            # the mesh as marching cubes made it

Per asset (the bundled fox, a procedural toy, the public samples that benchmarks/public_assets.py fetches
into benchmarks/.assets/, and any --asset file): the mesh is normalized into SV3D's frame
(farthest point 0.5 from the origin), turned into dense surface splats lit by a3d's fixed studio lighting
(`a3d_cli.mesh.shading`: SV3D's views are shaded; `--lighting unlit` keeps the bare albedo) and rendered with
a3d's rasterizer as an SV3D orbit (21 views, elevation 10°, radius 2, fov 33.8°, white background, no alpha
unless `--alpha`; with `--orbit dynamic`, SV3D_p's dynamic orbit instead: a3d's own `dynamic_orbit` around
10°, seeded with `--seed` as `a3d orbit --orbit dynamic` seeds it with the run's seed). Each perturbation of
those views is written as an orbit folder and lifted by the real stage (`a3d_cli.stages.lift.run`), then scored:

- held-out views (8 azimuths at −10° and 8 at +30°, 20° below and above the orbit; `--held-out LOW HIGH`;
  checked to lie at least 5° from every orbit view), lit like the orbit:
  PSNR and SSIM of the fitted splats, of the textured mesh (drawn as dense surface splats, as `a3d
  prepare` will) and of the visual hull the fit starts from (the baseline);
- what the orbit saw (`mesh_*` keys): the mesh's held-out PSNR of the 8 views below and the 8 above, and
  over the object's pixels split by whether some orbit view saw their surface point squarely (cos ≥ 0.5),
  only at a graze, or not at all (the truth's own visibility, `lift.texture.point_visibility`), with
  those shares, and the held-out PSNR if the unseen pixels were right;
- geometry: Chamfer distance (mean of both directions, % of the bounding radius 0.5) and F-score at 1 %
  and 5 % of that radius, between 100k points sampled on the lifted mesh and on the true mesh, in the
  same frame (the cameras are known: no alignment); and the shading normals: the angle between the
  lifted mesh's interpolated vertex normal and the true face normal at the nearest true point, mean and
  90th percentile in degrees (`normal_scores`: what a lit viewer shows as lumps);
- mask IoU of the fitted splats against the masks (the stage's metric) and of the lift's masks
  (`lift/masks/`) against the truth's alpha, seconds per phase and the stage's peak memory.

Perturbations mimic generated views: `jitter` (per-view colour gain ±6 % and offset ±3 %), `shift`
(per-view sub-pixel translation up to ±0.75 px), `elevation` (rendered at 14° but labelled 10°), `all`
(the three together). `--alpha` writes the orbits as RGBA, so the masks come from alpha: the reference
for the white-background masks, which must tell a white part from the background by its shading alone
(CesiumMilkTruck's body; unlit, it is exactly the background's white and can only be inferred: docs/lift.md,
unknown pixels). Results go to --out as JSON and
are printed as markdown rows for docs/PERF.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reconstruct import psnr, ssim  # noqa: E402
from public_assets import asset_sources  # noqa: E402

from a3d_cli.gaussians.container import Gaussians  # noqa: E402
from a3d_cli.gaussians.ply import read_ply  # noqa: E402
from a3d_cli.io.images import unpremultiply  # noqa: E402
from a3d_cli.lift import hull as hull_mod  # noqa: E402
from a3d_cli.lift import synthetic as syn  # noqa: E402
from a3d_cli.lift.fit import render_chunked  # noqa: E402
from a3d_cli.lift.masks import mask_iou, unknown_white, view_masks  # noqa: E402
from a3d_cli.lift.preview import mesh_as_splats  # noqa: E402
from a3d_cli.lift.views import load_views, scene_radius  # noqa: E402
from a3d_cli.mesh.load import load_mesh  # noqa: E402
from a3d_cli.mesh.surface import SurfaceMesh  # noqa: E402
from a3d_cli.models.sv3d.cameras import SV3D_FOV_DEG, SV3D_RADIUS, Orbit, dynamic_orbit, orbit_camera_set, static_orbit  # noqa: E402
from a3d_cli.render.cameras import CameraSet, orbit_cameras  # noqa: E402
from a3d_cli.run_layout import LIFT_MODEL, LIFT_PLY, lift_mask  # noqa: E402
from a3d_cli.stages import lift as stage  # noqa: E402
from a3d_cli.stages.base import Runtime  # noqa: E402

PERTURBATIONS = ("none", "jitter", "shift", "elevation", "all")
ORBITS = ("static", "dynamic")
ELEVATION = 10.0
WRONG_ELEVATION = 14.0
MIN_SEPARATION_DEG = 5.0
"""Smallest angle (seen from the origin) between a held-out camera and any orbit camera."""
GRAZE_COS = 0.05
"""A surface point is seen by a view when visible there at more than this cos of the view angle (87°)."""
SQUARE_COS = 0.5
"""... and seen squarely when at least this cos (within 60° of its normal)."""


HELD_OUT_OFFSET = 20.0
"""The held-out views lie this far below and above the orbit's elevation (the issue's ±20°)."""
HELD_OUT = (ELEVATION - HELD_OUT_OFFSET, ELEVATION + HELD_OUT_OFFSET)
"""Elevations of the 8 held-out views below the orbit and of the 8 above it (`--held-out`)."""
LIGHTINGS = ("studio", "unlit")
"""The truth's colours: lit by a3d's fixed studio lighting, or the bare albedo (`--lighting`)."""


def held_out_cameras(low: float = HELD_OUT[0], high: float = HELD_OUT[1]):  # noqa: ANN201
    """16 views between and off the orbit's: 8 azimuths at elevation `low` and 8 at `high`."""
    elev = [low] * 8 + [high] * 8
    azim = [22.5 + 45.0 * i for i in range(8)] * 2
    return orbit_cameras(elev, azim, SV3D_RADIUS, SV3D_FOV_DEG)


def make_orbit(kind: str, elevation: float, seed: int) -> Orbit:
    """The orbit the truth is rendered from: SV3D's static one at `elevation`, or SV3D_p's dynamic one
    around it, made by the function `a3d orbit --orbit dynamic` uses and seeded the same way (the run's
    seed; the benchmark's `--seed` is also the lift's)."""
    return dynamic_orbit(seed, elevation) if kind == "dynamic" else static_orbit(elevation)


def check_disjoint(held: CameraSet, orbit: CameraSet, min_deg: float = MIN_SEPARATION_DEG) -> float:
    """The smallest angle between a held-out camera and an orbit camera, refused below `min_deg`.

    Raises:
        SystemExit: a held-out view (nearly) repeats an orbit view, so it would not be held out.
    """
    a = F.normalize(held.c2w[:, :3, 3].double(), dim=-1)
    b = F.normalize(orbit.c2w[:, :3, 3].double(), dim=-1)
    angle = float(torch.rad2deg(torch.arccos((a @ b.T).clamp(-1, 1))).min())
    if angle < min_deg:
        raise SystemExit(f"a held-out camera lies {angle:.2f}° from an orbit camera (need ≥ {min_deg}°)")
    return angle


def orbit_coverage(gt: Gaussians, orbit: CameraSet, size: int) -> Tensor:
    """Per truth splat [N]: the largest cos of the view angle over the orbit views that see it, 0 if none.

    Visibility is the texture bake's test (`lift.texture.point_visibility`) against the truth's own
    depth renders, with a tolerance of 2 % of the object radius widened by the surface's slope (so a
    surface seen only at a graze counts as seen, at its small cos).
    """
    from a3d_cli.geometry import quat_to_rotmat
    from a3d_cli.lift.texture import point_visibility

    _, alphas, depths = render_chunked(gt, orbit, size, depth=True)
    dev = gt.means.device
    normals = quat_to_rotmat(gt.quats)[..., 2]  # [N, 3] flat splats: the thin axis
    visible, cos = point_visibility(gt.means, normals, depths.to(dev), alphas.to(dev), orbit, 0.02 * syn.OBJECT_RADIUS, slope=True)
    return (visible.float() * cos.clamp_min(0)).max(0).values  # [N]; a mesh's splat normals point outwards


def masked_psnr(img: Tensor, truth: Tensor, mask: Tensor) -> float | None:
    """PSNR over the pixels of `mask` [V, S, S] pooled across views ([V, S, S, 3] images); None if empty."""
    if not bool(mask.any()):
        return None
    mse = (img - truth).square().mean(-1)[mask].mean()
    return round(float(-10 * torch.log10(mse.clamp_min(1e-12))), 2)


def coverage_scores(img: Tensor, truth: Tensor, truth_alpha: Tensor, seen_cos: Tensor) -> dict:
    """Held-out PSNR split by what the orbit saw: the object's pixels whose surface point no orbit view
    saw, saw only at a graze (cos < SQUARE_COS) or saw squarely, and their shares; plus the plain PSNR of
    the 8 views below the orbit and the 8 above it.

    Args:
        img, truth: [16, S, S, 3] renders of the held-out views; truth_alpha: [16, S, S];
        seen_cos: [16, S, S] the truth's `orbit_coverage` rendered into the held-out views.
    """
    obj = truth_alpha > 0.5
    unseen = obj & (seen_cos < GRAZE_COS)
    square = obj & (seen_cos >= SQUARE_COS)
    grazed = obj & ~unseen & ~square
    n = max(int(obj.sum()), 1)
    per_view = psnr(img, truth)
    unseen_right = psnr(torch.where(unseen[..., None], truth, img), truth)  # [16]
    return {
        "psnr_unseen_right": round(float(unseen_right.mean()), 2),
        "psnr_low": round(float(per_view[:8].mean()), 2),
        "psnr_high": round(float(per_view[8:].mean()), 2),
        "psnr_object": masked_psnr(img, truth, obj),
        "psnr_unseen": masked_psnr(img, truth, unseen),
        "psnr_grazed": masked_psnr(img, truth, grazed),
        "psnr_square": masked_psnr(img, truth, square),
        "share_unseen": round(int(unseen.sum()) / n, 3),
        "share_grazed": round(int(grazed.sum()) / n, 3),
    }


def perturb(rgba: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    """Per-view colour jitter and/or sub-pixel shifts of [V, S, S, 4] straight RGBA."""
    g = torch.Generator().manual_seed(seed)
    v, s = rgba.shape[0], rgba.shape[1]
    out = rgba.clone()
    if kind in ("shift", "all"):
        d = (torch.rand(v, 2, generator=g) * 2 - 1) * 0.75 * 2 / s  # ±0.75 px in normalized units
        theta = torch.zeros(v, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, :, 2] = d
        grid = F.affine_grid(theta, [v, 4, s, s], align_corners=False)
        premul = torch.cat([out[..., :3] * out[..., 3:], out[..., 3:]], -1).permute(0, 3, 1, 2)
        moved = F.grid_sample(premul, grid, mode="bilinear", padding_mode="zeros", align_corners=False).permute(0, 2, 3, 1)
        a = moved[..., 3:].clamp(0, 1)
        out = torch.cat([unpremultiply(moved[..., :3], a), a], -1)
    if kind in ("jitter", "all"):
        gain = 1 + (torch.rand(v, 1, 1, 3, generator=g) * 2 - 1) * 0.06
        offset = (torch.rand(v, 1, 1, 3, generator=g) * 2 - 1) * 0.03
        out = torch.cat([(out[..., :3] * gain + offset).clamp(0, 1), out[..., 3:]], -1)
    return out


def surface_points(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` points sampled uniformly by area on a triangle mesh."""
    import trimesh

    pts, _ = trimesh.sample.sample_surface(trimesh.Trimesh(vertices, faces, process=False), n, seed=seed)
    return np.asarray(pts)


def geometry_scores(pred: np.ndarray, truth: np.ndarray, radius: float) -> dict:
    """Chamfer (% of radius) and F-scores at 1 % and 5 % of radius between two point sets."""
    from scipy.spatial import cKDTree

    d_pt = cKDTree(truth).query(pred)[0]  # precision side
    d_tp = cKDTree(pred).query(truth)[0]  # recall side
    out = {"chamfer_pct": round(100 * 0.5 * (d_pt.mean() + d_tp.mean()) / radius, 3)}
    for pct in (1, 5):
        t = pct / 100 * radius
        p, r = (d_pt < t).mean(), (d_tp < t).mean()
        out[f"fscore_{pct}"] = round(float(2 * p * r / max(p + r, 1e-12)), 4)
    return out


def normal_scores(lifted: SurfaceMesh, truth: SurfaceMesh, n: int, radius: float, seed: int = 0) -> dict:
    """How far the lifted mesh's shading normals turn from the true surface's: the angle (degrees) between
    the normal a viewer interpolates at `n` points sampled on the lifted mesh (its NORMAL attribute as
    `mesh.store` writes it, `SurfaceMesh.surface_normals`) and the face normal of
    the true mesh at its nearest point (of `n` sampled on it), over the lifted points within 5 % of
    `radius` of the truth (elsewhere the surface is misplaced, which Chamfer and F-score measure): mean and
    90th percentile.

    Why angles rather than a lit render's error: under a light, the diffuse shade is max(0, n · l), so a
    normal turned by θ changes it by up to sin θ whatever the light; the angle is that error without
    choosing lights, and lumps (marching cubes' and the fused depths' noise) show as a high tail where
    the true surface is smooth. The truth's faces are its geometric normal (its authored normals are not
    read), so its own hard edges count against any smooth mesh, before and after alike.
    """
    import trimesh
    from scipy.spatial import cKDTree

    from a3d_cli.mesh.topology import face_normals_and_areas

    def sample(mesh: SurfaceMesh) -> tuple[np.ndarray, np.ndarray, trimesh.Trimesh]:
        tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        pts, face = trimesh.sample.sample_surface(tm, n, seed=seed)
        return np.asarray(pts), np.asarray(face), tm

    pts, face, tm = sample(lifted)
    bary = trimesh.triangles.points_to_barycentric(tm.triangles[face], pts)  # [n, 3]
    ours = lifted.surface_normals(face, bary)  # [n, 3]
    true_pts, true_face, _ = sample(truth)
    true_normals = face_normals_and_areas(truth.vertices, truth.faces)[0][true_face]  # [n, 3]
    dist, nearest = cKDTree(true_pts).query(pts)
    near = dist < 0.05 * radius
    angle = np.degrees(np.arccos(np.einsum("pc,pc->p", ours, true_normals[nearest]).clip(-1, 1)))[near]
    return {"normal_deg_mean": round(float(angle.mean()), 2), "normal_deg_p90": round(float(np.percentile(angle, 90)), 2)}


def truth_mask_iou(run: Path, alpha: Tensor, count: int) -> float:
    """Mean IoU of the lift's masks (`lift/masks/`, after the refinement) against the truth's alpha of
    the orbit views ([V, S, S], area-resized to the masks' size, > 0.5)."""
    from a3d_cli.io.images import load_png

    ours = torch.stack([load_png(run / lift_mask(i))[..., 0] for i in range(count)])  # [V, s, s]
    s = ours.shape[1]
    truth = F.interpolate(alpha[:, None].float().cpu(), size=(s, s), mode="area")[:, 0]
    return round(float(mask_iou(ours, truth).mean()), 4)


def load_assets(names: list[str], files: list[str], assets_dir: Path) -> dict[str, SurfaceMesh]:
    """Normalized meshes by name: `toy` (procedural), `fox` and the public samples of
    benchmarks/public_assets.py (its `asset_sources` lookup), then any mesh `files`."""
    assets: dict[str, SurfaceMesh] = {}
    for name in names:
        if name == "toy":
            assets["toy"] = syn.normalized(syn.toy_mesh())
            continue
        model, up = asset_sources([name], assets_dir)[name]
        path = Path(model) if model is not None else ROOT / "examples" / "assets" / "fox.glb"
        assets[name] = syn.normalized(load_mesh(path), up=up)
    for file in files:
        assets[Path(file).stem] = syn.normalized(load_mesh(Path(file)))
    return assets


def bench_one(name: str, mesh: SurfaceMesh, kind: str, args: argparse.Namespace, work: Path) -> dict:
    dev = args.device
    gt = syn.mesh_splats(mesh, args.gt_splats, lit=args.lighting == "studio").to(dev)
    elev = WRONG_ELEVATION if kind in ("elevation", "all") else ELEVATION
    true_cams = orbit_camera_set(make_orbit(args.orbit, elev, args.seed))
    told_cams = orbit_camera_set(make_orbit(args.orbit, ELEVATION, args.seed))
    held = held_out_cameras(*args.held_out)
    separation = min(check_disjoint(held, true_cams), check_disjoint(held, told_cams))
    rgba = perturb(syn.render_rgba(gt, true_cams, args.size), kind, args.seed)
    tag = f"{name}-{kind}-{args.orbit}"
    folder = syn.write_orbit_folder(work / f"{tag}-orbit", rgba, told_cams, alpha=args.alpha)
    run = work / f"{tag}-run"
    opts = stage.LiftOptions(
        orbit=str(folder), resolution=args.resolution, steps=args.steps, mesh_resolution=args.mesh_resolution,
        preview_frames=args.preview_frames, open_undersides=args.open_undersides, unseen_radius=args.unseen_radius,
        mesh_smoothing=args.mesh_smoothing,
    )  # fmt: skip
    t = time.perf_counter()
    result = stage.run(run, opts, Runtime(device=dev, seed=args.seed))
    wall = time.perf_counter() - t
    m = result.metrics

    s = args.eval_size
    truth_rgba = syn.render_rgba(gt, held, s)
    truth = syn.on_white(truth_rgba)
    cover = orbit_coverage(gt, true_cams, args.size)  # [N] what the orbit the views came from saw
    seen_cos = syn.render_rgba(gt.with_(colors=cover[:, None].expand(-1, 3).contiguous()), held, s)[..., 0]  # [16, s, s] straight
    splats = read_ply(run / LIFT_PLY).to(dev)
    lifted = load_mesh(run / LIFT_MODEL)
    views = load_views(folder)
    thr = m.get("white_threshold")  # the stage's, measured from the frames
    r = stage.LiftOptions(resolution=args.resolution, white_threshold=thr).resolved(dev)
    mask_opts = r.settings().masks
    masks = view_masks(views.images, views.alphas, mask_opts)
    if views.alphas is None:  # as the lift carves: the unknown near-white pixels do not carve
        masks = ((masks > 0.5) | unknown_white(views.images, masks, mask_opts)).float()
    hw = scene_radius(views.cameras)
    hull = hull_mod.carve(masks.to(dev), views.cameras, r.hull_resolution, hw, r.hull_tolerance)
    baseline = hull_mod.hull_splats(hull, views.images.to(dev), views.cameras, r.max_splats)
    renders = {
        "splats": render_chunked(splats, held, s)[0],
        "mesh": render_chunked(mesh_as_splats(lifted, args.gt_splats).to(dev), held, s)[0],
        "hull": render_chunked(baseline.to(dev), held, s)[0],
    }
    row = {"asset": name, "perturbation": kind, "orbit": args.orbit, "alpha": args.alpha, "lighting": args.lighting,
           "held_out_elevations": list(args.held_out),
           "size": args.size, "fit_size": m["fit_size"], "steps": r.steps if args.steps is None else args.steps,
           "mesh_resolution": args.mesh_resolution or r.mesh_resolution}
    for key, img in renders.items():
        row[f"psnr_{key}"] = round(float(psnr(img, truth).mean()), 2)
        row[f"ssim_{key}"] = round(float(ssim(img, truth).mean()), 4)
    row["open_undersides"] = args.open_undersides
    row["unseen_radius"] = args.unseen_radius
    row["mesh_smoothing"] = r.settings().mesh.smoothing if args.mesh_smoothing is None else args.mesh_smoothing
    row["unseen_splats"] = m.get("unseen_splats")
    row["white_threshold"] = thr
    row["separation_deg"] = round(separation, 2)
    row["orbit_elevations"] = [round(float(told_cams.elevation_deg.min()), 2), round(float(told_cams.elevation_deg.max()), 2)]
    row.update({f"mesh_{k}": v for k, v in coverage_scores(renders["mesh"], truth, truth_rgba[..., 3], seen_cos).items()})
    row.update(geometry_scores(surface_points(lifted.vertices, lifted.faces, args.points), surface_points(mesh.vertices, mesh.faces, args.points), syn.OBJECT_RADIUS))
    row.update(normal_scores(lifted, mesh, args.points, syn.OBJECT_RADIUS))
    row.update(
        mask_iou=m["mask_iou_mean"],
        mask_iou_truth=truth_mask_iou(run, rgba[..., 3], len(views)),
        train_psnr=m["psnr_mean"],
        faces=m["faces"],
        splats=m["splats"],
        seconds=round(wall, 2),
        seconds_per_phase=m["seconds_per_phase"],
        peak_memory_gib=None if result.peak_memory_bytes is None else round(result.peak_memory_bytes / 2**30, 2),
    )
    if args.picture and name == "fox" and kind == "none":
        from a3d_cli.io.images import save_png

        i = 1  # a view below the orbit
        save_png(Path(args.picture), torch.cat([truth[i], renders["splats"][i], renders["mesh"][i]], dim=1))
    shutil.rmtree(folder, ignore_errors=True)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description="Benchmark a3d lift on ground-truth orbits.")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reduced", action="store_true", help="CPU reduced size: 128² views, 96² fit, fewer steps, perturbations none + all")
    ap.add_argument("--asset", action="append", default=[], help="extra mesh files to lift (any format a3d reads)")
    ap.add_argument("--assets", default="fox,toy", help="comma list: fox, toy and names from benchmarks/public_assets.py "
                    "(e.g. Duck, CesiumMilkTruck, BoxTextured; run that script first)")
    ap.add_argument("--assets-dir", type=Path, default=ROOT / "benchmarks" / ".assets", help="where public_assets.py put them")
    ap.add_argument("--orbit", choices=ORBITS, default="static", help="the truth's orbit: SV3D's static one (21 views at "
                    "10°) or SV3D_p's dynamic one (a3d orbit --orbit dynamic: seeded wobbling elevation, uneven azimuths; seed --seed)")
    ap.add_argument("--perturbations", default=None, help=f"comma list of {', '.join(PERTURBATIONS)}")
    ap.add_argument("--size", type=int, default=None, help="orbit frame size (576 full, 128 reduced)")
    ap.add_argument("--resolution", type=int, default=None, help="lift fit size (stage default full, 96 reduced)")
    ap.add_argument("--steps", type=int, default=None, help="lift steps (stage default full, 300 reduced)")
    ap.add_argument("--mesh-resolution", type=int, default=None, help="TSDF voxels per axis (stage default)")
    ap.add_argument("--keep-undersides", dest="open_undersides", action="store_false", help="mesh without opening the "
                    "hidden space under overhangs (a3d lift --no-open-undersides)")
    ap.add_argument("--unseen-radius", type=float, default=None, help="a3d lift --unseen-radius (0: bake the fitted "
                    "colours where no view saw the surface)")
    ap.add_argument("--mesh-smoothing", type=int, default=None, help="a3d lift --mesh-smoothing (Taubin passes over "
                    "the mesh; 0: none, the surface as marching cubes made it)")
    ap.add_argument("--eval-size", type=int, default=None, help="held-out render size (256 full, 128 reduced)")
    ap.add_argument("--gt-splats", type=int, default=None, help="splats of the truth (200k full, 40k reduced)")
    ap.add_argument("--alpha", action="store_true", help="write the orbits as RGBA (masks from alpha) instead of RGB on "
                    "white: the reference for the masks")
    ap.add_argument("--lighting", choices=LIGHTINGS, default="studio", help="the truth's colours: lit by a3d's "
                    "fixed studio lighting (a3d_cli.mesh.shading), as SV3D's shaded views are, or unlit albedo "
                    "(a white body is then exactly the background's white)")
    ap.add_argument("--held-out", type=float, nargs=2, default=HELD_OUT,
                    metavar=("LOW", "HIGH"), help="elevations of the 8 held-out views below and the 8 above the orbit "
                    "(default ±20° about its 10°: −10 30)")
    ap.add_argument("--points", type=int, default=100_000, help="surface samples for Chamfer / F-score")
    ap.add_argument("--preview-frames", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--picture", default=None, help="save truth | splats | mesh of one fox held-out view here")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    red = args.reduced
    args.size = args.size or (128 if red else 576)
    args.resolution = args.resolution or (96 if red else None)
    args.steps = args.steps or (300 if red else None)
    args.eval_size = args.eval_size or (128 if red else 256)
    args.gt_splats = args.gt_splats or (40_000 if red else 200_000)
    args.preview_frames = args.preview_frames or (8 if red else 48)
    kinds = (args.perturbations or ("none,all" if red else ",".join(PERTURBATIONS))).split(",")
    assets = load_assets([a.strip() for a in args.assets.split(",") if a.strip()], args.asset, args.assets_dir)
    work = args.work or Path(tempfile.mkdtemp(prefix="a3d-bench-lift-"))
    rows = []
    for name, mesh in assets.items():
        for kind in kinds:
            row = bench_one(name, mesh, kind, args, work)
            print(json.dumps(row), flush=True)
            rows.append(row)
    low, high = (f"{e:+g}°" for e in args.held_out)
    header = (f"| asset | orbit | perturbation | PSNR splats / mesh / hull | mesh PSNR {low} / {high} | "
              "unseen / grazed share | "
              "mesh PSNR, unseen right | SSIM splats / mesh | Chamfer % | F@1% | F@5% | normal ° mean / p90 | mask IoU (fit / truth) | s (fit, mesh, texture) | total s | peak GiB |")  # fmt: skip
    print(header)
    print("|" + "---|" * 16)
    for r in rows:
        ph = r["seconds_per_phase"]
        print(
            f"| {r['asset']} | {r['orbit']} | {r['perturbation']} | {r['psnr_splats']} / {r['psnr_mesh']} / {r['psnr_hull']} | "
            f"{r['mesh_psnr_low']} / {r['mesh_psnr_high']} | {r['mesh_share_unseen']} / {r['mesh_share_grazed']} | {r['mesh_psnr_unseen_right']} | "
            f"{r['ssim_splats']} / {r['ssim_mesh']} | {r['chamfer_pct']} | {r['fscore_1']} | {r['fscore_5']} | "
            f"{r['normal_deg_mean']} / {r['normal_deg_p90']} | "
            f"{r['mask_iou']} / {r['mask_iou_truth']} | {ph.get('fit')}, {ph.get('mesh')}, {ph.get('texture')} | {r['seconds']} | {r['peak_memory_gib']} |"
        )
    if args.out:
        meta = {"date": dt.date.today().isoformat(), "device": args.device, "torch": torch.__version__,
                "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None}  # fmt: skip
        args.out.write_text(json.dumps({"meta": meta, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
