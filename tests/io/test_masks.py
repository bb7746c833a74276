"""Foreground masks from RGB-on-grey frames: background, enclosed grey, specks, silhouette band, flicker."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.io.masks import MaskOptions, foreground_masks, mask_from_alpha

H = W = 64


def _disc(cx: float, cy: float, r: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r**2  # [H, W]


def _scene(frames: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A red ring with a grey hole moving right by 1 px per frame, on noisy grey. Returns rgb, true mask."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.full((1, frames, H, W, 3), 0.5)
    truth = torch.zeros(1, frames, H, W, dtype=torch.bool)
    for f in range(frames):
        obj = _disc(28 + f, 32, 14)
        hole = _disc(28 + f, 32, 5)  # grey inside the object (e.g. a grey material): still object
        rgb[0, f][obj] = torch.tensor([0.85, 0.2, 0.25])
        rgb[0, f][hole] = 0.5
        truth[0, f] = obj
    rgb = rgb + torch.randn(rgb.shape, generator=g) * 0.01  # decoder noise on everything
    return rgb.clamp(0, 1), truth


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    return float((a & b).sum()) / float((a | b).sum())


def test_mask_from_alpha_uses_half_threshold():
    assert mask_from_alpha(torch.tensor([0.2, 0.5, 0.51, 1.0])).tolist() == [0.0, 0.0, 1.0, 1.0]


def test_object_with_enclosed_grey_is_foreground():
    rgb, truth = _scene()
    masks = foreground_masks(rgb)
    assert masks.shape == (1, 5, H, W) and set(masks.unique().tolist()) <= {0.0, 1.0}
    for f in range(5):
        assert _iou(masks[0, f], truth[0, f]) > 0.95
        assert masks[0, f, 32, 28 + f] == 1.0  # centre of the grey hole


def test_specks_far_from_the_static_silhouette_are_removed():
    rgb, truth = _scene()
    rgb[0, 2, 4:6, 56:58] = torch.tensor([0.1, 0.9, 0.1])  # 2×2 speck near a corner, far from the object
    rgb[0, 3, 50:58, 50:58] = torch.tensor([0.1, 0.1, 0.9])  # a larger blob, outside the motion band
    static_alpha = _disc(28, 32, 14).float()[None]  # frame 0 silhouette
    masks = foreground_masks(rgb, static_alpha, MaskOptions(motion_margin=0.1))
    assert masks[0, 2, 4:6, 56:58].sum() == 0 and masks[0, 3, 50:58, 50:58].sum() == 0
    assert _iou(masks[0, 3], truth[0, 3]) > 0.95
    # without the silhouette the big blob survives (it is a real connected piece) but the speck does not
    plain = foreground_masks(rgb, None, MaskOptions(min_component=2e-3))
    assert plain[0, 3, 50:58, 50:58].sum() > 0 and plain[0, 2, 4:6, 56:58].sum() == 0


def test_temporal_vote_fixes_one_frame_flicker_of_ambiguous_pixels():
    rgb, truth = _scene(frames=5)
    # frame 2: the object's right edge drifts towards grey (distance 0.05 < threshold 0.06: ambiguous);
    # it touches the background, so border connectivity alone would cut it away
    box = torch.zeros(H, W, dtype=torch.bool)
    box[28:34, 38:46] = True
    drift = box & truth[0, 2]
    rgb[0, 2][drift] = torch.tensor([0.55, 0.5, 0.5])
    stable = drift & truth[0, 1] & truth[0, 3]  # object in the neighbouring frames too
    assert stable.sum() > 15
    # frame 3: a faint bump attached to the object's edge, absent in frames 2 and 4
    bump = (slice(30, 34), slice(46, 50))
    assert not truth[0, 3][bump].any()
    rgb[0, 3][bump] = torch.tensor([0.57, 0.5, 0.5])
    masks = foreground_masks(rgb)
    assert masks[0, 2][stable].mean() > 0.9
    assert masks[0, 3][bump].mean() < 0.1
    no_vote = foreground_masks(rgb, opts=MaskOptions(ambiguity=0.0))
    assert no_vote[0, 2][stable].mean() < 0.5  # the vote is what fixed it
    assert no_vote[0, 3][bump].sum() >= 4  # ... and removed the bump


def _bfs_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-Python 4-connected labelling: (component size per pixel, touches-border per pixel)."""
    h, w = mask.shape
    size = torch.zeros(h, w, dtype=torch.long)
    border = torch.zeros(h, w, dtype=torch.bool)
    seen = torch.zeros(h, w, dtype=torch.bool)
    for y0 in range(h):
        for x0 in range(w):
            if not mask[y0, x0] or seen[y0, x0]:
                continue
            stack, comp = [(y0, x0)], []
            seen[y0, x0] = True
            while stack:
                y, x = stack.pop()
                comp.append((y, x))
                for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True
                        stack.append((yy, xx))
            touches = any(y in (0, h - 1) or x in (0, w - 1) for y, x in comp)
            for y, x in comp:
                size[y, x], border[y, x] = len(comp), touches
    return size, border


def test_run_sweeps_match_a_plain_flood_fill():
    from a3d_cli.io.masks import _component_sizes, flood_from_border

    g = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 20, 23, generator=g) < torch.tensor([0.45, 0.55, 0.6])[:, None, None]
    sizes, reached = _component_sizes(masks), flood_from_border(masks)
    for b in range(3):
        size, border = _bfs_components(masks[b])
        assert torch.equal(sizes[b], size)
        assert torch.equal(reached[b], border & masks[b])


def test_bad_shapes_and_options():
    with pytest.raises(ValueError, match="V, F, H, W, 3"):
        foreground_masks(torch.zeros(4, 16, 8, 8))
    with pytest.raises(ValueError, match="static_alpha"):
        foreground_masks(torch.zeros(2, 3, 8, 8, 3), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError):
        MaskOptions(threshold=0.0)
