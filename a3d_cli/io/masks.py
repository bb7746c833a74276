"""Foreground masks for multi-view video frames that have no alpha channel.

MV-VDM renders the object on a known flat grey (0.5) background and gives no alpha. Animate3D ran a
separate tracking/segmentation model (Track-Anything: SAM + XMem) to get masks; a3d does without one,
using three things it knows:

1. **The background colour.** A pixel is a background *candidate* when its colour is within
   `threshold` (max over RGB) of the grey, either by itself or on average over its 3×3 box. The box
   average ignores one-pixel decoder noise; taking the smaller of the two keeps the object's edge from
   growing by the blur radius.
2. **Connectivity to the image border.** The background is the set of candidates connected to the
   image border (4-connected, filled by row and column sweeps). Grey regions *enclosed* by the object —
   a grey shirt, a shadow inside the silhouette — therefore stay foreground; only grey that touches the
   outside is removed.
3. **The static render's silhouette.** Frame 0 of the video is the static model, and the motion moves
   the object by a bounded amount, so foreground is restricted to the static silhouette dilated by
   `motion_margin` × image size. Specks of noise far from the object disappear, and connected
   foreground components smaller than `min_component` of the image are dropped.
4. **Temporal consistency.** Pixels whose colour distance is ambiguous (within `ambiguity` × threshold
   of the threshold) take the majority label of frames f-1, f, f+1 of the same view; clear-cut pixels
   keep their own label. This removes one-frame flicker at the edge without smearing real motion.

Known limits: grey object parts that touch the silhouette's outline are lost (they connect to the
background); a background that is not flat grey (MV-VDM drifting to a gradient) needs `--video` frames
with alpha instead. Frames that carry alpha use it directly (`alpha > 0.5`, the reference's rule).

Examples:
    >>> masks = foreground_masks(frames, static_alpha)  # frames [V, F, H, W, 3], alpha [V, H, W]  # doctest: +SKIP
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.io.mask_options import MaskOptions  # torch-free, re-exported


def mask_from_alpha(alpha: Tensor) -> Tensor:
    """Binary mask from an alpha channel (the reference's rule, alpha > 0.5): [...] -> [...] float."""
    return (alpha > 0.5).to(torch.float32)


def dilate_mask(mask: Tensor, radius: int) -> Tensor:
    """Binary dilation of [B, H, W] bool by a (2r+1)² square (separable: a row pass, then a column pass)."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    x = F.max_pool2d(mask[:, None].float(), (1, k), stride=1, padding=(0, radius))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0))[:, 0] > 0.5


def _spread_along_runs(value: Tensor, passable: Tensor) -> Tensor:
    """Give every run of `passable` pixels along the last axis the largest `value` found in the run.

    Args:
        value: [B, H, W] float (labels, or 0/1 reached flags).
        passable: [B, H, W] bool; other pixels keep their value and split runs.
    """
    b, h, w = value.shape
    run = torch.cumsum((~passable).to(torch.int64), dim=-1)  # [B, H, W] run number within each row
    gid = (torch.arange(b * h, device=value.device).reshape(b, h, 1) * (w + 1) + run).flatten()  # [B·H·W]
    contrib = torch.where(passable, value, torch.full_like(value, -1.0)).flatten()
    best = torch.full((b * h * (w + 1),), -1.0, dtype=value.dtype, device=value.device)
    best = best.scatter_reduce(0, gid, contrib, reduce="amax", include_self=True)
    return torch.where(passable, best[gid].reshape(b, h, w), value)


def _spread(value: Tensor, passable: Tensor) -> Tensor:
    """Spread the largest value through each 4-connected region of `passable` (row and column sweeps
    until nothing changes; a few sweeps for ordinary shapes, where pixel-by-pixel growth needs hundreds)."""
    while True:
        before = value
        value = _spread_along_runs(value, passable)
        value = _spread_along_runs(value.transpose(1, 2).contiguous(), passable.transpose(1, 2).contiguous())
        value = value.transpose(1, 2).contiguous()
        if torch.equal(value, before):
            return value


def flood_from_border(passable: Tensor) -> Tensor:
    """Pixels of `passable` [B, H, W] bool 4-connected to the image border through `passable`."""
    seed = torch.zeros_like(passable)
    seed[:, 0, :], seed[:, -1, :], seed[:, :, 0], seed[:, :, -1] = True, True, True, True
    return _spread((seed & passable).to(torch.float32), passable) > 0.5


def _component_sizes(mask: Tensor) -> Tensor:
    """For each pixel of `mask` [B, H, W] bool, the size of its 4-connected component (0 off the mask)."""
    b, h, w = mask.shape
    ids = torch.arange(1, b * h * w + 1, device=mask.device, dtype=torch.float64).reshape(b, h, w)
    label = _spread(torch.where(mask, ids, torch.zeros_like(ids)), mask)  # the largest id of each component
    flat = label.long().flatten()
    sizes = torch.bincount(flat, minlength=b * h * w + 1)  # [B·H·W + 1]
    return torch.where(mask, sizes[flat].reshape(b, h, w), torch.zeros_like(flat).reshape(b, h, w))


def colour_distance(frames: Tensor, background: float, blur: int = 1) -> Tensor:
    """Max-channel distance of [..., H, W, 3] frames from a grey level: [..., H, W].

    With `blur` > 0 it is the smaller of the pixel's own distance and its box-averaged distance, so an
    isolated noisy pixel and the pixel just outside an edge both count as background.
    """
    d = (frames - background).abs().amax(dim=-1)  # [..., H, W]
    if blur > 0:
        shape = d.shape
        k = 2 * blur + 1
        avg = F.avg_pool2d(d.reshape(-1, 1, *shape[-2:]), k, stride=1, padding=blur, count_include_pad=False)
        d = torch.minimum(d, avg.reshape(shape))
    return d


def foreground_masks(frames: Tensor, static_alpha: Tensor | None = None, opts: MaskOptions | None = None) -> Tensor:
    """Foreground masks of multi-view video frames rendered on a flat grey background.

    Args:
        frames: [V, F, H, W, 3] RGB in [0, 1].
        static_alpha: [V, H, W] alpha of the static model rendered from the same views (or None).
        opts: thresholds and margins (defaults documented on `MaskOptions`).

    Returns:
        [V, F, H, W] float masks in {0, 1}.
    """
    opts = opts or MaskOptions()
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [V, F, H, W, 3], got {list(frames.shape)}")
    v, f, h, w, _ = frames.shape
    dist = colour_distance(frames.float(), opts.background, opts.blur)  # [V, F, H, W]
    candidate_bg = (dist <= opts.threshold).reshape(v * f, h, w)  # [VF, H, W]

    # 1-2. background = grey pixels connected to the border; everything else is object.
    fg = ~flood_from_border(candidate_bg)  # [VF, H, W]

    # 3. within reach of the static silhouette; drop tiny pieces.
    if static_alpha is not None:
        if static_alpha.shape != (v, h, w):
            raise ValueError(f"static_alpha must have shape [V={v}, H={h}, W={w}], got {list(static_alpha.shape)}")
        band = dilate_mask(static_alpha.to(frames.device) > 0.5, round(opts.motion_margin * max(h, w)))  # [V, H, W]
        fg = fg & band.repeat_interleave(f, dim=0)
    if opts.min_component > 0:
        fg = fg & (_component_sizes(fg) >= max(1.0, opts.min_component * h * w))
    fg = fg.reshape(v, f, h, w)

    # 4. temporal majority for ambiguous pixels.
    if opts.ambiguity > 0 and f >= 3:
        padded = torch.cat([fg[:, :1], fg, fg[:, -1:]], dim=1).float()  # [V, F+2, H, W]
        votes = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]  # [V, F, H, W]
        ambiguous = (dist - opts.threshold).abs() < opts.ambiguity * opts.threshold
        fg = torch.where(ambiguous, votes >= 2, fg)
    return fg.float()
