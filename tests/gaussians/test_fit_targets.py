"""gaussians/fit_targets.py: the frames and masks a motion fit is fitted to."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import reconstruct_static

from a3d_cli.gaussians.fit_targets import fit_targets
from a3d_cli.io.masks import MaskOptions
from a3d_cli.render.cameras import mvvdm_cameras


def test_alpha_frames_give_their_own_masks_resized_with_the_frames():
    alpha = torch.zeros(4, 2, 32, 32)
    alpha[..., 8:24, 8:24] = 0.9
    alpha[..., 0, 0] = 0.4  # below the reference's 0.5: background
    rgb = torch.rand(4, 2, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    targets, masks, source = fit_targets(rgb, alpha, mvvdm_cameras(), reconstruct_static(), 16, MaskOptions())
    assert source == "alpha" and targets.shape == (4, 2, 16, 16, 3) and masks.shape == (4, 2, 16, 16)
    binary = (alpha > 0.5).float().reshape(8, 1, 32, 32)
    torch.testing.assert_close(masks, F.avg_pool2d(binary, 2).reshape(4, 2, 16, 16))  # area-resized 0/1 mask
    shrunk = F.avg_pool2d(rgb.reshape(8, 32, 32, 3).permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    torch.testing.assert_close(targets, shrunk.reshape(4, 2, 16, 16, 3))


def test_frames_without_alpha_are_masked_against_the_grey_and_the_static_silhouette():
    """Grey frames with the object's silhouette painted white: the computed mask covers it and little else."""
    from a3d_cli.gaussians.motion_fit import render_frames

    static, cams = reconstruct_static(), mvvdm_cameras()
    with torch.no_grad():
        _, sil, _ = render_frames(None, static, [0], cams.viewmats, cams.Ks(32, 32), 32)  # [1, V, H, W]
    inside = sil[0] > 0.5  # [V, H, W]
    rgb = torch.full((4, 2, 32, 32, 3), 0.5)
    rgb[inside[:, None].expand(4, 2, 32, 32)] = 1.0
    targets, masks, source = fit_targets(rgb, None, cams, static, 32, MaskOptions())
    assert source == "computed" and torch.equal(targets, rgb)
    hit = (masks > 0.5) == inside[:, None]
    assert inside.any() and hit.float().mean() > 0.97
