"""Colours for the surface that no view saw, for the texture bake.

The fit's photometric loss never reaches a splat that no view shows (the underside of a truck's body from
an orbit above the ground), so such a splat keeps the colour the visual hull gave it: that of the view it
faces best, which shows whatever stands in front of it or the background beside it. That colour is wrong
by construction, and the texture bake, which colours what no view sees from the splats, would carry it
onto the mesh. A splat counts as unseen when both tests say so: its centre passes no view's depth test
(`lift.texture.point_visibility`, with the slope allowance), and all the views together show less than
`MIN_WEIGHT` pixels of it (`blend_weights`). The depth test alone misses surface seen only at a graze (the
top of a box from an orbit just above it), which the fit did colour; the weight alone misses small splats
on seen surface that their neighbours mostly cover. Each unseen splat takes the mean colour of the seen
splats within a cube of half-side `radius` around it, summed on a voxel grid (box filters over cell sums
and counts), or the nearest seen splat's colour where none is that close. Nothing tells what an unseen
surface looks like; the mean of its surroundings is the guess with the least expected squared error, and
it continues what was seen smoothly.

Only the bake uses these colours; the splats the lift writes keep the fitted ones. Unseen splats are also
where the visual hull left phantom volume (the wedge under an object that views from above cannot carve),
and there the hull's background-like colour keeps it inconspicuous; the mesh has that volume opened
(`lift.meshing.open_undersides`), so what is left of its unseen surface is more likely real.

Examples:
    >>> _, alphas, depths = render_chunked(g, cams, 256, depth=True)  # doctest: +SKIP
    >>> bake_splats, seen = colour_unseen(g, cams, depths, alphas, 0.01, half_width=0.66)  # doctest: +SKIP
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.geometry import quat_to_rotmat
from a3d_cli.render.cameras import CameraSet

UNSEEN_RADIUS = 0.3
"""Half-side of the neighbourhood an unseen splat's colour is averaged over, as a fraction of the scene's
half-width (docs/PERF.md, lift: *The surface no view saw*)."""

MIN_WEIGHT = 0.5
"""Pixels' worth of a splat the views must show in all for the weight test to call it seen."""

CELLS_PER_RADIUS = 4
"""Grid cells per `radius`: the cube is (2·4 + 1)³ cells around the point's own, so its faces lie within one
cell (a quarter of `radius`) of where a cube centred on the point would have them."""

MAX_CELLS = 256
"""Most grid cells per axis (about 270 MB of float32 sums): a radius of 1/32 of the half-width at least."""


def blend_weights(g: Gaussians, cameras: CameraSet, size: int, chunk: int = 8) -> Tensor:
    """[N] each splat's blending weight (opacity × transmittance) summed over every pixel of every view:
    how many pixels' worth of its colour the views show, which is the gradient of the summed renders with
    respect to its colour (one backward pass through the rasterizer per `chunk` views)."""
    from a3d_cli.lift.fit import render

    probe = torch.zeros_like(g.colors, requires_grad=True)
    g_probe = g.with_(means=g.means.detach(), quats=g.quats.detach(), scales=g.scales.detach(),
                      opacities=g.opacities.detach(), colors=probe, sh_rest=None)  # fmt: skip
    for start in range(0, len(cameras), chunk):
        index = torch.arange(start, min(start + chunk, len(cameras)), device=g.means.device)
        render(g_probe, cameras, size, index=index).colors[..., 0].sum().backward()
    assert probe.grad is not None
    return probe.grad[:, 0]


