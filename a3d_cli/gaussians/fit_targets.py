"""What a motion fit is fitted to: a multi-view video's frames and foreground masks at the fit's size.

Masks come from the frames' alpha when every frame has one (the reference's alpha > 0.5), else they are
computed against the flat grey background, helped by the static model's silhouette rendered from the same
views (`a3d_cli.io.masks.foreground_masks`). Both are then resized to the fit's render size. The reconstruct
stage and the reconstruct benchmark prepare a fit this one way.

Examples:
    >>> targets, masks, source = fit_targets(video.rgb, video.alpha, cameras, static, 256, MaskOptions())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from a3d_cli.io.images import resize_square
from a3d_cli.io.masks import foreground_masks, mask_from_alpha

if TYPE_CHECKING:
    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.io.masks import MaskOptions
    from a3d_cli.render.cameras import CameraSet


def fit_targets(
    rgb: Tensor, alpha: Tensor | None, cameras: CameraSet, static: Gaussians, resolution: int, mask_options: MaskOptions
) -> tuple[Tensor, Tensor, str]:
    """The fit's target frames and masks at `resolution`, and where the masks came from.

    Args:
        rgb: [V, F, H, W, 3] the video's frames (H = W) on the grey background.
        alpha: [V, F, H, W] their alpha, or None.
        cameras: the V cameras of the video.
        static: the static splats (their device is where the silhouette is rendered and masks computed).
        resolution: the fit's render size S.
        mask_options: thresholds and margins of computed masks.

    Returns:
        (targets [V, F, S, S, 3], masks [V, F, S, S] on the CPU, "alpha" or "computed").
    """
    from a3d_cli.gaussians.motion_fit import render_frames

    if alpha is not None:
        masks, source = mask_from_alpha(alpha), "alpha"
    else:
        device, native = static.means.device, rgb.shape[2]
        with torch.no_grad():
            viewmats, Ks = cameras.viewmats.to(device), cameras.Ks(native, native).to(device)  # noqa: N806
            _, static_alpha, _ = render_frames(None, static, [0], viewmats, Ks, native)  # [1, V, H, W]
        masks, source = foreground_masks(rgb.to(device), static_alpha[0], mask_options).cpu(), "computed"
    targets = resize_square(rgb, resolution)  # [V, F, S, S, 3]
    return targets, resize_square(masks[..., None], resolution)[..., 0], source
