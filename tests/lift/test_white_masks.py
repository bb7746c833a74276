"""Masks on a white background for an object whose white parts touch it (CPU, tiny): the unknown
near-white pixels between a view's coloured pieces keep the white body in the visual hull, the fitted
splats' opacity brings it into the masks, gaps that open downwards and one-piece objects stay as they
were, and frames with alpha never use the white-background method."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.io.masks import dilate_mask
from a3d_cli.lift import hull as H
from a3d_cli.lift import synthetic as syn
from a3d_cli.lift.fit import LiftFitSettings
from a3d_cli.lift.masks import (
    AUTO_THRESHOLD_FLOOR,
    WhiteMaskOptions,
    mask_iou,
    measured_threshold,
    near_white,
    outline,
    unknown_white,
    view_masks,
)
from a3d_cli.lift.meshing import MeshSettings
from a3d_cli.lift.views import OrbitViews, scene_radius
from a3d_cli.models.sv3d.cameras import orbit_camera_set, static_orbit

SIZE = 40


@pytest.fixture(scope="module")
def van() -> dict:
    """The white van's 21-view SV3D orbit: views on white, the truth's alpha and its colour masks."""
    g = syn.mesh_splats(syn.normalized(syn.white_van_mesh()), 5000)
    cams = orbit_camera_set(static_orbit(10.0))
    rgba = syn.render_rgba(g, cams, SIZE)
    images = syn.on_white(rgba)
    return {
        "cams": cams,
        "rgba": rgba,
        "images": images,
        "truth": (rgba[..., 3] > 0.5).float(),
        "colour": view_masks(images, None),
    }


def test_unknown_pixels_hold_the_white_body_that_the_colour_masks_lose(van) -> None:
    truth, colour = van["truth"], van["colour"]
    unknown = unknown_white(van["images"], colour)
    with_unknown = ((colour > 0.5) | unknown).float()
    iou_colour, iou_unknown = float(mask_iou(colour, truth).mean()), float(mask_iou(with_unknown, truth).mean())
    assert iou_colour < 0.7  # the white body is lost by colour alone
    assert iou_unknown > iou_colour + 0.15 and iou_unknown > 0.75, (iou_colour, iou_unknown)
    assert float((unknown & (truth < 0.5)).float().sum()) < 0.15 * float(
        unknown.float().sum()
    )  # mostly the body, not air

    # the visual hull: carved only by confident background it keeps the body; carved by colour it loses it
    hw = scene_radius(van["cams"])

    def hull(masks: torch.Tensor) -> torch.Tensor:
        return H.carve(dilate_mask(masks > 0.5, 1).float(), van["cams"], 32, hw).occupied

    true_hull = hull(truth)
    kept_unknown = float((hull(with_unknown) & true_hull).sum()) / float(true_hull.sum())
    kept_colour = float((hull(colour) & true_hull).sum()) / float(true_hull.sum())
    assert kept_unknown > 0.6 and kept_colour < 0.35, (
        kept_unknown,
        kept_colour,
    )  # (its roof above every coloured part is unseen)


def test_an_object_in_one_coloured_piece_has_no_unknown_pixels() -> None:
    g = syn.mesh_splats(syn.normalized(syn.toy_mesh()), 4000)
    images = syn.on_white(syn.render_rgba(g, orbit_camera_set(static_orbit(10.0)), SIZE))
    masks = view_masks(images, None)
    assert not bool(unknown_white(images, masks).any())  # its concavities stay background: nothing changes for it


def test_unknown_pixels_rest_on_colour_and_leave_gaps_that_open_downwards() -> None:
    img = torch.ones(1, 32, 32, 3)
    img[0, 4:10, 6:26] = torch.tensor([0.2, 0.4, 0.8])  # a coloured panel high on a white body
    img[0, 18:20, 4:28] = 0.3  # a chassis bar
    img[0, 20:28, 4:10] = 0.1  # two wheels
    img[0, 20:28, 22:28] = 0.1
    masks = view_masks(img, None)
    unknown = unknown_white(img, masks, WhiteMaskOptions(support=0.0))
    assert masks[0, 14, 16] == 0 and unknown[0, 14, 16]  # white between the panel and the chassis: may be body
    assert not unknown[0, 24, 16]  # between the wheels under the chassis: open downwards, background
    assert not unknown[0, 14, 1] and not unknown[0, 2, 16]  # outside the pieces' convex hull: background
    assert not unknown[0, 6, 10]  # coloured pixels are object, not unknown


def _views(van: dict, alpha: bool) -> OrbitViews:
    names = tuple(f"frame_{i:02d}.png" for i in range(21))
    return OrbitViews(
        images=van["images"], alphas=van["rgba"][..., 3] if alpha else None, cameras=van["cams"], names=names
    )


def _settings(steps: int = 60):  # noqa: ANN202
    from a3d_cli.lift.pipeline import LiftSettings

    fit = LiftFitSettings(steps=steps, views_per_step=4, refine_start=1000, normal_start=1.0)
    return LiftSettings(
        resolution=SIZE,
        hull_resolution=32,
        max_splats=1500,
        fit=fit,
        mesh=MeshSettings(resolution=32, max_faces=2000),
        texture_size=64,
    )


def test_a_lift_without_alpha_gets_the_white_body_back_from_the_fitted_opacity(van) -> None:
    from a3d_cli.lift.pipeline import lift

    result = lift(_views(van, alpha=False), _settings())
    truth, colour = van["truth"], van["colour"]
    iou_colour, iou_lift = float(mask_iou(colour, truth).mean()), float(mask_iou(result.masks, truth).mean())
    assert iou_lift > iou_colour + 0.15, (iou_colour, iou_lift)
    body = (truth > 0.5) & (colour < 0.5)  # the white body the colour masks lost
    assert float(result.alphas[body].gt(0.5).float().mean()) > 0.8  # the fitted splats cover it


def test_frames_with_alpha_never_use_the_white_background_method(van, monkeypatch) -> None:
    from a3d_cli.lift import fit as fit_mod
    from a3d_cli.lift import masks as masks_mod
    from a3d_cli.lift.pipeline import lift

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("unknown_white called for frames with alpha")

    seen: dict = {}
    real_fit = fit_mod.fit_static

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen["unknown"] = kwargs.get("unknown")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(masks_mod, "unknown_white", refuse)
    monkeypatch.setattr(fit_mod, "fit_static", spy)
    result = lift(_views(van, alpha=True), _settings(steps=10))
    assert seen["unknown"] is None  # every pixel's mask is known: the silhouette loss covers them all
    assert bool((result.masks >= van["truth"]).all())  # the alpha masks, white body and all


def test_convex_hull_mask_fills_between_pieces_and_stops_at_the_hull() -> None:
    from a3d_cli.lift.masks import convex_hull_mask

    m = torch.zeros(16, 16, dtype=torch.bool)
    m[2:6, 2:6] = True
    m[10:14, 10:14] = True
    hull = convex_hull_mask(m)
    assert hull[7, 7] and hull[6, 9] and hull[9, 6]  # along the band joining the squares
    assert not hull[2, 12] and not hull[12, 2] and not hull[0, 0]  # the other corners stay out
    assert bool((hull >= m).all())
    assert not bool(convex_hull_mask(torch.zeros(8, 8, dtype=torch.bool)).any())


def _lit_box(size: int = 64) -> torch.Tensor:
    """[2, S, S, 3] a box on white: its top lit to 0.984 (≈ 251/255, a white roof facing the light), its sides
    shaded 0.6; the top touches the background along its upper edge."""
    img = torch.ones(2, size, size, 3)
    img[:, 20:44, 16:48] = 0.6
    img[:, 20:28, 16:48] = 0.984
    return img


def test_the_measured_threshold_keeps_a_lit_white_roof_that_the_fixed_one_cuts() -> None:
    img = _lit_box()
    assert measured_threshold(img) == AUTO_THRESHOLD_FLOOR  # a clean background: the floor
    measured = view_masks(img, None, WhiteMaskOptions(measured_threshold(img)))
    fixed = view_masks(img, None)
    outside = torch.ones(2, 64, 64, dtype=torch.bool)
    outside[:, 20:44, 16:48] = False
    assert bool(measured[:, 21:44, 17:47].bool().all())  # the roof but its one-pixel rim (the 3×3 average's)
    assert not bool(measured[outside].bool().any())
    assert not bool(fixed[:, 21:27, 17:47].bool().any())  # the fixed 0.04 takes the roof for background


def test_the_measured_threshold_rises_with_the_backgrounds_noise_and_stops_at_the_fixed_one() -> None:
    img = _lit_box()
    g = torch.Generator().manual_seed(0)
    noisy = (img - 0.006 * torch.randn(img.shape, generator=g).abs()).clamp(0, 1)  # a decoder's background
    t = measured_threshold(noisy)
    assert AUTO_THRESHOLD_FLOOR < t < WhiteMaskOptions.threshold
    outside = torch.ones(2, 64, 64, dtype=torch.bool)
    outside[:, 20:44, 16:48] = False
    assert not bool(view_masks(noisy, None, WhiteMaskOptions(t))[outside].bool().any())  # no speck of noise
    assert bool(view_masks(noisy, None, WhiteMaskOptions(AUTO_THRESHOLD_FLOOR))[outside].bool().any())  # at the floor
    cropped = img.clone()
    cropped[:, :, :6] = 0.3  # an object reaching the image's edge: the border tells nothing, the fixed value holds
    assert measured_threshold(cropped) == WhiteMaskOptions.threshold


def test_a_lit_white_body_is_found_by_its_shading(van) -> None:
    g = syn.mesh_splats(syn.normalized(syn.white_van_mesh()), 5000, lit=True)
    rgba = syn.render_rgba(g, van["cams"], SIZE)
    lit = syn.on_white(rgba)
    body = van["truth"] > 0.5
    white_unlit = float(near_white(van["images"], AUTO_THRESHOLD_FLOOR)[body].float().mean())
    white_lit = float(near_white(lit, AUTO_THRESHOLD_FLOOR)[body].float().mean())
    assert white_unlit > 0.3 and white_lit < 0.05, (white_unlit, white_lit)  # shaded off the background's white
    masks = view_masks(lit, None, WhiteMaskOptions(measured_threshold(lit)))
    assert float(mask_iou(masks, van["truth"]).mean()) > 0.9 > float(mask_iou(van["colour"], van["truth"]).mean()) + 0.2


def test_outline_is_the_mask_pixels_that_touch_the_background() -> None:
    masks = torch.zeros(2, 9, 9)
    masks[0, 2:7, 3:8] = 1  # a 5 × 5 square
    edge = outline(masks)
    assert int(edge[0].sum()) == 16  # its 5 × 5 − 3 × 3 rim
    assert not bool(edge[0, 3:6, 4:7].any())  # the inside
    assert not bool((edge & (masks < 0.5)).any())  # never a background pixel
    assert not bool(edge[1].any())  # an empty mask has none
    masks[1, 1:8, 1:8] = 1
    masks[1, 4, 4] = 0  # a hole: its eight neighbours are outline too
    assert int(outline(masks)[1].sum()) == 24 + 8


def test_a_lift_without_alpha_leaves_the_colour_masks_outline_to_the_photometric_loss(van, monkeypatch) -> None:
    from a3d_cli.lift import fit as fit_mod
    from a3d_cli.lift.pipeline import lift

    seen: dict = {}
    real_fit = fit_mod.fit_static

    def spy(init, images, masks, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen["masks"], seen["unknown"] = masks.cpu(), kwargs.get("unknown")
        return real_fit(init, images, masks, *args, **kwargs)

    monkeypatch.setattr(fit_mod, "fit_static", spy)
    lift(_views(van, alpha=False), _settings(steps=10))
    masks, unknown = seen["masks"], seen["unknown"].cpu()
    edge = outline(masks)
    assert bool(edge.any())
    assert bool(unknown[edge].all())  # no silhouette loss on the antialiased outline
    assert not bool(unknown[(masks > 0.5) & ~edge].any())  # the mask's inside keeps it
