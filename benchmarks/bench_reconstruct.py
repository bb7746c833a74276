"""Benchmark `a3d reconstruct` on ground-truth motion: quality, time, memory, where the time goes.

Usage:
    python benchmarks/bench_reconstruct.py --device cuda --out results.json            # GPU reference sizes
    python benchmarks/bench_reconstruct.py --device cuda --variants default,100k       # + a 100k-splat model
    python benchmarks/bench_reconstruct.py --device cpu --out cpu.json                 # CPU quickstart
    python benchmarks/bench_reconstruct.py --gt gt --device cuda                       # an existing example
    python benchmarks/public_assets.py && \
    python benchmarks/bench_reconstruct.py --device cuda --preset reference --no-profile \
        --assets fox,Duck,CesiumMilkTruck,BoxTextured,Suzanne --out assets.json          # per-asset table
    python benchmarks/bench_reconstruct.py --device cuda --preset animate3d --no-profile \
        --assets fox,Duck,CesiumMilkTruck,BoxTextured,Suzanne --out animate3d.json        # Animate3D's settings

The ground truth comes from `examples/make_ground_truth_motion.py` (made here into a temporary folder unless
--gt is given): the bundled fox with a known bend + twist + nod, rendered as MV-VDM would (4 views × 16
frames, 256², grey background) plus 8 held-out views. For each variant the script

1. runs the reconstruct stage on a copy of the run folder (timed end to end, peak memory);
2. scores the fitted motion: PSNR and SSIM on the held-out views over all 16 frames (images on grey), and
   the mean vertex error of the mesh driven by the motion (vertex splats, via `static/binding.safetensors`;
   splat centres for a 3DGS asset) against the known positions, in % of the bounding radius, over frames
   1-15 (frame 0 is exact), and how much of the true motion was recovered: the fitted displacements
   projected on the true ones, Σ d_fit·d_true / Σ |d_true|² (100 % = all of it, in the right direction),
   and the magnitude ratio mean |d_fit| / mean |d_true|; the vertex error split into the vertex-frames at
   least one video camera sees and the rest (`gt_scoring.vertex_visibility`: what pixels can show at all),
   the *surface* error over the mesh's surface-sample splats (area-uniform: a box's 8 corners or a dense
   wheel do not dominate it), and, per asset, how far the true motion is from locally rigid
   (`arap.nonrigidity_pct`: what the fit's ARAP prior pushes against);
3. scores two baselines the same way: the static model (no motion) and the motion field at step 0 (it is
   zero-initialised, so it must equal the static model — a check of the init);
4. re-runs the fit with device synchronisation around each phase for a profile: data, HexPlane field
   (+ heads), rasterization (forward), losses + ARAP, backward + optimiser step.

Results go to --out as JSON and are printed as markdown rows for docs/PERF.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import sync  # noqa: E402
from public_assets import asset_sources  # noqa: E402

from a3d_cli.gaussians import motion_fit  # noqa: E402
from a3d_cli.gaussians.motion_field import MotionField  # noqa: E402
from a3d_cli.gaussians.motion_io import load_motion  # noqa: E402
from a3d_cli.gaussians.ply import read_ply  # noqa: E402
from a3d_cli.io import video_frames  # noqa: E402
from a3d_cli.io.images import load_png, resize_square  # noqa: E402
from a3d_cli.mesh.binding import MeshBinding  # noqa: E402
from a3d_cli.models.mvvdm.shape import NUM_FRAMES  # noqa: E402
from a3d_cli.render.cameras import CameraSet  # noqa: E402
from a3d_cli.run_layout import BINDING, CAMERAS_JSON, COARSE_MOTION, STATIC_PLY, VIEWS_CAMERAS  # noqa: E402
from a3d_cli.stages import reconstruct as stage  # noqa: E402
from a3d_cli.stages.base import Runtime  # noqa: E402


def ssim(a: torch.Tensor, b: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """Mean SSIM (Gaussian window 11, σ 1.5, per channel) of [B, H, W, 3] images in [0, 1]: [B].

    The window is applied as two 1D convolutions, `chunk` images at a time, to keep memory small.
    """
    g = torch.exp(-((torch.arange(11, dtype=torch.float32) - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).to(a.device)
    wx, wy = g.reshape(1, 1, 1, 11).expand(3, 1, 1, 11), g.reshape(1, 1, 11, 1).expand(3, 1, 11, 1)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(z, wx, groups=3), wy, groups=3)

    out = []
    for i in range(0, a.shape[0], chunk):
        x, y = a[i : i + chunk].permute(0, 3, 1, 2).float(), b[i : i + chunk].permute(0, 3, 1, 2).float()
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        c1, c2 = 0.01**2, 0.03**2
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        out.append(s.mean(dim=(1, 2, 3)))
    return torch.cat(out)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR of [B, H, W, 3] images in [0, 1]: [B]."""
    return -10 * torch.log10((a - b).square().mean(dim=(1, 2, 3)).clamp_min(1e-12))


