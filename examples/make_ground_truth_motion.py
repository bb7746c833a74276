"""Make a ground-truth 4D example: an asset with a known motion, rendered exactly like MV-VDM output.

Usage:
    python examples/make_ground_truth_motion.py --out gt                  # the bundled fox, 20k splats
    python examples/make_ground_truth_motion.py --model my.glb --out gt   # any file `a3d prepare` reads
    python examples/make_ground_truth_motion.py --model scene.ply --up -y --out gt   # a 3DGS file
    python examples/make_ground_truth_motion.py --out gt --splat-count 5000 --device cpu   # quicker on a CPU
    python examples/make_ground_truth_motion.py --model duck.glb --nonrigid-scale 0.5 --out gt  # half the bending
    python examples/make_ground_truth_motion.py --model duck.glb --nonrigidity 5 --out gt      # as non-rigid as the fox
Then:
    a3d reconstruct gt/run --video gt/video
    python benchmarks/bench_reconstruct.py --gt gt

What it writes into OUT:
    run/                    a run folder made by `a3d prepare` (static splats, binding for meshes, 4 views)
    video/v{v}_f{ff}.png    4 views × 16 frames, 256², elevation 15°, azimuths 0/90/180/270, radius 3,
                            fov 40°, RGB on 0.5 grey, no alpha — what `a3d mvvideo` produces — + cameras.json
    heldout/v{k}_f{ff}.png  8 held-out views × 16 frames, RGB on grey (elevation 0° at azimuths
                            30/120/210/300 and 30° at -45/45/135/225, Animate3D's test views) + cameras.json
    ground_truth.npz        vertices [16, V, 3] (normalized frame: the mesh vertices in the order of
                            run/source/mesh.glb, or the splat centres for a 3DGS input), rest_vertices [V, 3],
                            splat_means [16, N, 3], radius, points ("mesh" or "splats"), motion (JSON)

The motion (normalized frame, t = frame / 15, frame 0 = rest) is built from the asset's own axes (long axis
= the longer horizontal extent, so any asset works), and is smooth in space and time — a product of
rotations whose angles vary slowly along the long axis, so neighbouring points stay neighbours (the largest
edge stretch, `max_stretch`, printed at the end: 25 % on the test creature, 35 % on the fox, 51 % on the
Duck's neck; the narrow nod band this replaced reached 87 % on the creature and folded the Duck's surface)
and every point moves along a smooth path with no jump:
    1. a nod of the front half about a lateral axis, up to 14°, twice (a wide smoothstep blend, not a cut);
    2. a twist about the long axis, up to 14° at the ends;
    3. a bend: rotation about the lateral axis that grows linearly along the long axis (±10° at the ends);
    4. a global turn (±9° yaw) and hop (4 % of the radius).
`--nonrigid-scale S` multiplies the angles of 1-3 (the deformation) by S and keeps 4 (rigid). The same
angles deform a short, wide asset more than a long, narrow one (a twist shears a point in proportion to its
distance from the long axis over the half length), so `--nonrigidity PCT` instead picks the scale at which
the splats' motion has that non-rigidity (`a3d_cli.gaussians.arap.nonrigidity_pct`; the fox's is about 5 at
scale 1): assets compared at equal non-rigidity (docs/reconstruct.md, *What limits each asset*).
Splats follow it exactly: positions through the map, orientations through the rotation part (polar
decomposition) of its Jacobian, so the video is the motion of the very splats `a3d reconstruct` fits.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from a3d_cli.gaussians.arap import nonrigidity_pct
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.ply import read_ply
from a3d_cli.geometry import quat_multiply, rotmat_to_quat
from a3d_cli.io.images import save_png
from a3d_cli.kernels import rasterize
from a3d_cli.mesh.binding import MeshBinding
from a3d_cli.models.mvvdm.shape import NUM_FRAMES
from a3d_cli.render.cameras import MVVDM_BACKGROUND, CameraSet, mvvdm_cameras, orbit_cameras
from a3d_cli.run_layout import CAMERAS_JSON
from a3d_cli.stages.base import Runtime
from a3d_cli.stages.prepare import PrepareOptions
from a3d_cli.stages.prepare import run as prepare

HELDOUT = [(0.0, a) for a in (30.0, 120.0, 210.0, 300.0)] + [(30.0, a) for a in (-45.0, 45.0, 135.0, 225.0)]
DEFAULT_MESH = Path(__file__).resolve().parent / "assets" / "fox.glb"


@dataclass(frozen=True)
class MotionSpec:
    """The known motion, fitted to one mesh's extents (all lengths in the normalized frame)."""

    long_axis: int  # 0 (x) or 2 (z): the longer horizontal extent
    centre: tuple[float, float, float]  # bounding-box centre
    half_length: float  # half extent along the long axis
    part_start: float = 0.0  # the nod blends in over part_start < u < part_start + part_blend
    part_blend: float = 0.9  # (u = long coordinate / half_length, in [-1, 1])
    part_angle: float = 0.25  # radians of the nod
    twist: float = 0.25  # radians at u = ±1
    bend: float = 0.18  # radians at u = ±1
    yaw: float = 0.15  # radians of global turn
    hop: float = 0.036  # global rise

    @classmethod
    def for_points(cls, points: np.ndarray, nonrigid_scale: float = 1.0) -> MotionSpec:
        """The motion fitted to `points` [N, 3]; `nonrigid_scale` multiplies the angles of the parts that
        deform (nod, twist, bend), not the global turn and hop."""
        lo, hi = points.min(0), points.max(0)
        long_axis = 0 if (hi[0] - lo[0]) > (hi[2] - lo[2]) else 2
        return cls(
            long_axis=long_axis,
            centre=tuple(float(c) for c in (lo + hi) / 2),
            half_length=float(hi[long_axis] - lo[long_axis]) / 2,
            part_angle=cls.part_angle * nonrigid_scale,
            twist=cls.twist * nonrigid_scale,
            bend=cls.bend * nonrigid_scale,
        )


