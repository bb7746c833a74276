"""gsplat's rasterization with tile lists of a fixed length: no host read, so a CUDA graph can record it.

`gsplat.rasterization` reads the number of tile intersections back to the host to size its lists, which
makes every call wait for the device and keeps it out of any CUDA graph. This is the same pipeline built
from gsplat's public pieces (`fully_fused_projection`, `spherical_harmonics`, `rasterize_to_pixels`) with
the lists of `a3d_cli.kernels.tile_lists` in place of `isect_tiles`: one extra *filler* splat (opacity 0
in the render, a valid projection everywhere) takes the free slots. With enough capacity the renders and
their gradients equal `gsplat.rasterization`'s (same entries in the same order; the fillers sort after a
tile's real entries and are skipped). The caller keeps the capacity above the true total, which comes
back as a device tensor (`FixedRender.total`).

Scope: what the motion fit renders: unpacked, classic (no antialiasing compensation), pinhole, RGB
colours or SH, a background per image, `render_mode="RGB"`, gsplat's defaults otherwise.

Examples:
    >>> looks = fixed_looks(opacities, colors, None, viewmats, Ks, backgrounds)  # doctest: +SKIP
    >>> out = rasterize_fixed(means, quats, scales, looks, 256, 256, capacity=1 << 21)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from a3d_cli.kernels.tile_lists import fixed_tile_lists, tile_offsets, tile_rects

TILE_SIZE = 16
"""gsplat's default tile size."""
NEAR_PLANE, FAR_PLANE, EPS2D = 0.01, 1e10, 0.3
"""The projection settings `rasterize_gsplat_checked` passes to gsplat (gsplat's defaults)."""
FILLER_SCALE = 0.01
"""The filler splat's size: small, so that it projects to a well-conditioned conic."""


@dataclass(frozen=True)
class FixedLooks:
    """The static inputs of `rasterize_fixed`, with the filler splat appended (index N of N + 1).

    Attributes:
        project_opacities: [B, N+1], the filler's 1 (gsplat sizes a splat's radius by its opacity and culls
            opacity 0, which would leave the filler's conic unwritten).
        render_opacities: [B, C, N+1], the filler's 0 (the rasterizer skips it).
        colors: [B, N+1, 3] or SH [B, N+1, K, 3]; sh_degree: None for plain colours.
        viewmats: [B, C, 4, 4], Ks: [B, C, 3, 3], campos: [B, C, 3] (camera centres, for SH).
        backgrounds: [B, C, 3].
        filler: [B, 1, 3 + 4 + 3], the filler's mean (a point every camera sees, in front of its near plane),
            identity rotation (wxyz) and scales (`FILLER_SCALE`), made here so that a recording copies nothing
            from the host.
    """

    project_opacities: Tensor
    render_opacities: Tensor
    colors: Tensor
    sh_degree: int | None
    viewmats: Tensor
    Ks: Tensor  # noqa: N815 - the rasterizer's name
    campos: Tensor
    backgrounds: Tensor
    filler: Tensor


@dataclass(frozen=True)
class FixedRender:
    """colors [B, C, H, W, 3], alphas [B, C, H, W, 1]; total: 0-d int64, the real tile intersections."""

    colors: Tensor
    alphas: Tensor
    total: Tensor


def fixed_looks(
    opacities: Tensor,
    colors: Tensor,
    sh_degree: int | None,
    viewmats: Tensor,
    Ks: Tensor,  # noqa: N803 - the rasterizer's name
    backgrounds: Tensor,
    filler_mean: Tensor | None = None,
) -> FixedLooks:
    """Append the filler to the B-batched static inputs: opacities [B, N], colors [B, N, (K,) 3], cameras [B, C, ...].

    `filler_mean` defaults to the origin, the centre of the normalised object frame the fit's cameras look at.
    """
    b, c = viewmats.shape[:2]
    dev, dtype = opacities.device, opacities.dtype
    one = torch.ones(b, 1, device=dev, dtype=dtype)
    project_opacities = torch.cat([opacities, one], dim=1)
    render_opacities = torch.cat([opacities, 0 * one], dim=1)[:, None].expand(b, c, -1).contiguous()
    colors = torch.cat([colors, torch.zeros_like(colors[:, :1])], dim=1)
    campos = torch.linalg.inv_ex(viewmats)[0][..., :3, 3]
    mean = torch.zeros(3, device=dev, dtype=dtype) if filler_mean is None else filler_mean.to(dev, dtype)
    rotation = torch.zeros(4, device=dev, dtype=dtype)
    rotation[0] = 1.0
    filler = torch.cat([mean, rotation, torch.full((3,), FILLER_SCALE, device=dev, dtype=dtype)])
    return FixedLooks(
        project_opacities, render_opacities, colors, sh_degree, viewmats, Ks, campos, backgrounds,
        filler.expand(b, 1, 10).contiguous(),
    )  # fmt: skip


