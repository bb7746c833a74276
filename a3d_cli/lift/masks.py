"""Foreground masks of orbit views: alpha where the frames have it, else the known white background.

SV3D renders the object on white and gives no alpha. Without alpha, a3d reuses the flat-background
method of `a3d_cli.io.masks` with white as the background colour: a pixel is background when it is within
`threshold` of white (max over RGB, with the 3×3 noise-tolerant average) **and** connected to the image
border through such pixels. So:

- white or light parts *enclosed* by the object (a white belly seen inside the outline) stay foreground;
- light parts that touch the outline stay foreground as long as they differ from the background by more
  than `threshold`, which the stage measures from the frames' background (`measured_threshold`) —
  shaded white surfaces do;
- a part exactly as white as the background and touching it cannot be told from it by colour (an unlit
  white truck body on white). One cue survives: such a part still *holds the object's coloured pieces
  together*. When a view's colour mask falls apart into several sizeable pieces, the near-white pixels
  inside the convex hull of those pieces are **unknown** (`unknown_white`): not object, not background.
  The visual hull is carved only by the confident background (outside that hull), the fit gets no
  silhouette loss there (white splats and no splats explain a white pixel equally well; only the
  photometric loss decides, e.g. a white wall that hides coloured surfaces behind it stays), and the
  fitted splats' own opacity decides them afterwards (`refine_masks`): unknown pixels the splats cover
  opaquely join the mask. A view whose colour mask is one piece has no unknown pixels; there, near-white
  pixels within a narrow band of the mask that the fitted splats cover join it, and the hull tolerance
  forgives one view that drops a part.

The colour mask's outline is not a silhouette either: an antialiased edge pixel that the object covers by
any fraction that moves it more than `threshold` from white is in the mask, so the mask is about half a
pixel fatter than the object all round, and a binary target there asks the splats to cover that pixel
fully while its colour asks for a blend with white. The fit therefore takes the mask's outline
(`outline`: the mask pixels next to the background) out of its silhouette loss, as it does the unknown
pixels, and lets the photometric loss decide how far the splats reach into it; it still carves the hull.

Examples:
    >>> masks = view_masks(views.images, views.alphas)  # [V, S, S] in {0, 1}  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.errors import InputError
from a3d_cli.io.masks import (
    MaskOptions,
    colour_distance,
    dilate_mask,
    flood_from_border,
    foreground_masks,
    mask_from_alpha,
)

WHITE = 1.0


@dataclass(frozen=True)
class WhiteMaskOptions:
    """How masks are found on a white background."""

    threshold: float = 0.04
    """Max-channel distance from white above which a pixel is object (≈ 10/255): the fixed value, and the
    ceiling of `measured_threshold`."""
    min_component: float = 2e-4
    """Foreground pieces smaller than this fraction of the image are dropped (decoder specks)."""
    min_piece: float = 2e-3
    """Colour-mask pieces at least this fraction of the image count as separate pieces of the object
    (`unknown_white`): two or more of them make the near-white pixels between them unknown."""
    support: float = 0.025
    """An unknown pixel needs a coloured pixel below it, in its column or in one at most this fraction of
    the image to the side (`unknown_white`: gaps open downwards, under a body between its wheels, are
    background)."""


AUTO_THRESHOLD_FLOOR = 0.012
"""Lowest threshold `measured_threshold` gives: low enough for a lit white surface facing up (docs/lift.md)."""
NOISE_MARGIN = 3.0
"""`measured_threshold` sets the threshold this many times above the background's own noise."""
BORDER_BAND = 0.03
"""`measured_threshold` reads the background in this fraction of the image along each edge."""