def neighbourhood_colours(
    points: Tensor, source: Tensor, colours: Tensor, radius: float, half_width: float
) -> tuple[Tensor, Tensor]:
    """Mean of `colours` [M, 3] of the `source` points [M, 3] within a cube of half-side `radius` around each
    of `points` [P, 3], to a grid cell (cells of `radius / CELLS_PER_RADIUS` spanning ±`half_width`).

    Returns:
        (colours [P, 3], how many source points were averaged [P]; 0 where none is that close).
    """
    cell = radius / CELLS_PER_RADIUS
    n = max(1, math.ceil(2 * half_width / cell))
    if n > MAX_CELLS:
        raise ValueError(f"a neighbourhood of {radius:g} is too small for a grid spanning ±{half_width:g}")

    def cell_index(p: Tensor) -> Tensor:
        ijk = ((p + half_width) / cell).floor().long().clamp(0, n - 1)  # [., 3]
        return (ijk[:, 0] * n + ijk[:, 1]) * n + ijk[:, 2]

    grid = torch.zeros(4, n * n * n, dtype=colours.dtype, device=colours.device)  # r, g, b, count
    grid.index_add_(1, cell_index(source), torch.cat([colours, torch.ones_like(colours[:, :1])], dim=1).T)
    k = 2 * CELLS_PER_RADIUS + 1
    padded = F.pad(grid.reshape(1, 4, n, n, n), (CELLS_PER_RADIUS,) * 6)  # zeros: no points beyond the grid
    sums = F.avg_pool3d(padded, k, stride=1) * k**3  # [1, 4, n, n, n] box sums
    at = sums.reshape(4, -1)[:, cell_index(points)]  # [4, P]
    count = at[3].round()
    return (at[:3] / at[3].clamp_min(1e-8)).T, count


def seen_splats(
    g: Gaussians,
    cameras: CameraSet,
    depths: Tensor,
    alphas: Tensor,
    depth_tolerance: float,
    min_weight: float = MIN_WEIGHT,
) -> Tensor:
    """[N] bool: splats some view shows, by either test of the module docstring.

    Args:
        g: splats; cameras: views; depths, alphas: [V, S, S] the splats rendered into them.
        depth_tolerance: the depth test's constant part (world units).
        min_weight: pixels' worth of a splat the views must show in all (`blend_weights`).
    """
    from a3d_cli.lift.texture import point_visibility

    normals = quat_to_rotmat(g.quats.detach())[..., 2]  # [N, 3] the thin axis
    dev = g.means.device
    visible, _ = point_visibility(
        g.means.detach(), normals, depths.to(dev), alphas.to(dev), cameras, depth_tolerance, slope=True
    )
    return visible.any(dim=0) | (blend_weights(g, cameras, depths.shape[-1]) >= min_weight)


def colour_unseen(
    g: Gaussians, cameras: CameraSet, depths: Tensor, alphas: Tensor, depth_tolerance: float, half_width: float,
    radius: float = UNSEEN_RADIUS,
) -> tuple[Gaussians, Tensor]:  # fmt: skip
    """Give the splats no view shows the mean colour of the seen ones around them (see the module docstring).

    Args:
        g: the fitted splats; cameras: the views they were fitted to; depths, alphas: [V, S, S] the splats
            rendered into them.
        depth_tolerance: the depth test's constant part (world units).
        half_width: the scene's half-width (`lift.views.scene_radius`).
        radius: the neighbourhood's half-side, as a fraction of `half_width`.

    Returns:
        (the splats with new colours where unseen, [N] bool which were seen). All seen or none seen: `g`
        unchanged.
    """
    from a3d_cli.lift.texture import nearest_splat_colours

    seen = seen_splats(g, cameras, depths, alphas, depth_tolerance)
    if bool(seen.all()) or not bool(seen.any()):
        return g, seen
    unseen = ~seen
    points = g.means[unseen].detach()
    cols, count = neighbourhood_colours(
        points, g.means[seen].detach(), g.colors[seen].detach(), radius * half_width, half_width
    )
    lonely = count == 0
    if bool(lonely.any()):
        cols[lonely] = nearest_splat_colours(points[lonely], g.subset(seen)).to(cols)
    colours = g.colors.detach().clone()
    colours[unseen] = cols.clamp(0, 1)
    return g.with_(colors=colours), seen


__all__ = [
    "CELLS_PER_RADIUS",
    "MAX_CELLS",
    "MIN_WEIGHT",
    "UNSEEN_RADIUS",
    "blend_weights",
    "colour_unseen",
    "neighbourhood_colours",
    "seen_splats",
]