def with_filler(means: Tensor, quats: Tensor, scales: Tensor, filler: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """means, quats, scales [B, N, ·] → [B, N+1, ·] with the filler splat (`FixedLooks.filler`) last."""
    means = torch.cat([means, filler[..., 0:3]], dim=1)
    quats = torch.cat([quats, filler[..., 3:7]], dim=1)
    scales = torch.cat([scales, filler[..., 7:10]], dim=1)
    return means, quats, scales


def project(means: Tensor, quats: Tensor, scales: Tensor, looks: FixedLooks, width: int, height: int):  # noqa: ANN201
    """gsplat's unpacked projection of [B, N+1] splats into [B, C] images: (radii, means2d, depths, conics)."""
    from gsplat.cuda._wrapper import fully_fused_projection  # noqa: PLC0415 - CUDA only, lazily

    radii, means2d, depths, conics, _ = fully_fused_projection(
        means, None, quats, scales, looks.viewmats, looks.Ks, width, height,
        eps2d=EPS2D, near_plane=NEAR_PLANE, far_plane=FAR_PLANE, packed=False,
        calc_compensations=False, opacities=looks.project_opacities,
    )  # fmt: skip
    return radii, means2d, depths, conics


def rasterize_fixed(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    looks: FixedLooks,
    width: int,
    height: int,
    capacity: int,
    image_mask: Tensor | None = None,
) -> FixedRender:
    """Render B batches of N splats into C views each, with lists of `capacity` entries (CUDA, gsplat).

    Args:
        means: [B, N, 3], quats: [B, N, 4] (wxyz), scales: [B, N, 3], differentiable.
        looks: `fixed_looks` of the same B, C and N.
        width, height: image size in pixels.
        capacity: the tile-intersection list's length.
        image_mask: [B·C] bool; False images list no splat (they render as their background).
    """
    from gsplat.cuda._wrapper import rasterize_to_pixels, spherical_harmonics  # noqa: PLC0415 - CUDA only

    b, c = looks.viewmats.shape[:2]
    means, quats, scales = with_filler(means, quats, scales, looks.filler)
    n = means.shape[1]
    radii, means2d, depths, conics = project(means, quats, scales, looks, width, height)
    if looks.sh_degree is None:
        colors = looks.colors[:, None].expand(b, c, n, looks.colors.shape[-1])
    else:
        dirs = means[:, None] - looks.campos[:, :, None]  # [B, C, N+1, 3]
        shs = looks.colors[:, None].expand(b, c, *looks.colors.shape[1:])
        colors = spherical_harmonics(looks.sh_degree, dirs, shs, masks=(radii > 0).all(dim=-1))
        colors = torch.clamp_min(colors + 0.5, 0.0)
    tile_w, tile_h = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
    images = b * c
    lists = fixed_tile_lists(
        means2d.reshape(images, n, 2), radii.reshape(images, n, 2), depths.reshape(images, n),
        TILE_SIZE, tile_w, tile_h, capacity, filler=n - 1, image_mask=image_mask,
    )  # fmt: skip
    offsets = tile_offsets(lists.isect_ids, images, tile_w, tile_h).view(b, c, tile_h, tile_w)
    rgb, alpha = rasterize_to_pixels(
        means2d, conics, colors, looks.render_opacities, width, height, TILE_SIZE, offsets, lists.flatten_ids,
        backgrounds=looks.backgrounds,
    )  # fmt: skip
    return FixedRender(rgb, alpha, lists.total)


def intersections_needed(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    looks: FixedLooks,
    width: int,
    height: int,
) -> tuple[int, bool]:
    """(the real tile intersections of this render, whether the filler projects in every image); reads back once.

    For sizing a capacity and checking the filler before a recording, not inside one.
    """
    with torch.no_grad():
        means, quats, scales = with_filler(means, quats, scales, looks.filler)
        radii, means2d, _, _ = project(means, quats, scales, looks, width, height)
        tile_w, tile_h = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
        x0, x1, y0, y1 = tile_rects(means2d[..., :-1, :], radii[..., :-1, :], TILE_SIZE, tile_w, tile_h)
        total = int(((x1 - x0) * (y1 - y0)).sum())
        filler_ok = bool((radii[..., -1, :] > 0).all())
    return total, filler_ok


__all__ = ["FixedLooks", "FixedRender", "fixed_looks", "intersections_needed", "rasterize_fixed", "with_filler"]
