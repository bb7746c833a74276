"""UV atlas (xatlas) and a colour texture baked from the views onto a lifted mesh.

Each texel of the atlas is a point on the mesh (found by rasterizing the UV triangles in texture space).
Its colour is the weighted mean of the views that see it: a view counts when the point projects inside
it, lies on the fitted surface there (its camera depth is within `depth_tolerance` of the splats'
rendered depth, i.e. it is not hidden) and faces the camera; the weight is cos²(normal, view direction),
so grazing views, which smear colour, count little. Besides the orbit's views, the fitted splats are
rendered from where an orbit has none (`splat_view_cameras`: above, below and straight down on the
object) and those renders join the views: surface that the orbit sees only at a graze (the top of a
box from an orbit just above it) is coloured as the splats fitted to it show it from the front, where
the grazing views fail the depth test and a single nearest splat's colour would stand in for a whole
texel. Texels no view sees take the colour of the nearest fitted splat. Finally the atlas is padded a few texels around every chart so that
mip-mapping and bilinear filtering do not pull in the background at seams.

Examples:
    >>> uv, vmap, faces = unwrap(vertices, faces)  # doctest: +SKIP
    >>> tex = bake_texture(vertices[vmap], faces, uv, views.images, depths, views.cameras, g, size=1024)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.lift.hull import project, sample_images
from a3d_cli.render.cameras import CameraSet, orbit_cameras

PADDING = 4
"""Texels grown around every chart."""
SPLAT_VIEW_ELEVATIONS = (60.0, -60.0)
"""Elevations of the rings of splat views (8 azimuths each), besides one straight above and one below."""
MIN_SLOPE_COS = 0.1
"""`point_visibility(slope=True)`: the slope allowance stops growing beyond this grazing angle (84°)."""


def unwrap(
    vertices: np.ndarray, faces: np.ndarray, resolution: int = 1024, octants: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas parametrization, in one atlas.

    With `octants`, the surface is first cut into the 8 octants around the per-axis median of its vertices
    and each piece is handed to xatlas as its own mesh. Why: xatlas's chart search costs more than linearly
    in a mesh's size, so the pieces are charted much faster than the whole; the cuts only add chart
    boundaries where a chart would have crossed them (docs/PERF.md, *lift*).

    Returns:
        (uvs [V', 2] in [0, 1] with origin bottom-left as glTF-via-trimesh expects, vmapping [V'] original
        vertex of each new vertex, faces [T, 3] into the new vertices, in an order of their own).
    """
    import xatlas

    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = PADDING // 2
    pack.bilinear = True
    atlas = xatlas.Atlas()
    pieces = octant_pieces(vertices, faces) if octants and len(faces) else [np.asarray(faces)]
    points = np.asarray(vertices, np.float32)
    used_per_piece = []
    for piece in pieces:
        used, local = np.unique(piece, return_inverse=True)
        atlas.add_mesh(points[used], local.reshape(-1, 3).astype(np.uint32))
        used_per_piece.append(used.astype(np.int64))
    atlas.generate(pack_options=pack)
    uvs, vmaps, tris, offset = [], [], [], 0
    for i, used in enumerate(used_per_piece):
        vmapping, indices, piece_uvs = atlas[i]
        uvs.append(piece_uvs)
        vmaps.append(used[vmapping.astype(np.int64)])
        tris.append(indices.astype(np.int64) + offset)
        offset += len(vmapping)
    return np.concatenate(uvs).astype(np.float64), np.concatenate(vmaps), np.concatenate(tris)


def octant_pieces(vertices: np.ndarray, faces: np.ndarray) -> list[np.ndarray]:
    """The faces [T, 3] split by the octant, around the per-axis median of the vertices, their centre lies in
    (empty ones left out)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces)
    above = v[f].mean(axis=1) > np.median(v, axis=0)  # [T, 3]
    octant = above @ np.array([1, 2, 4])
    return [f[octant == k] for k in range(8) if (octant == k).any()]


def texel_points(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Rasterize the UV triangles: the texels every face covers and where they sit on the mesh.

    Returns:
        (texel index [P] into the flattened size×size image (row 0 = top), points [P, 3], normals [P, 3]).
    """
    v = torch.from_numpy(vertices).float()
    f = torch.from_numpy(faces)
    uv = torch.from_numpy(uvs).float() * size  # texel units, v up
    uv = torch.stack([uv[:, 0], size - uv[:, 1]], dim=1)  # image rows go down
    tri = uv[f]  # [T, 3, 2]
    lo = tri.min(1).values.floor().clamp(0, size - 1).long()  # [T, 2]
    hi = tri.max(1).values.ceil().clamp(1, size).long()  # [T, 2]
    wh = (hi - lo).clamp_min(1)  # [T, 2]
    counts = wh[:, 0] * wh[:, 1]
    face = torch.repeat_interleave(torch.arange(len(f)), counts)  # [Q]
    offset = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    x = lo[face, 0] + offset % wh[face, 0]
    y = lo[face, 1] + offset // wh[face, 0]
    p = torch.stack([x.float() + 0.5, y.float() + 0.5], dim=1)  # texel centres
    a, b, c = tri[face, 0], tri[face, 1], tri[face, 2]
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = (d00 * d11 - d01 * d01)
    ok = den.abs() > 1e-12
    den = torch.where(ok, den, torch.ones_like(den))
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    w0 = 1 - w1 - w2
    bary = torch.stack([w0, w1, w2], dim=1)
    inside = ok & (bary >= -1e-4).all(1)
    face, bary, x, y = face[inside], bary[inside], x[inside], y[inside]
    corners = v[f[face]]  # [P, 3, 3]
    points = (bary[:, :, None] * corners).sum(1)
    normals = F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1), dim=-1)
    return y * size + x, points, normals


