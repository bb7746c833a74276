"""Export clips: the motion field sampled at any rate and length (`--fps`, `--duration`) and loops (`--loop`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import moving_motion_field

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.motion_clip import MotionClip, clip_timing, seam_jumps
from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig
from a3d_cli.kernels.hexplane import TIME_PLANES

FRAMES = 6


def _static(n: int = 40, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    return Gaussians(torch.rand(n, 3, generator=g) - 0.5, quats, torch.full((n, 3), 0.03), torch.ones(n),
                     torch.rand(n, 3, generator=g))  # fmt: skip


def linear_in_time_field(num_frames: int) -> MotionField:
    """A field whose offsets are linear in t: one time plane grows linearly with t, the heads are linear.

    A smooth ground-truth motion whose in-between positions are known to lie between the training frames.
    """
    cfg = MotionFieldConfig.tiny(num_frames=num_frames, head_hidden_layers=0, use_global_rigid=False)
    field = MotionField(cfg, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for level in field.grids:
            xt = level[TIME_PLANES[0]]  # [C, R_t, R_x]
            t = torch.linspace(-1, 1, xt.shape[1])
            xt.copy_((1.0 + 0.5 * t)[None, :, None].expand_as(xt))
        field.delta_xyz[-1].weight.copy_(torch.randn(field.delta_xyz[-1].weight.shape, generator=g))
    return field


def test_default_timing_hits_every_training_frame():
    timing = clip_timing(num_frames=16, motion_fps=8.0, fps=24.0, duration=None)
    assert len(timing) == 46 and timing.key_rate == pytest.approx(24.0) and timing.duration == pytest.approx(15 / 8)
    np.testing.assert_allclose(timing.positions[::3], np.arange(16))
    slow = clip_timing(num_frames=16, motion_fps=8.0, fps=24.0, duration=3.75)  # twice as slow
    assert len(slow) == 91 and slow.duration == pytest.approx(3.75)
    assert clip_timing(16, 8.0, 24.0, None, loop="blend").positions[-1] < 15  # the wrap key is not a frame
    pp = clip_timing(16, 8.0, 24.0, None, loop="pingpong")
    assert len(pp) == 90 and pp.positions.max() == 15 and pp.duration == pytest.approx(2 * 15 / 8)


def test_clip_plays_at_exactly_the_rate_asked_for():
    # 1.875 s × 30 fps = 56.25 keys: the clip keeps 30 fps and lasts 56 / 30 s, not 56 keys at 29.87 fps
    timing = clip_timing(num_frames=16, motion_fps=8.0, fps=30.0, duration=None)
    assert timing.key_rate == 30.0 and len(timing) == 57
    np.testing.assert_allclose(np.diff(timing.seconds), 1 / 30)
    assert timing.duration == pytest.approx(56 / 30) and abs(timing.duration - 15 / 8) <= 0.5 / 30
    assert timing.positions[0] == 0 and timing.positions[-1] == 15  # the whole motion, start to end
    looped = clip_timing(num_frames=16, motion_fps=8.0, fps=30.0, duration=None, loop="blend")
    assert looped.key_rate == 30.0 and looped.duration == pytest.approx(56 / 30)


def test_samples_at_training_times_equal_the_frames():
    field, static = moving_motion_field(FRAMES), _static()
    timing = clip_timing(FRAMES, motion_fps=8.0, fps=24.0, duration=None)
    clip = MotionClip(field, static, timing)
    for j in range(0, len(clip), 3):
        k = j // 3
        expected = field.deform(static, k)
        got = clip.frame(j)
        assert torch.equal(got.means, expected.means) and torch.equal(got.quats, expected.quats)


def test_in_between_samples_lie_between_their_neighbours():
    field, static = linear_in_time_field(FRAMES), _static()
    frames = torch.stack([field.deform(static, k).means for k in range(FRAMES)])  # [F, N, 3]
    assert (frames[2] - frames[1]).abs().max() > 1e-2  # it moves
    clip = MotionClip(field, static, clip_timing(FRAMES, motion_fps=8.0, fps=40.0, duration=None))
    for j in range(len(clip)):
        s = clip.timing.positions[j]
        k = min(int(np.floor(s)), FRAMES - 2)
        lo = torch.minimum(frames[k], frames[k + 1]) - 1e-6
        hi = torch.maximum(frames[k], frames[k + 1]) + 1e-6
        m = clip.frame(j).means
        assert bool(((m >= lo) & (m <= hi)).all()), f"sample {j} at frame position {s} leaves [{k}, {k + 1}]"


def _clip_means(field, static, loop, fps=24.0):  # noqa: ANN001, ANN202
    clip = MotionClip(field, static, clip_timing(FRAMES, 8.0, fps, None, loop=loop))
    return np.stack([clip.frame(j).means.numpy() for j in range(len(clip))]), clip.timing


def test_loop_blend_closes_position_and_velocity_at_the_seam():
    field, static = moving_motion_field(FRAMES), _static()
    radius = float(static.means.norm(dim=1).max())
    off, t_off = _clip_means(field, static, "off")
    blend, t_blend = _clip_means(field, static, "blend")
    j_off = seam_jumps(off, t_off.key_rate, t_off.closes, radius)
    j_blend = seam_jumps(blend, t_blend.key_rate, t_blend.closes, radius)
    assert j_off["position_jump_mean_pct"] > 1.0 and j_blend["position_jump_mean_pct"] == 0.0
    assert j_blend["velocity_jump_mean_pct_per_s"] < 0.2 * j_off["velocity_jump_mean_pct_per_s"]
    # the last exported frame flows into the first: its step to frame 0 is an ordinary step
    steps = np.linalg.norm(np.diff(np.concatenate([blend, blend[:1]]), axis=0), axis=-1).mean(1)  # [K]
    assert steps[-1] < 2.0 * np.median(steps)
    np.testing.assert_allclose(blend[0], off[0], atol=1e-6)  # the clip still starts at the rest pose


def test_pingpong_plays_back_and_forth():
    field, static = moving_motion_field(FRAMES), _static()
    off, _ = _clip_means(field, static, "off", fps=8.0)
    pp, timing = _clip_means(field, static, "pingpong", fps=8.0)
    np.testing.assert_allclose(pp, np.concatenate([off, off[-2:0:-1]]), atol=1e-6)
    jumps = seam_jumps(pp, timing.key_rate, timing.closes, 1.0)
    assert jumps["position_jump_max_pct"] == 0.0


def test_bad_timing_is_refused():
    with pytest.raises(ValueError):
        clip_timing(16, 8.0, 0.0, None)
    with pytest.raises(ValueError):
        clip_timing(16, 8.0, 24.0, -1.0)
    with pytest.raises(ValueError):
        clip_timing(16, 8.0, 24.0, None, loop="bounce")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frame position"):
        moving_motion_field(FRAMES).deform_at(_static(), FRAMES - 0.5)


class _FlippingField:
    """A stand-in field: every splat turns steadily about +Y by up to 40°, and the sample at the clip's end comes
    back as -q (the same rotations, the other hemisphere), as a field's Euler angles can give."""

    def __init__(self, num_frames: int) -> None:
        self.config = MotionFieldConfig.tiny(num_frames=num_frames)
        self.span = num_frames - 1

    def deform_at(self, static: Gaussians, s: float) -> Gaussians:
        half = 0.5 * np.radians(40.0) * s / self.span
        turn = torch.tensor([np.cos(half), 0.0, np.sin(half), 0.0], dtype=torch.float32)
        w1, v1 = turn[0], turn[1:]
        w2, v2 = static.quats[:, :1], static.quats[:, 1:]
        vector = w1 * v2 + w2 * v1 + torch.cross(v1.expand_as(v2), v2, dim=-1)
        quats = torch.cat([w1 * w2 - (v1 * v2).sum(-1, keepdim=True), vector], -1)  # turn ⊗ static
        if s >= self.span:  # only the last sample: the flip falls between the two end samples
            quats = -quats
        return static.with_(quats=quats)


def test_loop_blend_keeps_rotations_when_the_field_returns_the_other_hemisphere():
    static = _static()
    timing = clip_timing(FRAMES, motion_fps=8.0, fps=24.0, duration=None, loop="blend")
    clip = MotionClip(_FlippingField(FRAMES), static, timing)  # type: ignore[arg-type]
    for j in range(len(clip)):
        q = clip.frame(j).quats
        assert torch.isfinite(q).all()
        # the angle between each splat's blended rotation and its static one stays within the motion's 40°
        cos_half = (q * static.quats).sum(-1).abs().clamp(max=1.0)
        assert torch.rad2deg(2 * torch.acos(cos_half)).max() < 45.0, j