def measured_threshold(images: Tensor, ceiling: float = WhiteMaskOptions.threshold) -> float:
    """The white threshold the frames' own background allows, in [`AUTO_THRESHOLD_FLOOR`, `ceiling`].

    Why: a fixed threshold must sit above the noise of the noisiest background it may meet (a decoder's),
    and every step above the actual noise cuts light surfaces that touch the outline (a white roof lit
    from above is only a few levels under white). The background is read where the object is not: the outer
    `BORDER_BAND` of every view. Its 99.5th percentile colour distance (with `colour_distance`'s 3×3
    average, as the masks use it) times `NOISE_MARGIN` is the threshold: a clean render gets the floor; a
    noisy one, or an object filling more than 0.5 % of the band (one that reaches the edge in most views),
    gets up to `ceiling`.

    Args:
        images: [V, S, S, 3] RGB on white.
        ceiling: the largest threshold returned (the fixed default).
    """
    d = colour_distance(images.float(), WHITE, blur=1)  # [V, S, S]
    b = max(2, round(BORDER_BAND * d.shape[-1]))
    band = torch.cat([d[:, :b].flatten(), d[:, -b:].flatten(), d[:, b:-b, :b].flatten(), d[:, b:-b, -b:].flatten()])
    band = band[:: band.numel() // 2**22 + 1]  # torch.quantile takes at most 2**24 values
    noise = float(torch.quantile(band.cpu(), 0.995))
    return float(min(ceiling, max(AUTO_THRESHOLD_FLOOR, NOISE_MARGIN * noise)))


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


def convex_hull_mask(mask: Tensor) -> Tensor:
    """[S, S] bool: the pixels whose centres lie inside the convex hull of `mask`'s pixels (as squares).

    The hull of a pixel set is the hull of each row's leftmost and rightmost pixel, so scipy's Qhull
    only sees those pixels' corners; a pixel is inside when its centre satisfies every facet's
    half-plane, which in each row bounds x from one side (so each row is one span). An empty mask gives an
    empty hull; a degenerate one (a line) gives the mask.
    """
    import numpy as np
    from scipy.spatial import ConvexHull, QhullError

    m = mask.bool()
    rows = torch.nonzero(m.any(dim=1)).flatten()
    if rows.numel() == 0:
        return torch.zeros_like(m)
    cols = torch.arange(m.shape[1], device=m.device)
    left = torch.where(m[rows], cols, m.shape[1]).min(dim=1).values
    right = torch.where(m[rows], cols, -1).max(dim=1).values
    xs, ys = torch.cat([left, right + 1]), torch.cat([rows, rows])  # the extremes' outer pixel edges
    corners = torch.cat([torch.stack([xs, ys + dy], dim=1) for dy in (0, 1)]).cpu().numpy().astype(np.float64)
    try:
        eq = torch.from_numpy(ConvexHull(corners).equations).to(device=m.device, dtype=torch.float32)  # n·p + c <= 0 inside
    except QhullError:
        return m
    # per row, the facets bound the pixel centres' x from one side each: the hull's span of that row
    y = torch.arange(m.shape[0], device=m.device, dtype=torch.float32)[:, None] + 0.5  # [S, 1]
    nx, ny, c = eq[:, 0], eq[:, 1], eq[:, 2]  # [F]
    rest = ny * y + c  # [S, F]: nx·x + rest <= 0
    flat = nx.abs() < 1e-9
    bound = -rest / torch.where(flat, torch.ones_like(nx), nx)
    inf = torch.full_like(bound, float("inf"))
    x_hi = torch.where(nx > 1e-9, bound, inf).min(dim=1).values  # [S]
    x_lo = torch.where(nx < -1e-9, bound, -inf).max(dim=1).values
    row_ok = ~(flat & (rest > 1e-4)).any(dim=1)  # facets parallel to x that exclude the whole row
    x = cols.float() + 0.5
    inside = row_ok[:, None] & (x[None] >= x_lo[:, None] - 1e-4) & (x[None] <= x_hi[:, None] + 1e-4)
    return inside | m


def sizeable_pieces(mask: Tensor, min_fraction: float) -> int:
    """Number of 8-connected pieces of the [S, S] bool `mask` of at least `min_fraction` of the image."""
    import numpy as np
    from scipy import ndimage

    labels, count = ndimage.label(mask.cpu().numpy().astype(bool), structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= min_fraction * mask.numel()).sum())


