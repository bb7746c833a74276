"""Visual hull: the voxels every view's silhouette allows, and splats on its surface to start a fit from.

Why start here: SV3D views come with known cameras and clean silhouettes, so carving gives the object's
outline in 3D in one pass, and a fit that starts on it only has to settle concavities and colours instead
of growing the object out of a cloud. A voxel is kept when at most `tolerance` views see it on background
(a view also "sees background" where the voxel projects outside the image: objects lie wholly inside every
frame); the tolerance forgives a generated view that is slightly off.

Examples:
    >>> hull = carve(masks, cameras, resolution=96, half_width=0.7)  # doctest: +SKIP
    >>> g = hull_splats(hull, images, cameras, max_splats=20_000)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.render.cameras import CameraSet

FLATNESS = 0.1
"""Thickness of a surface splat along its normal, relative to its in-plane size (as `mesh.to_gaussians`)."""


@dataclass(frozen=True)
class Hull:
    """A carved occupancy grid over the cube [-half_width, half_width]³.

    Attributes:
        occupied: [G, G, G] bool, indexed [x, y, z].
        half_width: half the cube's edge.
    """

    occupied: Tensor
    half_width: float

    @property
    def resolution(self) -> int:
        return int(self.occupied.shape[0])

    @property
    def voxel(self) -> float:
        return 2 * self.half_width / self.resolution

    def centres(self) -> Tensor:
        """[G, G, G, 3] voxel centres."""
        return voxel_centres(self.resolution, self.half_width)


def voxel_centres(resolution: int, half_width: float) -> Tensor:
    """[G, G, G, 3] centres of a G³ grid over the cube [-half_width, half_width]³, indexed [x, y, z]."""
    g = resolution
    return chunk_centres(0, g**3, g, half_width, "cpu").reshape(g, g, g, 3)


def chunk_centres(start: int, stop: int, resolution: int, half_width: float, device: torch.device | str) -> Tensor:
    """Centres [stop − start, 3] of the voxels `start:stop` of `voxel_centres(resolution, half_width)` flattened.

    Made per chunk so that a fine grid never holds all its centres at once (three floats per voxel).
    """
    idx = torch.arange(start, stop, device=device)
    g = resolution
    ijk = torch.stack([idx // (g * g), (idx // g) % g, idx % g], dim=-1)
    return (ijk.float() + 0.5) * (2 * half_width / g) - half_width


def project(points: Tensor, cameras: CameraSet, size: int) -> tuple[Tensor, Tensor]:
    """Pixel coordinates and camera depth of points in every view.

    Args:
        points: [P, 3] world points.

    Returns:
        (uv [V, P, 2] pixels with centres at +0.5, depth [V, P]).
    """
    w2c = cameras.viewmats.to(points)  # [V, 4, 4]
    K = cameras.Ks(size, size).to(points)  # [V, 3, 3]
    cam = points[None] @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]  # [V, P, 3]
    z = cam[..., 2]
    pix = cam @ K.transpose(1, 2)  # [V, P, 3]
    uv = pix[..., :2] / z.clamp_min(1e-6)[..., None]
    return uv, z


def backproject(depths: Tensor, Ks: Tensor, c2w: Tensor) -> Tensor:
    """World points of depth maps: the inverse of `project` for every pixel centre.

    Args:
        depths: [V, S, S] camera depth per pixel; Ks: [V, 3, 3] their intrinsics; c2w: [V, 4, 4].

    Returns:
        [V, S, S, 3] world points.
    """
    size = depths.shape[1]
    pix = torch.arange(size, device=depths.device, dtype=depths.dtype) + 0.5
    vv, uu = torch.meshgrid(pix, pix, indexing="ij")
    x = (uu[None] - Ks[:, 0, 2, None, None]) / Ks[:, 0, 0, None, None] * depths
    y = (vv[None] - Ks[:, 1, 2, None, None]) / Ks[:, 1, 1, None, None] * depths
    cam = torch.stack([x, y, depths], dim=-1)  # [V, S, S, 3]
    return torch.einsum("vij,vhwj->vhwi", c2w[:, :3, :3], cam) + c2w[:, None, None, :3, 3]


def sample_images(images: Tensor, uv: Tensor, mode: str = "bilinear") -> Tensor:
    """Sample [V, S, S, C] images at pixel positions [V, P, 2] → [V, P, C] (zeros outside)."""
    s = images.shape[1]
    grid = (uv / s * 2 - 1)[:, :, None]  # [V, P, 1, 2], align_corners=False convention
    out = F.grid_sample(images.permute(0, 3, 1, 2), grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out[..., 0].permute(0, 2, 1)


def carve(
    masks: Tensor, cameras: CameraSet, resolution: int, half_width: float, tolerance: int = 1, chunk: int = 1 << 18
) -> Hull:
    """Carve the visual hull of [V, S, S] masks.

    Args:
        masks: [V, S, S] foreground masks (dilate them first to forgive sub-pixel errors).
        cameras: their cameras.
        resolution: voxels per axis.
        half_width: half the edge of the carved cube (centred at the origin).
        tolerance: views allowed to see a kept voxel on background.
    """
    size = masks.shape[1]
    hull = Hull(torch.zeros((resolution,) * 3, dtype=torch.bool), half_width)
    pts = hull.centres().reshape(-1, 3).to(masks.device)
    keep = torch.empty(pts.shape[0], dtype=torch.bool, device=masks.device)
    for start in range(0, pts.shape[0], chunk):
        p = pts[start : start + chunk]
        uv, z = project(p, cameras, size)  # [V, P, 2], [V, P]
        inside = (uv >= 0).all(-1) & (uv < size).all(-1) & (z > 0)
        m = sample_images(masks[..., None].float(), uv, mode="nearest")[..., 0] > 0.5  # [V, P]
        background = (~inside) | (~m)
        keep[start : start + chunk] = background.sum(0) <= tolerance
    return Hull(keep.reshape((resolution,) * 3).cpu(), half_width)


def surface_voxels(occupied: Tensor) -> Tensor:
    """[G, G, G] bool: occupied voxels with an empty 6-neighbour (or on the grid's edge)."""
    occ = occupied.float()[None, None]
    eroded = -F.max_pool3d(-F.pad(occ, (1,) * 6, value=0.0), 3, stride=1)  # min over the 3×3×3 box
    return occupied & (eroded[0, 0] < 0.5)


def hull_normals(occupied: Tensor) -> Tensor:
    """[G, G, G, 3] outward unit normals from the blurred occupancy's gradient."""
    occ = F.avg_pool3d(F.pad(occupied.float()[None, None], (2,) * 6, mode="replicate"), 5, stride=1)[0, 0]
    gx, gy, gz = torch.gradient(occ)
    return -F.normalize(torch.stack([gx, gy, gz], dim=-1), dim=-1)


def best_view_colours(points: Tensor, normals: Tensor, images: Tensor, cameras: CameraSet) -> Tensor:
    """Colour of each point in the view that faces it most squarely: [P, 3].

    Args:
        points: [P, 3]; normals: [P, 3] outward; images: [V, S, S, 3]; cameras: V cameras.
    """
    centres = cameras.c2w[:, :3, 3].to(points)  # [V, 3]
    to_cam = F.normalize(centres[:, None] - points[None], dim=-1)  # [V, P, 3]
    facing = (to_cam * normals[None]).sum(-1)  # [V, P]
    best = facing.argmax(0)  # [P]
    uv, _ = project(points, cameras, images.shape[1])
    cols = sample_images(images, uv)  # [V, P, 3]
    return cols.gather(0, best[None, :, None].expand(1, -1, 3))[0]


def frame_from_normals(normals: Tensor) -> Tensor:
    """wxyz quaternions whose local z axis is `normals` [P, 3] (the splat's thin axis)."""
    from a3d_cli.geometry import rotmat_to_quat

    z = F.normalize(normals, dim=-1)
    helper = torch.where(z[:, :1].abs() < 0.9, torch.tensor([[1.0, 0, 0]]), torch.tensor([[0.0, 1, 0]]))
    x = F.normalize(torch.linalg.cross(helper.expand_as(z), z, dim=-1), dim=-1)
    y = torch.linalg.cross(z, x, dim=-1)
    rot = torch.stack([x, y, z], dim=-1)  # [P, 3, 3], columns = local axes
    return rotmat_to_quat(rot).float()


def hull_splats(
    hull: Hull, images: Tensor, cameras: CameraSet, max_splats: int, seed: int = 0, opacity: float = 0.9
) -> Gaussians:
    """Flat splats on the hull's surface voxels, facing outwards, coloured from the best-facing view.

    Args:
        hull: the carved hull.
        images: [V, S, S, 3] views for the colours.
        cameras: their cameras.
        max_splats: at most this many splats (a random subset of surface voxels, sizes grown to keep
            the surface covered).
        seed: seeds the subset and the jitter.
    """
    gen = torch.Generator().manual_seed(seed)
    surf = surface_voxels(hull.occupied)
    idx = torch.nonzero(surf)  # [P, 3]
    if idx.shape[0] == 0:
        raise ValueError("the visual hull is empty")
    normals = hull_normals(hull.occupied)[surf]  # [P, 3]
    spacing = hull.voxel
    if idx.shape[0] > max_splats:
        pick = torch.randperm(idx.shape[0], generator=gen)[:max_splats]
        spacing *= (idx.shape[0] / max_splats) ** 0.5
        idx, normals = idx[pick], normals[pick]
    points = (idx.float() + 0.5) * hull.voxel - hull.half_width
    points = points + (torch.rand(points.shape, generator=gen) - 0.5) * 0.5 * hull.voxel
    colours = best_view_colours(points.to(images.device), normals.to(images.device), images, cameras).cpu()
    n = points.shape[0]
    in_plane = 0.7 * spacing
    scales = torch.tensor([in_plane, in_plane, FLATNESS * in_plane]).repeat(n, 1)
    return Gaussians(
        means=points,
        quats=frame_from_normals(normals),
        scales=scales,
        opacities=torch.full((n,), opacity),
        colors=colours.clamp(0, 1),
    )


__all__ = [
    "FLATNESS", "Hull", "backproject", "best_view_colours", "carve", "chunk_centres", "hull_normals", "hull_splats", "project",
    "sample_images", "surface_voxels", "voxel_centres",
]  # fmt: skip