def make_ground_truth(
    out: Path, splats: int, device: str, size: int, model: str | None = None, up: str = "+y",
    nonrigidity: float | None = None,
) -> Path:  # fmt: skip
    """Run examples/make_ground_truth_motion.py into `out` (on `model`, default the bundled fox; with
    `nonrigidity`, its deforming angles scaled to reach that non-rigidity)."""
    spec = importlib.util.spec_from_file_location("make_gt", ROOT / "examples" / "make_ground_truth_motion.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    extra = ["--model", model] if model else []
    extra += [f"--nonrigidity={nonrigidity}"] if nonrigidity is not None else []
    return mod.main(
        ["--out", str(out), "--splat-count", str(splats), "--device", device, "--size", str(size), f"--up={up}", *extra]
    )


def load_heldout(gt: Path) -> tuple[CameraSet, torch.Tensor, int]:
    """Held-out cameras and images [K, F, H, W, 3]."""
    cams = CameraSet.from_json(json.loads((gt / "heldout" / CAMERAS_JSON).read_text()))
    imgs = torch.stack(
        [
            torch.stack([load_png(gt / "heldout" / f"v{k}_f{f:02d}.png", "RGB") for f in range(NUM_FRAMES)])
            for k in range(len(cams))
        ]
    )
    return cams, imgs, imgs.shape[2]


def ground_truth_visibility(gt: Path, run_dir: Path) -> np.ndarray:
    """[F, P] bool: which scored points (mesh vertices, or splat centres of a 3DGS asset) at least one video
    camera sees at each frame of the true motion (`gt_scoring.vertex_visibility`; splat centres count as
    visible everywhere: they have no faces to occlude with)."""
    from gt_scoring import vertex_visibility  # imported here: older a3d_cli trees lack what it uses

    truth = np.load(gt / "ground_truth.npz")
    if "points" in truth and str(truth["points"]) == "splats":
        return np.ones(truth["vertices"].shape[:2], dtype=bool)
    cams = CameraSet.from_json(json.loads((gt / "video" / CAMERAS_JSON).read_text()))
    size = load_png(gt / "video" / "v0_f00.png", "RGB").shape[0]
    faces = MeshBinding.load(run_dir / BINDING).faces
    return vertex_visibility(truth["vertices"], faces, cams, size, samples=8 * size * size).any(axis=1)


def evaluate(
    motion: MotionField | None, gt: Path, run_dir: Path, device: str, visible: np.ndarray | None = None
) -> dict[str, float]:
    """Held-out PSNR/SSIM over all frames and vertex error (% radius, frames 1-15) of a motion (None = static).

    Besides the mean over all vertices: the mean over the vertex-frames seen by at least one video camera
    (`visible` [F, V], from `ground_truth_visibility`), and the *surface* error — over the surface-sample
    splats of a mesh (area-uniform, whatever the mesh's vertex density; every splat of a 3DGS asset or of
    a mesh made only of vertex splats).
    """
    static = read_ply(run_dir / STATIC_PLY).to(device)
    cams, target, size = load_heldout(gt)
    rgb, _ = motion_fit.render_all_frames(motion, static, cams, size)  # [K, F, H, W, 3]
    a, b = rgb.flatten(0, 1).clamp(0, 1), target.flatten(0, 1)
    truth = np.load(gt / "ground_truth.npz")
    with torch.no_grad():
        if motion is None:
            means = static.means[None].expand(NUM_FRAMES, -1, -1)
        else:
            means = motion(static, list(range(NUM_FRAMES))).means  # [F, N, 3]
    splat_means = means.cpu().numpy()  # [F, N, 3]
    if "points" in truth and str(truth["points"]) == "splats":
        verts, first_sample = splat_means, 0  # a 3DGS asset: the splat centres are the points
    else:
        binding = MeshBinding.load(run_dir / BINDING)
        verts, first_sample = binding.vertex_positions(splat_means), binding.num_vertex_splats
    err = np.linalg.norm(verts - truth["vertices"], axis=-1)  # [F, V]
    first_sample = first_sample if first_sample < splat_means.shape[1] else 0  # no surface samples: all splats
    surface_err = np.linalg.norm(splat_means[1:, first_sample:] - truth["splat_means"][1:, first_sample:], axis=-1)
    radius = float(truth["radius"])
    true_d = truth["vertices"][1:] - truth["rest_vertices"][None]  # [F-1, V, 3]
    fit_d = verts[1:] - verts[:1]  # displacement from the fitted frame 0
    out: dict[str, float | None] = {
        "heldout_psnr": round(float(psnr(a, b).mean()), 3),
        "heldout_ssim": round(float(ssim(a, b).mean()), 4),
        "vertex_error_pct": round(100 * float(err[1:].mean()) / radius, 3),
        "vertex_error_max_pct": round(100 * float(err[1:].max()) / radius, 3),
        # frames 1-15 one by one, with the true motion's size there: where in the clip the error sits
        "vertex_error_per_frame_pct": [round(100 * float(e) / radius, 3) for e in err[1:].mean(axis=1)],
        "true_motion_per_frame_pct": [
            round(100 * float(m) / radius, 3) for m in np.linalg.norm(true_d, axis=-1).mean(axis=1)
        ],
        "motion_recovered_pct": round(100 * float((fit_d * true_d).sum() / max((true_d**2).sum(), 1e-12)), 1),
        "motion_magnitude_pct": round(
            100 * float(np.linalg.norm(fit_d, axis=-1).mean() / max(np.linalg.norm(true_d, axis=-1).mean(), 1e-12)), 1
        ),
        "true_motion_pct_radius": round(100 * float(np.linalg.norm(true_d, axis=-1).mean()) / radius, 2),
        "surface_error_pct": round(100 * float(surface_err.mean()) / radius, 3),
    }
    if visible is not None:
        seen = visible[1:]
        out["visible_vertex_frames_pct"] = round(100 * float(seen.mean()), 1)
        out["vertex_error_visible_pct"] = round(100 * float(err[1:][seen].mean()) / radius, 3) if seen.any() else None
        unseen = err[1:][~seen]
        out["vertex_error_hidden_pct"] = round(100 * float(unseen.mean()) / radius, 3) if unseen.size else None
    return out


def fit_inputs(gt: Path, run_dir: Path, settings, device: str, seed: int) -> tuple:
    """What the stage hands `fit_motion` for this ground truth: (splats to fit, cameras, targets, masks).

    Masks are computed against the static silhouette (`gaussians.fit_targets`, the stage's own preparation
    for frames without alpha).
    """
    from a3d_cli.gaussians.fit_targets import fit_targets  # here: older trees get this checkout's module

    video = video_frames.read_video_frames(gt / "video")
    cams = video_frames.read_cameras(gt / "video", fallback=run_dir / VIEWS_CAMERAS)
    sd = read_ply(run_dir / STATIC_PLY).to(device)
    tg, mk, _ = fit_targets(video.rgb, None, cams, sd, settings.resolution, settings.masks)
    train = motion_fit.subsample_splats(sd, settings.max_splats, torch.Generator().manual_seed(seed))
    return train, cams, tg, mk


def bench_variant(name: str, gt: Path, args: argparse.Namespace, work: Path) -> dict:
    """Reconstruct + score one ground-truth folder."""
    from a3d_cli.gaussians.arap import nonrigidity_pct  # here, not at the top: older trees lack it

    run_dir = work / f"run_{name}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(gt / "run", run_dir)
    given = (("coarse_level", args.coarse_level), ("arap_anneal", args.arap_anneal),
             ("motion_prior", args.motion_prior), ("affine_neighbours", args.affine_neighbours))
    newer = {k: v for k, v in given if v is not None}
    opts = stage.ReconstructOptions(
        video=str(gt / "video"),
        preset=args.preset,
        steps=args.steps,
        resolution=args.resolution,
        max_splats=args.max_splats,
        hexplane_backend=args.hexplane_backend,
        preview=False,
        **newer,  # options older trees lack: passed only when given
    )
    if args.lambda_rgb is not None:  # a weight the stage has no option for: the preset's settings, one field changed
        opts = replace(opts, settings=replace(opts.resolve(args.device)[1], lambda_rgb=args.lambda_rgb))
    preset, settings = opts.resolve(args.device)
    static = read_ply(run_dir / STATIC_PLY)
    row: dict = {"coarse_level": args.coarse_level, "arap_anneal_option": args.arap_anneal, "lambda_rgb": settings.lambda_rgb,
                 "motion_prior": getattr(settings, "motion_prior", "arap"), "motion_prior_option": args.motion_prior,
                 "affine_neighbours": getattr(settings, "affine_neighbours", None),
                 "affine_neighbours_option": args.affine_neighbours, "lambda_rgb_option": args.lambda_rgb,
                 "arap_anneal": getattr(settings, "arap_anneal", 1.0), "grid_sizes": [list(g) for g in settings.field.grid_sizes],
                 "nonrigidity_target": args.nonrigidity, "variant": name, "hexplane_backend": settings.hexplane_backend, "device": args.device, "preset": preset, "splats": len(static), "steps": settings.steps,
                 "resolution": settings.resolution, "fit_splats": min(len(static), settings.max_splats or len(static))}  # fmt: skip
    if args.device.startswith("cuda"):
        row["gpu"] = torch.cuda.get_device_name()
        # warm-up: gsplat's JIT build, cuBLAS/cuSOLVER handles, allocator
        video = video_frames.read_video_frames(gt / "video")
        cams = video_frames.read_cameras(gt / "video", fallback=run_dir / VIEWS_CAMERAS)
        tg = resize_square(video.rgb, settings.resolution)
        warm = motion_fit.subsample_splats(
            static.to(args.device), settings.max_splats, torch.Generator().manual_seed(0)
        )
        motion_fit.fit_motion(warm, cams, tg, torch.ones(tg.shape[:-1]), replace(settings, steps=20, steps_per_frame=1))
        sync(args.device)
        torch.cuda.reset_peak_memory_stats()
    # 1. the stage, end to end
    sync(args.device)
    t0 = time.perf_counter()
    result = stage.run(run_dir, opts, Runtime(device=args.device, seed=args.seed, force=True))
    sync(args.device)
    row["total_seconds"] = round(time.perf_counter() - t0, 2)
    row["fit_seconds"] = result.metrics.get("fit_seconds")
    row["seconds_per_phase"] = result.metrics.get("seconds_per_phase")
    row["peak_memory_mib"] = round(result.peak_memory_bytes / 2**20, 1) if result.peak_memory_bytes else None
    row["train_view_psnr"] = result.metrics.get("psnr")
    # 2-3. quality of the result and of the baselines
    motion = load_motion(run_dir / COARSE_MOTION, static=static, device=args.device).field
    visible = ground_truth_visibility(gt, run_dir)
    row["result"] = evaluate(motion, gt, run_dir, args.device, visible)
    row["static"] = evaluate(None, gt, run_dir, args.device, visible)
    step0 = MotionField(settings.field, generator=torch.Generator().manual_seed(args.seed)).to(args.device).eval()
    row["step0"] = evaluate(step0, gt, run_dir, args.device, visible)
    true_splats = torch.from_numpy(np.load(gt / "ground_truth.npz")["splat_means"])
    row["gt_nonrigidity_pct"] = round(nonrigidity_pct(true_splats), 2)
    row["psnr_gain_db"] = round(row["result"]["heldout_psnr"] - row["static"]["heldout_psnr"], 3)
    # 4. profile (synchronised phases; a separate run)
    if args.profile:
        t = time.perf_counter()
        train, cams, tg, mk = fit_inputs(gt, run_dir, settings, args.device, args.seed)
        data_s = time.perf_counter() - t
        fit = motion_fit.fit_motion(train, cams, tg, mk, settings, seed=args.seed, profile=True)
        prof = {k: round(v, 3) for k, v in fit.profile.items()}
        prof["inputs_and_masks"] = round(data_s, 3)
        row["profile_seconds"] = prof
        row["profile_fit_seconds"] = round(fit.seconds, 2)
    return row


def markdown(rows: list[dict]) -> str:
    head = ("| date | device | variant | preset | splats (fit) | steps | res | total s | peak MiB | held-out PSNR (static / step 0) "
            "| SSIM (static) | vertex err % r (static) | profile s: field / raster / loss+ARAP / backward |")  # fmt: skip
    lines = [head, "|" + "---|" * 13]
    today = dt.date.today().isoformat()
    for r in rows:
        p = r.get("profile_seconds", {})
        prof = " / ".join(str(p.get(k, "-")) for k in ("field", "raster", "loss", "backward")) if p else "-"
        lines.append(
            f"| {today} | {r.get('gpu', r['device'])} | {r['variant']} | {r['preset']} | {r['splats']} ({r['fit_splats']}) | {r['steps']} "
            f"| {r['resolution']} | {r['total_seconds']} | {r['peak_memory_mib']} "
            f"| {r['result']['heldout_psnr']} ({r['static']['heldout_psnr']} / {r['step0']['heldout_psnr']}) "
            f"| {r['result']['heldout_ssim']} ({r['static']['heldout_ssim']}) "
            f"| {r['result']['vertex_error_pct']} ({r['static']['vertex_error_pct']}) | {prof} |"
        )
    return "\n".join(lines)


def asset_table(rows: list[dict]) -> str:
    """One markdown row per asset: quality against the static model and the share of motion recovered."""
    head = ("| date | device | asset | preset | splats (fit) | steps | total s | held-out PSNR (static) | vertex err % r "
            "(static) | motion recovered % (magnitude %) | true motion % r | vertex err % r: seen / unseen (% seen) "
            "| surface err % r (static) | true motion non-rigid % |")  # fmt: skip
    lines = [head, "|" + "---|" * 14]
    today = dt.date.today().isoformat()
    for r in rows:
        res, st = r["result"], r["static"]
        name = r["variant"] + {True: " + coarse level", False: " − coarse level"}.get(r.get("coarse_level"), "")
        name += f", ARAP anneal {r['arap_anneal_option']:g}" if r.get("arap_anneal_option") is not None else ""
        name += f", RGB weight {r['lambda_rgb_option']:g}" if r.get("lambda_rgb_option") is not None else ""
        name += f", {r['motion_prior_option']} prior" if r.get("motion_prior_option") is not None else ""
        k = r.get("affine_neighbours_option")
        name += f", {k} affine neighbours" if k is not None else ""
        name += f" @ {r['nonrigidity_target']:g} % non-rigid" if r.get("nonrigidity_target") is not None else ""
        lines.append(
            f"| {today} | {r.get('gpu', r['device'])} | {name} | {r['preset']} | {r['splats']} ({r['fit_splats']}) "
            f"| {r['steps']} | {r['total_seconds']} | {res['heldout_psnr']} ({st['heldout_psnr']}) "
            f"| {res['vertex_error_pct']} ({st['vertex_error_pct']}) | {res['motion_recovered_pct']} "
            f"({res['motion_magnitude_pct']}) | {res['true_motion_pct_radius']} "
            f"| {res.get('vertex_error_visible_pct')} / {res.get('vertex_error_hidden_pct')} ({res.get('visible_vertex_frames_pct')}) "
            f"| {res['surface_error_pct']} ({st['surface_error_pct']}) | {r.get('gt_nonrigidity_pct')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    from a3d_cli.gaussians.motion_field import COARSE_GRID

    ap = argparse.ArgumentParser(description="Benchmark a3d reconstruct on ground-truth motion.")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--gt", type=Path, default=None, help="ground-truth folder (default: made into a temp folder)")
    ap.add_argument("--splats", type=int, default=None, help="splats of the made example (default 20000 GPU, 5000 CPU)")
    ap.add_argument("--variants", default="default", help="comma list: default, 100k (a 100k-splat static model)")
    ap.add_argument("--assets", default="", help="comma list of assets instead of variants: fox and names from "
                    "benchmarks/public_assets.py (e.g. fox,Duck,CesiumMilkTruck,BoxTextured)")
    ap.add_argument("--assets-dir", type=Path, default=ROOT / "benchmarks" / ".assets")
    ap.add_argument("--size", type=int, default=256, help="ground-truth video size (MV-VDM: 256)")
    ap.add_argument("--preset", default="auto", choices=["auto", *stage.PRESETS])
    ap.add_argument("--steps", type=int, default=None, help="override the preset's steps (the schedule scales with them)")
    ap.add_argument("--resolution", type=int, default=None, help="override the preset's fit resolution")
    ap.add_argument("--max-splats", type=int, default=None, help="override the preset's splats fitted (0 = all)")
    ap.add_argument("--hexplane-backend", default=None, choices=["torch", "matmul"], help="HexPlane sampling backend")
    ap.add_argument("--nonrigidity", type=float, default=None, metavar="PCT",
                    help="made ground truths: scale each asset's deforming angles to this non-rigidity (%% of the "
                    "edge length; the fox's is about 5), so assets compare at equal deformation")
    ap.add_argument("--coarse-level", action=argparse.BooleanOptionalAction, default=None,
                    help=f"fit with (or, --no-coarse-level, without) the coarse HexPlane level {COARSE_GRID} in front "
                    "of the field's others (default: the preset's; the reference and quickstart presets have it)")
    ap.add_argument("--arap-anneal", type=float, default=None, metavar="A",
                    help="ARAP weight from A× to 1/A× over the fit (1 = Animate3D's constant; default: the preset's)")
    ap.add_argument("--motion-prior", choices=["arap", "affine"], default=None,
                    help="the fit's local motion prior (default: the preset's)")
    ap.add_argument("--affine-neighbours", type=int, default=None, metavar="K",
                    help="neighbours per point of the affine prior (default: the preset's)")
    ap.add_argument("--lambda-rgb", type=float, default=None, metavar="W",
                    help="weight of the image (RGB) loss (Animate3D's: 100, the reference preset's: 300; the preset's "
                    "settings with this one field changed, reported as preset 'custom')")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="skip the profiled second fit")
    ap.add_argument("--work", type=Path, default=None, help="where to keep ground truths and runs (default: temp)")
    ap.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="a3d_bench_recon_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    asset_names = [a.strip() for a in args.assets.split(",") if a.strip()]
    if asset_names:
        for name, (model, up) in asset_sources(asset_names, args.assets_dir).items():
            gt = work / (f"gt_{name}" if args.nonrigidity is None else f"gt_{name}_nr{args.nonrigidity:g}")
            splats = args.splats or (20_000 if args.device.startswith("cuda") else 5_000)
            if not (gt / "ground_truth.npz").is_file():
                t = time.perf_counter()
                make_ground_truth(gt, splats, args.device, args.size, model=model, up=up, nonrigidity=args.nonrigidity)
                print(f"[{name}] ground truth made in {time.perf_counter() - t:.1f} s", flush=True)
            row = bench_variant(name, gt, args, work)
            rows.append(row)
            print(json.dumps(row, indent=2), flush=True)
        table = asset_table(rows)
        print(table)
        if args.out:
            args.out.write_text(json.dumps({"rows": rows, "markdown": table}, indent=2))
        return rows
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if variant == "default":
            gt = args.gt or work / "gt_default"
            splats = args.splats or (20_000 if args.device.startswith("cuda") else 5_000)
        elif variant == "100k":
            gt, splats = work / "gt_100k", 100_000
        else:
            raise SystemExit(f"unknown variant {variant!r} (default, 100k)")
        if not (gt / "ground_truth.npz").is_file():
            t = time.perf_counter()
            make_ground_truth(gt, splats, args.device, args.size)
            print(f"[{variant}] ground truth made in {time.perf_counter() - t:.1f} s", flush=True)
        row = bench_variant(variant, gt, args, work)
        rows.append(row)
        print(json.dumps(row, indent=2), flush=True)
    print(markdown(rows))
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "markdown": markdown(rows)}, indent=2))
    return rows


if __name__ == "__main__":
    main()
