"""Fitted splats → one closed triangle mesh: TSDF fusion of rendered depths, marching cubes, clean-up.

Why this route: flat, opaque splats render a sharp expected depth, so fusing their depth maps in the
views they were fitted to into a truncated signed-distance volume gives a smooth implicit surface;
PyMCubes' marching cubes turns its zero level into triangles. Only the fitted views are fused: from any
other direction the splats show what no view constrained (holes, stray depths), and fusing those renders
carved tunnels into the object and left surfaces inside it. Pixels the splats leave empty carve free
space; space hidden behind the surface in the views is inside, so the result is closed and
watertight-enough for `a3d prepare`. The fused depth comes from the splats drawn as narrower discs
where that is safe (`depth_renders`: full-width discs put a curved surface in front of itself), and the
rendered silhouettes bound the volume (`fuse_tsdf`'s `carve_tolerance`). Below the lowest point the views see there is nothing to go by (an
orbit from above never sees the underside), so the volume is cut flat there instead of keeping the
visual hull's wedge. Only the largest connected piece is kept (floaters go), its surface is smoothed by
Taubin's filter (`smooth_surface`: the fused depths' and marching cubes' noise makes lumps that lit
viewers show), and pymeshlab's quadric decimation (`a3d_cli.mesh.simplify`) bounds the face count.

Examples:
    >>> mesh = extract_mesh(g, cameras, half_width=0.66, MeshSettings())  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.lift.hull import backproject, chunk_centres, project, sample_images
from a3d_cli.render.cameras import CameraSet

NECK_GRID = 96
"""The grid's width in cracks: free space narrower than about 2/NECK_GRID of it is a crack the splats
left, not real space: `open_undersides` ignores such openings in a slice's walls (not the way in under an
overhang), and `close_tunnels` fills such one-view tunnels."""

SMOOTHING_PASSES = 40
"""Default Taubin passes over the marching-cubes surface (`MeshSettings.smoothing`; chosen on the lift
benchmark's shading-normal angle, docs/PERF.md)."""
TAUBIN_LAMBDA = 0.5
"""Taubin's shrinking step: each vertex moves this share of the way to its neighbours' mean."""
TAUBIN_MU = 0.53
"""... and the inflating step moves it this share away again (Taubin's suggested pair with 0.5: the
pass band 1/λ − 1/μ ≈ 0.11 keeps the shape's broad curvature, and its volume, while the voxel-scale
ripples, whose Laplacian is large, are damped every pass)."""


@dataclass(frozen=True)
class MeshSettings:
    """Knobs of the mesh extraction."""

    resolution: int = 192
    """TSDF voxels per axis."""
    depth_size: int = 256
    """Size of the depth renders fused (pixels)."""
    truncation: float = 2.0
    """Truncation distance, in voxels (a wider band rounds a curved surface's outline outwards)."""
    max_faces: int = 40_000
    """Faces after simplification (about twice the vertices)."""
    alpha_threshold: float = 0.5
    """Rendered alpha above which a pixel holds surface."""
    floor: bool = True
    """Cut the volume at the lowest point the fitted views see (no view saw anything below it)."""
    depth_footprint: float = 0.7
    """The splats' in-plane scales are multiplied by this for the depth renders fused (1: as fitted)."""
    carve_tolerance: int | None = 1
    """Bound the volume by the rendered silhouettes, letting this many views disagree (None: no bound)."""
    open_undersides: bool = True
    """Hidden space under an overhang that free space reaches sideways is outside (`open_undersides`)."""
    smoothing: int = SMOOTHING_PASSES
    """Taubin passes over the marching-cubes surface (`smooth_surface`; 0: none). Counted in passes over
    the unsimplified mesh, whose edges are about a voxel, so it damps ripples a few voxels wide at any grid
    size: the same on every device."""
    level: float = 0.0
    """Voxels outside the TSDF's zero level the surface is taken at (negative: inside). Why: a short fit's
    splats fall short of the object's outline, and the surface fused from them lies inside the true one;
    a fit run to its end places it right, and any raise then moves it off (the lift stage's defaults follow
    the device's fit length, docs/lift.md)."""


def depth_renders(
    g: Gaussians, cameras: CameraSet, size: int, footprint: float = 1.0, alpha_threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """(alphas, expected depths) [V, S, S] of the splats, the depth taken where it can be from a render
    with their in-plane scales times `footprint`; on the splats' device.

    Why narrower: fitted splats are large opaque discs that overlap in layers, and a flat disc tangent
    to a curved surface leaves it towards its rim, so the frontmost rims decide a pixel's depth and the
    surface renders in front of where it lies; the fused mesh then grows by that much. Narrower discs
    render the depth nearer their centres, which the fit placed on the surface. Where they open a gap
    (sparse splats), or show a layer behind, the narrower render would carve a hole or sink the surface:
    there, and wherever its depth lies more than a typical splat radius (the median in-plane scale)
    behind the full render's, the full render's depth stays. The alphas are always the full render's,
    so the silhouettes and the covered pixels do not change.
    """
    from a3d_cli.lift.fit import render_chunked

    dev = g.means.device
    _, alphas, depths = render_chunked(g, cameras, size, depth=True)
    if footprint != 1.0 and len(g):
        shrink = torch.tensor([footprint, footprint, 1.0], device=dev, dtype=g.scales.dtype)
        _, a_narrow, d_narrow = render_chunked(g.with_(scales=g.scales * shrink), cameras, size, depth=True)
        radius = float(g.scales[:, :2].amax(dim=1).median())
        keep = (a_narrow > alpha_threshold) & (d_narrow - depths < radius)
        depths = torch.where(keep, d_narrow, depths)
    return alphas.to(dev), depths.to(dev)


def lowest_seen(depths: Tensor, alphas: Tensor, cameras: CameraSet, alpha_threshold: float = 0.5, quantile: float = 1e-3) -> float:
    """Height (world Y) of the lowest surface point the views see: their rendered depths back-projected.

    A low quantile rather than the minimum, so that a few stray pixels do not decide it.

    Args:
        depths: [V, S, S] expected depth; alphas: [V, S, S]; cameras: the V cameras.
    """
    size = depths.shape[1]
    world_y = backproject(depths, cameras.Ks(size, size).to(depths), cameras.c2w.to(depths))[..., 1]  # [V, S, S]
    seen = world_y[alphas > alpha_threshold]
    if seen.numel() == 0:
        return float("-inf")
    return low_quantile(seen, quantile)


def low_quantile(values: Tensor, quantile: float) -> float:
    """The `quantile` of all `values` (the nearest lower rank, no interpolation).

    `kthvalue` rather than `torch.quantile`, which refuses inputs above 2^24 elements: the depth maps of a
    fine mesh resolution hold more pixels than that, and a prefix would only see the first views.
    """
    flat = values.float().flatten()
    rank = int(quantile * (flat.numel() - 1)) + 1
    return float(flat.kthvalue(rank).values)


def silhouette_distance(alphas: Tensor, alpha_threshold: float = 0.5) -> Tensor:
    """[V, S, S] signed distance in pixels from each pixel centre to the views' silhouette edge (alpha above
    the threshold), negative inside: the Euclidean distance transform (scipy) of both sides, less half a
    pixel, so the edge lies half-way between the last pixel in and the first out."""
    from scipy.ndimage import distance_transform_edt

    sil = (alphas > alpha_threshold).cpu().numpy()
    out = np.stack([distance_transform_edt(~m) - distance_transform_edt(m) for m in sil])  # + outside, − inside
    out = out - 0.5 * np.sign(out)
    return torch.from_numpy(out).float().to(alphas.device)


def fuse_tsdf(
    depths: Tensor, alphas: Tensor, cameras: CameraSet, resolution: int, half_width: float, truncation: float,
    alpha_threshold: float = 0.5, chunk: int = 1 << 18, floor: float | None = None, carve_tolerance: int | None = None,
    open_under: bool = False,
) -> Tensor:  # fmt: skip
    """Truncated signed distance on a [G, G, G] grid over [-half_width, half_width]³ (negative inside).

    Per view and voxel: a pixel with surface gives sdf = clamp(depth − voxel depth, ±truncation) (skipped
    when the voxel lies more than one truncation behind the surface: occluded, unknown); an empty pixel
    gives +truncation (free space). A voxel no view decides is inside (−truncation) when some view sees
    it hidden behind the surface, else outside (+truncation): the object's interior lies behind its
    surface in every view, and calling it outside would grow a second, inner wall one truncation below
    the surface, which joins the outer one wherever the fitted surface has a hole.

    With `carve_tolerance` k, the silhouettes bound the volume too: a voxel's distance outside a view's
    silhouette (`silhouette_distance`, pixels scaled to its depth) is a lower bound of its signed
    distance, and the (k+1)-th largest bound over the views (k views may disagree, as for the visual
    hull) is imposed. Fused depths alone let a surface that the depths place slightly in front of where it
    is (a fitted surface of several thin layers) grow past the outline every view agrees on. The same k
    applies to free space: what at most k views see free, through a surface further along their rays,
    while more views see it hidden behind their surface, is filled where it is too narrow to be real space
    (`close_tunnels`: a small hole in the fitted surface lets a view see the far inside wall).

    With `floor`, nothing lies below that height: the volume is cut by the plane Y = floor (the signed
    distance is the larger of the fused one and the distance below the plane).

    With `open_under`, the hidden space under overhangs is opened from below (`open_undersides`).

    Args:
        depths: [V, S, S] expected depth; alphas: [V, S, S]; cameras: the V cameras.
    """
    size = depths.shape[1]
    g = resolution
    tsdf = torch.empty(g**3, device=depths.device)
    assumed = torch.zeros(g**3, dtype=torch.bool, device=depths.device) if open_under else None  # inside as hidden
    lone = torch.zeros(g**3, dtype=torch.bool, device=depths.device) if carve_tolerance is not None else None
    maps = torch.stack([depths, alphas], dim=-1)  # [V, S, S, 2]
    outline = silhouette_distance(alphas, alpha_threshold)[..., None] if carve_tolerance is not None else None  # [V, S, S, 1]
    focal = cameras.Ks(size, size).to(depths)[:, 0, 0, None]  # [V, 1] pixels
    k = min(int(carve_tolerance or 0), len(cameras) - 1)
    for start in range(0, g**3, chunk):
        p = chunk_centres(start, min(start + chunk, g**3), g, half_width, depths.device)
        uv, z = project(p, cameras, size)  # [V, P, 2], [V, P]
        inside = (uv >= 0).all(-1) & (uv < size).all(-1) & (z > 0)
        d_a = sample_images(maps, uv, mode="nearest")  # [V, P, 2]
        d, a = d_a[..., 0], d_a[..., 1]
        surface = inside & (a > alpha_threshold)
        sdf = torch.where(surface, (d - z).clamp(-truncation, truncation), torch.full_like(z, truncation))
        valid = inside & (~surface | (d - z > -truncation))
        behind = surface & ~valid  # [V, P] hidden behind the view's surface
        hidden = behind.any(0)
        w = valid.float()
        total = w.sum(0)
        undecided = torch.where(hidden, torch.full_like(total, -truncation), torch.full_like(total, truncation))
        fused = torch.where(total > 0, (sdf * w).sum(0) / total.clamp_min(1), undecided)
        if outline is not None:
            dist = sample_images(outline, uv, mode="bilinear")[..., 0] * z / focal  # [V, P] world
            dist = torch.where(inside, dist, torch.full_like(dist, -truncation))  # out of frame: no bound
            bound = dist.topk(k + 1, dim=0).values[-1]  # [P]
            fused = torch.maximum(fused, bound.clamp(-truncation, truncation))
        if floor is not None:
            fused = torch.maximum(fused, (floor - p[:, 1]).clamp(-truncation, truncation))
        tsdf[start : start + chunk] = fused
        if assumed is not None:
            assumed[start : start + chunk] = (total == 0) & hidden & (fused < 0)
        if lone is not None:
            ahead = valid & (sdf > 0)  # in front of the view's surface, or its pixel is empty
            count = ahead.sum(0)
            few = (count > 0) & (count <= k) & (count == total) & ((ahead & surface).sum(0) == count)
            lone[start : start + chunk] = few & (behind.sum(0) > k) & (fused > 0)
    tsdf = tsdf.reshape(g, g, g)
    neck = max(2, round(g / NECK_GRID))  # a crack is a physical width: more voxels on a finer grid
    if lone is not None and bool(lone.any()):
        tsdf, tunnels = close_tunnels(tsdf, lone.reshape(g, g, g), truncation, neck)
        if assumed is not None:
            assumed |= tunnels.flatten()
    if assumed is not None:
        voxel = 2 * half_width / g
        seen_floor = floor is not None and math.isfinite(floor)
        lowest = max(0, math.ceil((floor + half_width) / voxel - 0.5)) if seen_floor else 0  # first slice above it
        tsdf = open_undersides(tsdf, assumed.reshape(g, g, g), truncation, lowest=lowest, neck=neck)
    return tsdf


def close_tunnels(tsdf: Tensor, lone: Tensor, truncation: float, neck: int) -> tuple[Tensor, Tensor]:
    """Fill free space that one view's ray bored through the object: (the TSDF, the filled voxels [G, G, G]).

    Why: where the fitted surface has a small hole, the view looking through it sees the far inside wall,
    and its depth calls every voxel along that ray free. Every other view sees those voxels hidden behind
    the surface and so has no say, so each view through the hole bores a thin tunnel into the interior, and
    the tunnels' walls become surface inside the object. Such voxels are `lone`: at most the carve
    tolerance's views see them free (up to a surface further along), more see them hidden. They are filled
    when no cube wider than a crack (2 · `neck` + 1 voxels, `neck` as in `open_undersides`) that fits in the
    free space covers them: free space an object really has, such as the space beside a wheel that few
    views see, is part of a wider region. A view that sees the background through a gap is not doubted.

    Args:
        tsdf: [G, G, G] fused signed distance (positive outside); lone: [G, G, G] bool, the voxels at most
            k views see in front of a surface further along their rays while more views see them hidden.
        truncation: the value filled voxels get (negated); neck: half the crack width, in voxels.
    """
    from scipy import ndimage

    g = tsdf.shape[0]
    box = grown_box(tsdf, neck + 1)
    free = (tsdf[box] > 0).cpu().numpy()
    side = 2 * neck + 1  # opening by a cube: what such cubes inside the free space cover (beyond the box: free)
    core = ndimage.minimum_filter(free, size=side, mode="constant", cval=1)
    wide = ndimage.maximum_filter(core, size=side, mode="constant", cval=1)
    tunnels = np.zeros((g, g, g), dtype=bool)
    tunnels[box] = lone[box].cpu().numpy() & free & ~wide
    filled = torch.from_numpy(tunnels).to(tsdf.device)
    return tsdf.masked_fill(filled, -truncation), filled


def open_undersides(
    tsdf: Tensor, assumed: Tensor, truncation: float, lowest: int = 0, neck: int = 2, resting: float = 0.5,
    exposed: float = 0.3,
) -> Tensor:  # fmt: skip
    """Turn the hidden space under overhangs into outside, slice by slice from the bottom up.

    Why: views from above an object never see under an overhang (a vehicle's body between its wheels, a
    table top, a belly between legs). The rays that pass under its lower edge carve free space only up to
    a wedge that rises from the far edge to the near one, and the wedge above is hidden in every view, so
    fusion calls it inside like the object's interior: the mesh gets a thick sloping bottom there. Here a
    horizontal slice's connected piece of such assumed-inside voxels ([X, Y, Z] grid, Y up) becomes outside
    when free space joined to the grid's edge touches at least `exposed` of its rim from the side (through
    openings wider than a crack) and lies right under at least `resting` of it, going up from the lowest
    slice: the wedge opens up to the overhang's lower edge, which the views did see, and the underside comes
    out flat there. The object's interior stays: its slices are walled in by the surface the views saw (a
    gap in a wall exposes only a little of the rim), and what lies below them is more interior. The floor's
    cut counts as nothing seen, so an object standing on its base (whose bottom is hidden too) keeps it.
    Enclosed free voxels (holes a view's splats left inside) are made inside first, so that an opened slice
    cannot join them to the outer surface as inner walls.

    Args:
        tsdf: [G, G, G] fused signed distance (positive outside); assumed: [G, G, G] bool, the voxels inside
            only because some view saw them hidden; truncation: the value given to opened voxels.
        lowest: the first slice above the floor's cut (nothing under it was seen free).
        neck: free space narrower than about twice this many voxels (a crack in a wall) does not reach in;
            its mouth still touches a voxel or two of a rim, which `exposed` outweighs.
        resting: the share of a piece that must have free space right under it.
        exposed: the share of a piece's rim that free space must touch.
    """
    from scipy import ndimage

    # only the object's box (grown past the structuring elements' reach) can change; beyond it all is free
    box = grown_box(tsdf, neck + 1)
    vol = tsdf[box].cpu().numpy().copy()
    hidden = assumed[box].cpu().numpy()
    lowest -= box[1].start
    free, _ = ndimage.label(vol > 0)
    faces = [free[[0, -1]], free[:, [0, -1]], free[:, :, [0, -1]]]
    edge_ids = np.unique(np.concatenate([f.ravel() for f in faces]))
    outside = np.isin(free, edge_ids[edge_ids > 0])  # free space joined to the grid's edge
    pockets = (vol > 0) & ~outside  # enclosed "free" voxels (views whose splats left a hole): inside, so that
    vol[pockets] = -truncation  # opening the bottom cannot join them to the outer surface as inner walls
    hidden = hidden | pockets
    cross = ndimage.generate_binary_structure(2, 1)
    wide = ndimage.iterate_structure(cross, neck)
    for y in range(vol.shape[1]):
        piece = hidden[:, y, :]
        if not piece.any():
            continue
        labels, count = ndimage.label(piece, structure=cross)
        # free space wider than a crack (what lies beyond the box is free too)
        reach = ndimage.binary_opening(outside[:, y, :], structure=wide, border_value=1)
        rim = piece & ~ndimage.binary_erosion(piece, structure=cross, border_value=1)
        beside = ndimage.binary_dilation(reach, structure=cross) & rim
        # the floor's cut is not seen free
        below = outside[:, y - 1, :] & piece if y > max(lowest, 0) else np.zeros_like(piece)
        size = np.bincount(labels.ravel(), minlength=count + 1)
        held = np.bincount(labels[below], minlength=count + 1)  # voxels with free space right under them
        edge = np.bincount(labels[rim], minlength=count + 1)
        open_edge = np.bincount(labels[beside], minlength=count + 1)  # rim voxels that free space touches
        ids = np.nonzero((held >= size * resting) & (open_edge >= edge * exposed) & (open_edge > 0))[0]
        ids = ids[ids > 0]
        if ids.size:
            opened = np.isin(labels, ids)
            vol[:, y, :][opened] = truncation
            outside[:, y, :] |= opened
    out = tsdf.clone()
    out[box] = torch.from_numpy(vol).to(tsdf)
    return out


def marching_cubes(tsdf: Tensor, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Zero level of a [G, G, G] TSDF as (vertices [V, 3] world, faces [T, 3], counter-clockwise outwards)."""
    import mcubes

    lo, hi = occupied_box(tsdf)
    vol = tsdf[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].cpu().numpy().astype(np.float64)
    vol = np.pad(vol, 1, constant_values=float(tsdf.max()))  # close surfaces cut by the grid's edge
    verts, faces = mcubes.marching_cubes(-vol, 0.0)  # PyMCubes: inside = larger values
    g = tsdf.shape[0]
    voxel = 2 * half_width / g
    verts = (verts - 1 + np.asarray(lo) + 0.5) * voxel - half_width
    faces = faces.astype(np.int64)
    if len(faces):
        tri = verts[faces]
        signed = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()
        if signed < 0:  # make the enclosed volume positive: normals point out
            faces = faces[:, ::-1].copy()
    return verts, faces


def grown_box(tsdf: Tensor, margin: int) -> tuple[slice, ...]:
    """`occupied_box` grown by `margin` voxels on every side (within the grid), as index slices: the region
    a morphological step reaching `margin` voxels can change (beyond it all is free)."""
    g = tsdf.shape[0]
    lo, hi = occupied_box(tsdf)
    return tuple(slice(max(0, a - margin), min(g, b + margin)) for a, b in zip(lo, hi, strict=True))


def occupied_box(tsdf: Tensor) -> tuple[list[int], list[int]]:
    """Index box [lo, hi) of the voxels at or below the zero level, grown by one voxel on every side.

    Marching cubes only needs that box: a cell crosses the zero level only if one of its corners lies
    at or below it, and all its corners then lie in the box. At a fine grid this skips most of the
    volume (the object rarely fills the cube), and the float64 copy PyMCubes works on shrinks with it.
    A grid with nothing inside gives a one-voxel box.
    """
    g = tsdf.shape[0]
    inside = tsdf <= 0
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        used = torch.nonzero(inside.any(dim=other[1]).any(dim=other[0])).flatten()
        if used.numel() == 0:
            return [0, 0, 0], [1, 1, 1]
        lo.append(max(0, int(used[0]) - 1))
        hi.append(min(g, int(used[-1]) + 2))
    return lo, hi


def largest_component(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected piece with the most faces (trimesh's face adjacency), unused vertices dropped."""
    import trimesh

    tm = trimesh.Trimesh(vertices=vertices, faces=faces, process=True, validate=False)
    parts = tm.split(only_watertight=False)
    if len(parts) > 1:
        tm = max(parts, key=lambda m: len(m.faces))
    return np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces, dtype=np.int64)


def smooth_surface(vertices: np.ndarray, faces: np.ndarray, passes: int) -> np.ndarray:
    """Vertices [V, 3] moved by `passes` rounds of Taubin's λ|μ smoothing (trimesh.smoothing.filter_taubin,
    neighbours equally weighted); faces [T, 3] unchanged. 0 passes returns the vertices as they are.

    Why: the fused depths carry the fit's noise and marching cubes places each vertex on a voxel edge, so
    the surface ripples at the voxel's scale where the object is smooth; with smooth vertex normals a lit
    viewer (a game engine, Blender) shows those ripples as lumps, where a3d's unlit previews hide them.
    Taubin's filter rather than plain Laplacian smoothing: each shrinking step is followed by an inflating
    one, so thin parts (ears, legs, a tail) keep their width and the volume stays, where plain smoothing
    pulls every vertex towards its neighbours' mean and thins them pass by pass. On the mesh rather than on
    the TSDF: blurring the truncated field moves the zero level of parts thinner than the truncation band
    and can erase them.

    Args:
        vertices: [V, 3] of a closed, vertex-shared mesh (as `largest_component` returns it).
        faces: [T, 3].
        passes: shrink + inflate rounds.
    """
    if passes <= 0 or len(faces) == 0:
        return vertices
    import trimesh

    tm = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    trimesh.smoothing.filter_taubin(tm, lamb=TAUBIN_LAMBDA, nu=TAUBIN_MU, iterations=2 * passes)
    return np.asarray(tm.vertices, dtype=np.float64)


def extract_mesh(g: Gaussians, cameras: CameraSet, half_width: float, settings: MeshSettings) -> tuple[np.ndarray, np.ndarray]:
    """Fitted splats → (vertices [V, 3], faces [T, 3]) of their surface, in the cameras' world frame.

    Args:
        g: the fitted splats; cameras: the views they were fitted to (the ones fused).

    Raises:
        ValueError: the splats render no surface (nothing to mesh).
    """
    alphas, depths = depth_renders(g, cameras, settings.depth_size, settings.depth_footprint, settings.alpha_threshold)
    voxel = 2 * half_width / settings.resolution
    floor = lowest_seen(depths, alphas, cameras, settings.alpha_threshold) if settings.floor else None
    tsdf = fuse_tsdf(
        depths, alphas, cameras, settings.resolution, half_width, settings.truncation * voxel, settings.alpha_threshold,
        floor=floor, carve_tolerance=settings.carve_tolerance, open_under=settings.open_undersides,
    )  # fmt: skip
    return mesh_from_tsdf(tsdf, half_width, settings)


def mesh_from_tsdf(tsdf: Tensor, half_width: float, settings: MeshSettings) -> tuple[np.ndarray, np.ndarray]:
    """The surface of a [G, G, G] TSDF over [-half_width, half_width]³ as (vertices [V, 3], faces [T, 3]):
    marching cubes at `settings.level` voxels outside the zero level, the largest connected piece,
    `settings.smoothing` Taubin passes, then decimation to `settings.max_faces`.

    Raises:
        ValueError: the volume holds no surface.
    """
    from a3d_cli.mesh.simplify import simplify_mesh
    from a3d_cli.mesh.surface import SurfaceMesh

    if settings.level:
        tsdf = tsdf - settings.level * 2 * half_width / tsdf.shape[0]
    verts, faces = marching_cubes(tsdf, half_width)
    if len(faces) == 0:
        raise ValueError("the fitted splats enclose no volume")
    verts, faces = largest_component(verts, faces)
    verts = smooth_surface(verts, faces, settings.smoothing)
    mesh = SurfaceMesh(verts, faces, np.ones((len(verts), 4), np.float32))
    # MeshLab alone: lift's quality figures (docs/lift.md) were measured with it, not with the fast first pass
    mesh = simplify_mesh(mesh, max(100, settings.max_faces // 2), fast_first_pass=False)
    return mesh.vertices, mesh.faces


__all__ = [
    "MeshSettings", "close_tunnels", "depth_renders", "extract_mesh", "fuse_tsdf", "grown_box", "largest_component",
    "low_quantile", "lowest_seen", "marching_cubes", "mesh_from_tsdf", "occupied_box", "open_undersides", "silhouette_distance",
    "smooth_surface",
]  # fmt: skip