def unknown_white(images: Tensor, masks: Tensor, opts: WhiteMaskOptions | None = None) -> Tensor:
    """Near-white pixels that may be object: the ones a white background cannot decide ([V, S, S] bool).

    In a view whose colour mask has two or more sizeable pieces (`opts.min_piece`), something the colour
    test cannot see holds them together; the near-white pixels outside the mask but inside the convex
    hull of its pieces are unknown, if they rest on something: a coloured pixel lies below them in their
    column (or within `opts.support` of the image to the side). That keeps a white roof or body side
    between coloured parts and leaves out the gaps an upright object opens downwards (under a truck's
    body between its wheels), which the orbit's views, all from above the ground, never see closed.
    Views whose mask is one piece have no unknown pixels: their concavities are background (the space
    between a fox's legs).

    Args:
        images: [V, S, S, 3] RGB on white; masks: [V, S, S] their white-background (colour) masks.
        opts: the threshold and piece size.
    """
    opts = opts or WhiteMaskOptions()
    fg = masks > 0.5
    out = torch.zeros_like(fg)
    views = [i for i in range(fg.shape[0]) if sizeable_pieces(fg[i], opts.min_piece) >= 2]
    if not views:
        return out
    sel = fg[views]  # [U, S, S]
    light = near_white(images[views], opts.threshold)
    w = round(opts.support * fg.shape[-1])
    wide = F.max_pool2d(sel.float()[:, None], (1, 2 * w + 1), stride=1, padding=(0, w))[:, 0]
    supported = wide.flip(-2).cummax(dim=-2).values.flip(-2) > 0.5  # a coloured pixel at or below (image rows go down)
    hulls = torch.stack([convex_hull_mask(m) for m in sel])
    out[views] = hulls & supported & light & ~sel
    return out


def outline(masks: Tensor) -> Tensor:
    """[V, S, S] bool: the mask pixels with a pixel outside the mask among their eight neighbours (the
    antialiased outline of a colour mask, whose pixels the object may cover only partly). Outside includes
    unknown pixels (`unknown_white`): where a coloured part meets a white one the views cannot tell, its
    edge gets no silhouette loss either."""
    fg = masks > 0.5
    return fg & dilate_mask(~fg, 1)


def refine_masks(
    masks: Tensor, images: Tensor, fitted_alpha: Tensor, threshold: float, band_px: int, unknown: Tensor | None = None
) -> Tensor:
    """Add near-white pixels that the fitted splats cover opaquely: next to the object, or unknown.

    Args:
        masks: [V, S, S] colour (or alpha) masks.
        images: [V, S, S, 3] the views.
        fitted_alpha: [V, S, S] the fitted splats' alpha in the same views.
        threshold: the white threshold the masks used.
        band_px: near-white pixels within this many pixels of the colour mask can be added.
        unknown: [V, S, S] bool, pixels that can be added wherever they lie (`unknown_white`), or None.
            In views with unknown pixels, what the refined mask then encloses is object too (the colour
            masks' own rule: white enclosed by the object is object).

    Returns:
        [V, S, S] float in {0, 1}.
    """
    candidate = dilate_mask(masks > 0.5, band_px) & near_white(images, threshold)
    if unknown is not None:
        candidate = candidate | unknown
    refined = (masks > 0.5) | (candidate & (fitted_alpha > 0.5))
    if unknown is not None:
        views = unknown.flatten(1).any(dim=1)  # [V]
        if bool(views.any()):
            refined[views] = ~flood_from_border(~refined[views])
    return refined.float()


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """Per-view intersection over union of [V, S, S] masks (> 0.5): [V]."""
    a, b = a > 0.5, b > 0.5
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


__all__ = [
    "WhiteMaskOptions", "check_masks", "convex_hull_mask", "mask_iou", "measured_threshold", "near_white", "outline",
    "refine_masks", "sizeable_pieces", "unknown_white", "view_masks",
]  # fmt: skip
