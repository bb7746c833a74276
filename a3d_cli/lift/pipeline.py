"""The whole lift in memory: views → masks → visual hull → fitted splats → mesh → UV texture.

Pure domain code with no run folder, so the stage (`a3d_cli.stages.lift`), the benchmark and the tests
drive the same function. Phases report through a `Progress` and their seconds land in `LiftResult.seconds`.

Examples:
    >>> result = lift(load_views(Path("RUN/orbit")), LiftSettings(), device="cuda")  # doctest: +SKIP
    >>> result.mesh.num_faces, len(result.gaussians)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.lift.fit import LiftFitSettings
from a3d_cli.lift.masks import WhiteMaskOptions
from a3d_cli.lift.meshing import MeshSettings
from a3d_cli.lift.unseen import UNSEEN_RADIUS
from a3d_cli.lift.views import OrbitViews
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.phase_clock import PhaseClock

if TYPE_CHECKING:
    from a3d_cli.progress import Progress


@dataclass(frozen=True)
class LiftSettings:
    """Every knob of a lift (the stage fills it from its options)."""

    resolution: int = 576
    """Fit size: views are resized to this many pixels (their own size when larger is not useful)."""
    hull_resolution: int = 128
    """Voxels per axis of the visual hull."""
    hull_tolerance: int = 1
    """Views allowed to call a hull voxel background (forgives a slightly inconsistent generated view)."""
    hull_dilation: float = 1.0 / 256
    """Masks are dilated by this fraction of their size before carving (sub-pixel camera errors)."""
    max_splats: int = 60_000
    """Splats the fit starts from (on the hull surface)."""
    fit: LiftFitSettings = field(default_factory=LiftFitSettings)
    masks: WhiteMaskOptions = field(default_factory=WhiteMaskOptions)
    mesh: MeshSettings = field(default_factory=MeshSettings)
    texture_size: int = 1024
    """Width and height of the baked texture."""
    refine_band: float = 0.02
    """Near-white pixels within this fraction of the size of the colour mask may join it when the fitted
    splats cover them (`masks.refine_masks`)."""
    unseen_radius: float = UNSEEN_RADIUS
    """The bake colours splats no view shows from the seen ones within this fraction of the scene's
    half-width (`lift.unseen.colour_unseen`); 0 bakes their fitted colours."""


@dataclass
class LiftResult:
    """What a lift produced.

    Attributes:
        gaussians: the fitted splats (CPU).
        hull_gaussians: the splats on the visual hull before the fit (the hull-only baseline).
        mesh: the textured mesh (UVs + texture; vertex colours white).
        masks: [V, S, S] the refined masks at the fit size.
        renders: [V, S, S, 3] the splats rendered into the views; alphas [V, S, S].
        view_psnr: [V] PSNR of the renders against the views; mask_iou: [V] of rendered alpha vs masks.
        seconds: per phase.
        unseen_splats: splats no view shows, whose colours the bake took from their surroundings.
    """

    gaussians: Gaussians
    hull_gaussians: Gaussians
    mesh: SurfaceMesh
    masks: Tensor
    renders: Tensor
    alphas: Tensor
    view_psnr: Tensor
    mask_iou: Tensor
    seconds: dict[str, float]
    unseen_splats: int = 0


def _say(progress: Progress | None, phase: str, total: int | None = None) -> None:
    if progress is not None:
        progress.start(phase, total)


def lift(
    views: OrbitViews,
    settings: LiftSettings,
    device: str = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
    masks: Tensor | None = None,
) -> LiftResult:
    """Lift V views with known cameras to splats and a textured mesh.

    `masks` ([V, S, S] at the views' size) skips the mask computation when the caller already has them.

    Raises:
        InputError: empty masks, or silhouettes that carve the hull away entirely (cameras that do not
            match the frames).
    """
    from a3d_cli.gaussians.motion_fit import psnr
    from a3d_cli.io.masks import dilate_mask
    from a3d_cli.lift import hull as hull_mod
    from a3d_cli.lift.fit import fit_static, render_chunked
    from a3d_cli.lift.masks import check_masks, mask_iou, outline, refine_masks, unknown_white, view_masks
    from a3d_cli.lift.meshing import extract_mesh
    from a3d_cli.lift.texture import bake_texture, unwrap
    from a3d_cli.lift.unseen import colour_unseen
    from a3d_cli.lift.views import resize_views, scene_radius

    clock = PhaseClock(device)

    # 1. masks at the input size, then everything at the fit size
    _say(progress, "lift: masks and visual hull")
    full_masks = view_masks(views.images, views.alphas, settings.masks) if masks is None else masks
    check_masks(full_masks, views.names)
    size = min(settings.resolution, views.size)
    small = resize_views(views, size)
    masks = (torch.nn.functional.interpolate(full_masks[:, None], size=(size, size), mode="area")[:, 0] > 0.5).float()
    cams = views.cameras
    half_width = scene_radius(cams)
    # without alpha, near-white pixels that may be object are unknown: only the rest carves, the fit and
    # then the fitted splats' opacity decide them
    unknown = unknown_white(small.images, masks, settings.masks) if views.alphas is None else torch.zeros_like(masks, dtype=torch.bool)
    dil = max(1, round(settings.hull_dilation * size))
    allowed = dilate_mask((masks > 0.5) | unknown, dil).float().to(device)
    hull = hull_mod.carve(allowed, cams, settings.hull_resolution, half_width, settings.hull_tolerance)
    if int(hull.occupied.sum()) < 8:
        raise InputError(
            "The views' silhouettes do not agree on any point in space: the visual hull is empty.",
            hint="Check that cameras.json lists the cameras of the frames in the same order (frame_i ↔ cameras[i]).",
        )
    init = hull_mod.hull_splats(hull, small.images.to(device), cams, settings.max_splats, seed=seed).to(device)
    clock.mark("hull")

    # 2. fit the splats; without alpha the colour mask's outline is partial coverage, not silhouette
    _say(progress, "lift: fitting splats", total=settings.fit.steps)
    no_silhouette = (unknown | outline(masks)) if views.alphas is None else unknown
    fitted = fit_static(
        init, small.images.to(device), masks.to(device), cams, settings.fit, half_width, seed=seed, progress=progress,
        unknown=no_silhouette.to(device) if bool(no_silhouette.any()) else None,
    )  # fmt: skip
    g = fitted.gaussians
    if len(g) == 0:
        raise InputError(
            "The fit pruned every splat: the views gave it nothing opaque to keep.",
            hint="Check that the frames show the object on a white background (or carry alpha) and that the cameras match them.",
        )
    rgb, alpha, depth = render_chunked(g, cams, size, depth=True)
    masks = refine_masks(masks, small.images, alpha, settings.masks.threshold, max(1, round(settings.refine_band * size)), unknown)
    view_psnr = psnr(rgb, small.images, (1, 2, 3))
    iou = mask_iou((alpha > 0.5).float(), masks)
    clock.mark("fit")

    # 3. mesh
    _say(progress, "lift: extracting the mesh")
    try:
        vertices, faces = extract_mesh(g, cams, half_width, settings.mesh)
    except ValueError as exc:
        raise InputError(f"The fitted splats hold no surface to mesh ({exc}).") from exc
    clock.mark("mesh")

    # 4. texture
    _say(progress, "lift: baking the texture")
    uvs, vmap, tfaces = unwrap(vertices, faces, settings.texture_size)
    tv = vertices[vmap]
    tex_views = resize_views(views, min(views.size, max(size, settings.texture_size // 2)))
    if tex_views.size == size:
        t_depth, t_alpha = depth, alpha
    else:
        _, t_alpha, t_depth = render_chunked(g, cams, tex_views.size, depth=True)
    tol = 3.0 * 2 * half_width / settings.mesh.resolution
    bake_splats, unseen = g, 0
    if settings.unseen_radius > 0:
        bake_splats, seen = colour_unseen(g, cams, depth, alpha, tol, half_width, settings.unseen_radius)
        unseen = int((~seen).sum())
    texture = bake_texture(
        tv, tfaces, uvs, tex_views.images.to(device), t_depth, t_alpha, cams, bake_splats, settings.texture_size, tol
    )  # fmt: skip
    mesh = SurfaceMesh(tv, tfaces, np.ones((len(tv), 4), np.float32), uvs, texture)
    clock.mark("texture")
    return LiftResult(g.to("cpu"), init.to("cpu"), mesh, masks, rgb, alpha, view_psnr, iou, clock.seconds, unseen)


__all__ = ["LiftResult", "LiftSettings", "lift"]
