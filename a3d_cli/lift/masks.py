"""Foreground masks of orbit views: alpha where the frames have it, else the known white background.

SV3D renders the object on white and gives no alpha. Without alpha, a3d reuses the flat-background
method of `a3d_cli.io.masks` with white as the background colour: a pixel is background when it is within
`threshold` of white (max over RGB, with the 3×3 noise-tolerant average) **and** connected to the image
border through such pixels. So:

- white or light parts *enclosed* by the object (a white belly seen inside the outline) stay foreground;
- light parts that touch the outline stay foreground as long as they differ from the background by more
  than `threshold` — shaded white surfaces (≥ ~4 % darker than the background) do;
- a part exactly as white as the background and touching it cannot be told from it in one image. Two
  things soften that: the visual hull forgives `hull_tolerance` views that call a point background, and
  the fitted splats' own opacity gives the final silhouette (`refine_masks`): where the fit, driven by
  every other view, puts opaque surface on a near-white pixel next to the object, that pixel counts as
  object in the reported masks and in the mask IoU.

Examples:
    >>> masks = view_masks(views.images, views.alphas)  # [V, S, S] in {0, 1}  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from a3d_cli.errors import InputError
from a3d_cli.io.masks import MaskOptions, _dilate, colour_distance, foreground_masks, mask_from_alpha

WHITE = 1.0


@dataclass(frozen=True)
class WhiteMaskOptions:
    """How masks are found on a white background."""

    threshold: float = 0.04
    """Max-channel distance from white above which a pixel is object (≈ 10/255)."""
    min_component: float = 2e-4
    """Foreground pieces smaller than this fraction of the image are dropped (decoder specks)."""


def view_masks(images: Tensor, alphas: Tensor | None, opts: WhiteMaskOptions | None = None) -> Tensor:
    """Binary foreground masks of V views.

    Args:
        images: [V, S, S, 3] RGB in [0, 1] on white.
        alphas: [V, S, S] alpha or None.
        opts: thresholds for the white-background method.

    Returns:
        [V, S, S] float in {0, 1}.
    """
    opts = opts or WhiteMaskOptions()
    if alphas is not None:
        return mask_from_alpha(alphas)
    mo = MaskOptions(background=WHITE, threshold=opts.threshold, blur=1, min_component=opts.min_component, ambiguity=0.0)
    return foreground_masks(images[:, None], None, mo)[:, 0]


def check_masks(masks: Tensor, names: tuple[str, ...], min_fraction: float = 1e-4) -> None:
    """Refuse views whose mask is (nearly) empty: there is no object to lift there.

    Raises:
        InputError: naming the first empty frames.
    """
    frac = masks.flatten(1).mean(dim=1)  # [V]
    empty = [names[i] for i in torch.nonzero(frac < min_fraction).flatten().tolist()]
    if empty:
        raise InputError(
            f"No object found in {', '.join(empty[:4])}{' …' if len(empty) > 4 else ''}: the mask is empty.",
            hint="Frames need the object on a white background (or an alpha channel).",
        )


def near_white(images: Tensor, threshold: float) -> Tensor:
    """[V, S, S] bool: pixels within `threshold` of white (the ones a colour test cannot decide)."""
    return colour_distance(images, WHITE, blur=1) <= threshold


def refine_masks(masks: Tensor, images: Tensor, fitted_alpha: Tensor, threshold: float, band_px: int) -> Tensor:
    """Add near-white pixels next to the object that the fitted splats cover opaquely.

    Args:
        masks: [V, S, S] colour (or alpha) masks.
        images: [V, S, S, 3] the views.
        fitted_alpha: [V, S, S] the fitted splats' alpha in the same views.
        threshold: the white threshold the masks used.
        band_px: only pixels within this many pixels of the colour mask can be added.

    Returns:
        [V, S, S] float in {0, 1}.
    """
    band = _dilate(masks > 0.5, band_px)
    add = band & near_white(images, threshold) & (fitted_alpha > 0.5)
    return ((masks > 0.5) | add).float()


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """Per-view intersection over union of [V, S, S] masks (> 0.5): [V]."""
    a, b = a > 0.5, b > 0.5
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


__all__ = ["WhiteMaskOptions", "check_masks", "mask_iou", "near_white", "refine_masks", "view_masks"]