def point_visibility(
    points: Tensor, normals: Tensor, depths: Tensor, alphas: Tensor, cameras: CameraSet, depth_tolerance: float,
    slope: bool = False,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Which views see which surface points, and at what angle.

    A point is visible in a view when it projects inside it, in front of the camera, onto an opaque pixel
    (alpha > 0.5) whose rendered depth matches the point's own within `depth_tolerance`; with `slope`,
    within that plus the depth a surface at the point's angle to the view spans over one pixel (pixel
    footprint × tan of the angle, the angle capped at acos(MIN_SLOPE_COS)). The depth is read at the
    nearest pixel centre, up to a pixel away from the point, and at a graze the surface's depth changes
    by several tolerances over that pixel, so without `slope` surface seen only at a graze counts as
    hidden. The texture bake keeps it so on purpose (docs/PERF.md, lift: a grazing view's colours, squeezed
    several-fold, are a worse source than the fitted splats); asking whether a view saw a point at all
    (the lift benchmark's coverage) needs `slope`.

    Args:
        points, normals: [P, 3]; depths, alphas: [V, S, S] renders of the surface into the V cameras.
        slope: widen the tolerance by the surface's depth change over one pixel.

    Returns:
        (visible [V, P] bool, cos [V, P] of the angle between the normal and the direction to the camera).
    """
    uv, z = project(points, cameras, depths.shape[1])
    return _visibility(points, normals, uv, z, torch.stack([depths, alphas], dim=-1), cameras, depth_tolerance, slope)


def _visibility(
    points: Tensor, normals: Tensor, uv: Tensor, z: Tensor, depth_alpha: Tensor, cameras: CameraSet,
    depth_tolerance: float, slope: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """`point_visibility` from the points' projection (uv [V, P, 2], z [V, P]) and the stacked [V, S, S, 2]
    depth and alpha maps, so a caller that also samples colours projects and stacks once."""
    size = depth_alpha.shape[1]
    centres = cameras.c2w[:, :3, 3].to(points)  # [V, 3]
    near = sample_images(depth_alpha, uv, mode="nearest")  # [V, P, 2], no blending
    inside = (uv >= 0).all(-1) & (uv < size).all(-1) & (z > 0)
    cos = (F.normalize(centres[:, None] - points[None], dim=-1) * normals[None]).sum(-1)  # [V, P]
    tolerance: Tensor | float = depth_tolerance
    if slope:
        tolerance = slope_tolerance(z, cos, cameras.Ks(size, size)[:, 0, 0].to(points)[:, None], depth_tolerance)
    visible = inside & (near[..., 1] > 0.5) & ((z - near[..., 0]).abs() < tolerance)
    return visible, cos


def slope_tolerance(
    z: Tensor, cos: Tensor, focal: Tensor | float, base: Tensor | float, pixels: float = 1.0, min_cos: float = MIN_SLOPE_COS
) -> Tensor:
    """A depth test's tolerance for surface seen at an angle: `base` plus the depth that surface spans over
    `pixels` pixel widths (pixel footprint z / focal × tan of the angle between its normal and the ray,
    the angle capped at acos(min_cos)).

    Why: a depth map holds the surface's depth at a pixel's centre (or the nearest sample in the pixel),
    up to a pixel away from the point tested; at a graze the surface's own depth changes by several
    constant tolerances over that pixel, so a constant alone would call seen surface hidden.

    Args:
        z: [...] the points' camera depths.
        cos: [...] cosine between each point's normal and the direction to the camera (its sign is ignored).
        focal: the focal length in pixels, broadcastable to `z`.
        base: the constant part (world units), broadcastable to `z`.
        pixels: how many pixel widths of depth change to allow.
        min_cos: the cosine below which the allowance stops growing.

    Returns:
        [...] the tolerance in world units.
    """
    c = cos.abs().clamp(min_cos, 1.0)
    return base + pixels * (z.clamp_min(0) / focal) * (1 - c.square()).sqrt() / c


def view_colours(
    points: Tensor, normals: Tensor, images: Tensor, depths: Tensor, alphas: Tensor, cameras: CameraSet,
    depth_tolerance: float, chunk: int = 1 << 16,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Visibility-weighted mean colour of points over the views.

    Args:
        points, normals: [P, 3]; images: [V, S, S, 3]; depths, alphas: [V, S, S] the splats' renders.

    Returns:
        (colours [P, 3], total weight [P]; 0 where no view sees the point).
    """
    size = images.shape[1]
    depth_alpha = torch.stack([depths, alphas], dim=-1)  # [V, S, S, 2], once for every chunk
    cols, weights = [], []
    for s in range(0, points.shape[0], chunk):
        p, n = points[s : s + chunk], normals[s : s + chunk]
        uv, z = project(p, cameras, size)
        visible, cos = _visibility(p, n, uv, z, depth_alpha, cameras, depth_tolerance, slope=False)
        smp = sample_images(images, uv, mode="bilinear")  # [V, P, 3]
        w = visible.float() * cos.clamp_min(0).square()
        total = w.sum(0)
        cols.append((w[..., None] * smp).sum(0) / total.clamp_min(1e-8)[:, None])
        weights.append(total)
    return torch.cat(cols), torch.cat(weights)


def splat_view_cameras(cameras: CameraSet, azimuths: int = 8) -> CameraSet:
    """Where the bake also looks at the fitted splats: `azimuths` cameras on each ring of
    SPLAT_VIEW_ELEVATIONS and one at ±89° (straight above and below), at the views' median distance and
    field of view, so they frame the object as the views do."""
    ring = [360.0 * i / azimuths for i in range(azimuths)]
    elev = [e for e in SPLAT_VIEW_ELEVATIONS for _ in ring] + [89.0, -89.0]
    azim = ring * len(SPLAT_VIEW_ELEVATIONS) + [0.0, 0.0]
    return orbit_cameras(elev, azim, float(cameras.radius.median()), float(cameras.fov_deg.median()))


def nearest_splat_colours(points: Tensor, g: Gaussians) -> Tensor:
    """Colour of the nearest splat centre for each point [P, 3] (scipy's k-d tree)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(g.means.detach().cpu().numpy())
    _, idx = tree.query(points.cpu().numpy(), k=1)
    return g.colors.detach().cpu()[torch.from_numpy(idx)]


def pad_charts(image: Tensor, filled: Tensor, iterations: int = PADDING) -> Tensor:
    """Grow [S, S, 3] colours from filled texels into empty ones, one texel ring per iteration."""
    img = image.permute(2, 0, 1)[None] * filled[None, None]
    w = filled[None, None].float()
    for _ in range(iterations):
        s_img = F.avg_pool2d(img, 3, stride=1, padding=1, count_include_pad=False)
        s_w = F.avg_pool2d(w, 3, stride=1, padding=1, count_include_pad=False)
        grow = (w == 0) & (s_w > 0)
        img = torch.where(grow, s_img / s_w.clamp_min(1e-8), img)
        w = torch.where(grow, torch.ones_like(w), w)
    return img[0].permute(1, 2, 0)


def bake_texture(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, images: Tensor, depths: Tensor, alphas: Tensor,
    cameras: CameraSet, g: Gaussians, size: int, depth_tolerance: float, splat_views: bool = True,
) -> np.ndarray:  # fmt: skip
    """Bake a [size, size, 4] uint8 sRGB texture for an unwrapped mesh (see the module docstring).

    Args:
        images: [V, S, S, 3] the views; depths, alphas: [V, S, S] the fitted splats `g` rendered into them.
        splat_views: also render `g` from `splat_view_cameras` and bake from those renders too.
    """
    from a3d_cli.lift.fit import render_chunked

    texel, points, normals = texel_points(vertices, faces, uvs, size)
    dev = images.device
    if splat_views:
        extra = splat_view_cameras(cameras)
        rgb, alpha, depth = render_chunked(g.to(dev), extra, images.shape[1], depth=True)
        images, cameras = torch.cat([images, rgb.to(dev)]), cameras.concat(extra)
        depths, alphas = torch.cat([depths.to(dev), depth.to(dev)]), torch.cat([alphas.to(dev), alpha.to(dev)])
    cols, weight = view_colours(points.to(dev), normals.to(dev), images, depths.to(dev), alphas.to(dev), cameras, depth_tolerance)
    cols, weight = cols.cpu(), weight.cpu()
    unseen = weight <= 1e-6
    if bool(unseen.any()):
        cols[unseen] = nearest_splat_colours(points[unseen], g)
    image = torch.ones(size * size, 3)
    filled = torch.zeros(size * size)
    image[texel] = cols
    filled[texel] = 1.0
    image = pad_charts(image.reshape(size, size, 3), filled.reshape(size, size))
    rgba = torch.cat([image.clamp(0, 1), torch.ones(size, size, 1)], dim=-1)
    return (rgba * 255 + 0.5).to(torch.uint8).numpy()


__all__ = [
    "PADDING", "bake_texture", "nearest_splat_colours", "pad_charts", "point_visibility", "slope_tolerance",
    "splat_view_cameras", "texel_points", "unwrap", "view_colours",
]  # fmt: skip