def _rotate(p: torch.Tensor, axis: int, angle: torch.Tensor, pivot: torch.Tensor) -> torch.Tensor:
    """Rotate points p [N, 3] about the world axis `axis` through `pivot` [N, 3] or [3] by angle [N] or []."""
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    c, s = torch.cos(angle), torch.sin(angle)
    d = p - pivot
    out = p.clone()
    out[:, a] = pivot[..., a] + c * d[:, a] - s * d[:, b]
    out[:, b] = pivot[..., b] + s * d[:, a] + c * d[:, b]
    return out


def motion_map(p: torch.Tensor, t: float, spec: MotionSpec) -> torch.Tensor:
    """Where rest points p [N, 3] are at time t in [0, 1] (t = 0 and t = 1 are the identity)."""
    p = p.double()
    centre = torch.tensor(spec.centre, dtype=torch.float64)
    la = spec.long_axis
    lat = 2 if la == 0 else 0  # the other horizontal axis
    sign = 1.0 if la == 2 else -1.0  # a positive angle about `lat` lifts the +u end, for either long axis
    u = ((p[:, la] - centre[la]) / spec.half_length).clamp(-1.0, 1.0)  # [N] in [-1, 1]
    up = math.sin(math.pi * t)
    # 1. nod of the front half, blended in smoothly over a wide band (rotation about the lateral axis)
    w = ((u - spec.part_start) / spec.part_blend).clamp(0, 1)
    w = w * w * (3 - 2 * w)  # smoothstep
    pivot = centre.clone()
    pivot[la] = centre[la] + spec.part_start * spec.half_length
    q = _rotate(p, lat, -sign * w * spec.part_angle * math.sin(2 * math.pi * t), pivot)
    # 2. twist about the long axis, growing along it
    q = _rotate(q, la, spec.twist * up * u, centre)
    # 3. bend: the ends turn up, the angle growing linearly along the long axis
    q = _rotate(q, lat, -sign * spec.bend * up * u, centre)
    # 4. global turn and hop
    q = _rotate(q, 1, torch.tensor(spec.yaw * up, dtype=torch.float64), centre)
    q[:, 1] = q[:, 1] + spec.hop * up
    return q


def max_stretch(rest: np.ndarray, edges: np.ndarray, moved: np.ndarray) -> float:
    """Largest relative change of an edge's length, |l_t / l_0 - 1|, over frames: neighbouring points stay
    neighbours when this is small.

    Args:
        rest: [V, 3] rest positions; edges: [E, 2] index pairs; moved: [F, V, 3] positions per frame.
    """
    l0 = np.linalg.norm(rest[edges[:, 0]] - rest[edges[:, 1]], axis=-1)  # [E]
    lt = np.linalg.norm(moved[:, edges[:, 0]] - moved[:, edges[:, 1]], axis=-1)  # [F, E]
    keep = l0 > 1e-9
    return float(np.abs(lt[:, keep] / l0[keep] - 1.0).max())


def calibrate_nonrigid_scale(
    points: np.ndarray,
    target_pct: float,
    spec_points: np.ndarray | None = None,
    max_points: int = 4000,
    rounds: int = 4,
) -> float:
    """The `--nonrigid-scale` at which the motion of `points` [N, 3] has non-rigidity `target_pct`
    (`a3d_cli.gaussians.arap.nonrigidity_pct`, measured on at most `max_points` of them, evenly picked).

    Args:
        points: where the motion is measured (the splat centres: what the fit's ARAP term sees).
        target_pct: the non-rigidity wanted.
        spec_points: the points the motion is fitted to (`MotionSpec.for_points`; default `points`).

    Non-rigidity grows about linearly with the deforming angles, so a few proportional corrections converge.
    """
    pts = np.asarray(points, dtype=np.float64)[:: max(1, len(points) // max_points)]
    frame_of = np.asarray(spec_points if spec_points is not None else points)
    x = torch.from_numpy(pts)

    def measure(scale: float) -> float:
        spec = MotionSpec.for_points(frame_of, scale)
        return nonrigidity_pct(torch.stack([motion_map(x, f / (NUM_FRAMES - 1), spec) for f in range(NUM_FRAMES)]))

    scale, now = 1.0, measure(1.0)
    for _ in range(rounds):
        if now <= 1e-9:
            break
        scale *= target_pct / now
        now = measure(scale)
    return scale


def neighbour_edges(points: np.ndarray, k: int = 6) -> np.ndarray:
    """[P·k, 2] pairs joining each point to its k nearest neighbours (for splat inputs, which have no edges)."""
    x = torch.from_numpy(np.asarray(points, dtype=np.float32))
    nearest = torch.cat([torch.cdist(x[i : i + 2048], x).topk(k + 1, largest=False).indices[:, 1:] for i in range(0, len(x), 2048)])
    return np.stack([np.repeat(np.arange(len(x)), k), nearest.reshape(-1).numpy()], axis=-1)


def move_splats(g: Gaussians, t: float, spec: MotionSpec, h: float = 1e-4) -> Gaussians:
    """The splats at time t: centres through the map, orientations through its local rotation."""
    x = g.means.double()
    jac = torch.stack(
        [
            (motion_map(x + h * e, t, spec) - motion_map(x - h * e, t, spec)) / (2 * h)
            for e in torch.eye(3, dtype=torch.float64)
        ],
        -1,
    )  # [N, 3, 3]
    u, _, vh = torch.linalg.svd(jac)
    d = torch.ones_like(u[:, 0])
    d[:, 2] = torch.sign(torch.det(u @ vh))
    rot = u @ torch.diag_embed(d) @ vh  # polar rotation
    quats = quat_multiply(rotmat_to_quat(rot).float(), g.quats)
    return g.with_(means=motion_map(x, t, spec).float(), quats=torch.nn.functional.normalize(quats, dim=-1))


def render_on_grey(g: Gaussians, cams: CameraSet, size: int, device: str) -> torch.Tensor:
    """[V, size, size, 3] renders on the grey background (CPU)."""
    gd = g.to(device)
    colors, deg = (gd.sh_coeffs(), gd.sh_degree) if gd.sh_rest is not None else (gd.colors, None)
    with torch.no_grad():
        out = rasterize(
            gd.means, gd.quats, gd.scales, gd.opacities, colors, cams.viewmats.to(device), cams.Ks(size, size).to(device),
            size, size, sh_degree=deg, backgrounds=torch.full((len(cams), 3), MVVDM_BACKGROUND, device=device),
        )  # fmt: skip
    return out.colors.clamp(0, 1).cpu()


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", "--mesh", type=Path, default=DEFAULT_MESH,
                    help="input: any file a3d prepare reads (default: the bundled fox)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--splat-count", "--splats", dest="splats", type=int, default=20_000,
                    help="static splats on meshes (a3d prepare --splat-count)")
    ap.add_argument("--up", default="+y", help="the asset's up axis (a3d prepare --up)")
    ap.add_argument("--front", default="auto", help="the asset's front axis or auto (a3d prepare --front)")
    ap.add_argument("--shade", default="auto", choices=["auto", "on", "off"], help="a3d prepare --shade")
    ap.add_argument("--max-vertices", type=int, default=20_000, help="a3d prepare --max-vertices")
    ap.add_argument("--size", type=int, default=256, help="video and held-out resolution (MV-VDM: 256)")
    amount = ap.add_mutually_exclusive_group()
    amount.add_argument("--nonrigid-scale", type=float, default=1.0,
                        help="multiply the deforming angles (nod, twist, bend) by this; the turn and hop stay")
    amount.add_argument("--nonrigidity", type=float, default=None, metavar="PCT",
                        help="scale the deforming angles so the splats' motion has this non-rigidity "
                             "(%% of the edge length, arap.nonrigidity_pct; the fox's at scale 1 is about 5)")
    ap.add_argument("--heldout", type=int, default=len(HELDOUT), help="how many of the 8 held-out views")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    out: Path = args.out

    # 1. the static model, exactly as `a3d prepare` makes it
    run_dir = out / "run"
    opts = PrepareOptions(
        model=str(args.model.resolve()), up=args.up, front=args.front, shade=args.shade,
        splats=args.splats, max_vertices=args.max_vertices,
    )  # fmt: skip
    prepare(run_dir, opts, Runtime(device=args.device))
    static = read_ply(run_dir / "static/gaussians.ply")
    binding_file = run_dir / "static/binding.safetensors"
    if binding_file.is_file():  # a mesh: score its vertices
        binding = MeshBinding.load(binding_file)
        rest_np, edges, points = binding.rest_vertices, binding.edges, "mesh"
    else:  # a 3DGS file: score the splat centres
        rest_np = static.means.numpy()
        edges, points = neighbour_edges(rest_np), "splats"
    scale = args.nonrigid_scale
    if args.nonrigidity is not None:
        scale = calibrate_nonrigid_scale(static.means.numpy(), args.nonrigidity, spec_points=rest_np)
    spec = MotionSpec.for_points(rest_np, scale)

    # 2. the motion, per frame: splats (for the renders) and mesh vertices (for scoring)
    cams, held = mvvdm_cameras(), orbit_cameras(*zip(*HELDOUT[: args.heldout], strict=True), radius=3.0, fov_deg=40.0)
    (out / "video").mkdir(parents=True, exist_ok=True)
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    rest = torch.from_numpy(rest_np).double()
    vertices, splat_means = [], []
    for f in range(NUM_FRAMES):
        t = f / (NUM_FRAMES - 1)
        moved = move_splats(static, t, spec) if f else static
        vertices.append(motion_map(rest, t, spec).float().numpy())
        splat_means.append(moved.means.numpy())
        for v, img in enumerate(render_on_grey(moved, cams, args.size, args.device)):
            save_png(out / "video" / f"v{v}_f{f:02d}.png", img)
        for v, img in enumerate(render_on_grey(moved, held, args.size, args.device)):
            save_png(out / "heldout" / f"v{v}_f{f:02d}.png", img)
    (out / "video" / CAMERAS_JSON).write_text(cams.dumps(args.size, args.size))
    (out / "heldout" / CAMERAS_JSON).write_text(held.dumps(args.size, args.size))
    radius = float(np.linalg.norm(rest_np, axis=1).max())
    np.savez_compressed(
        out / "ground_truth.npz",
        vertices=np.stack(vertices),
        rest_vertices=rest_np,
        splat_means=np.stack(splat_means),
        radius=radius,
        points=points,
        motion=json.dumps(asdict(spec)),
    )
    disp = np.linalg.norm(np.stack(vertices) - rest_np[None], axis=-1)
    stretch = max_stretch(rest_np, edges, np.stack(vertices))
    nonrigid = nonrigidity_pct(torch.from_numpy(np.stack(splat_means)[:, :: max(1, len(static) // 4000)]))
    print(f"wrote {out}: {len(static)} splats, {len(rest)} {points} points, mean motion {100 * disp.mean() / radius:.1f}% "
          f"(max {100 * disp.max() / radius:.1f}%) of the radius {radius:.3f}, max edge stretch {100 * stretch:.1f}%, "
          f"non-rigidity {nonrigid:.1f}% (deforming angles ×{scale:.3f})")  # fmt: skip
    return out


if __name__ == "__main__":
    main()
