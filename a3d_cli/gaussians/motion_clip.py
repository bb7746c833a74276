"""An export clip: the continuous motion field sampled at any frame rate and length, optionally made to loop.

The motion field is continuous in time; its F video frames are only the training samples. An export
samples it at `fps` over a clip of `duration` seconds (default: the motion's own span, (F − 1) / its fps),
so slow motion and smooth 24/30 fps playback need no extra training. The clip has n = round(duration · fps)
intervals (at least 1) and plays at exactly `fps`: key j sits at j / fps seconds and frame position
s_j = (F − 1) · j / n, so the motion lasts n / fps seconds, `duration` to within half a key whenever
duration · fps ≥ 0.5 (videos and engines expect the whole-number rate they asked for, not n / duration),
and whenever fps is a multiple of the motion's rate (24 = 3 × 8) every training frame is a key.

Loop modes (`loop`), applied the same way to every export (GLB, vertex cache, PLY sequence, preview):

- "off": keys j = 0 … n; a player that repeats the clip jumps from the last frame back to the first;
- "blend": the motion is corrected by a smooth, time-periodic blend so the last pose and velocity equal the
  first ones, x̃(s) = x(s) − Δx · b(s/S) − Δv · S · g(s/S) with S = F − 1, Δx = x(S) − x(0),
  Δv = x'(S) − x'(0) (differences over one key step, as a player sees them), b(u) = 3u² − 2u³ and g(u) = u³ − u² (so x̃ = x and
  x̃' = x' at s = 0, x̃(S) = x(0), x̃'(S) = x'(0)). The clip keeps keys j = 0 … n − 1, and key n, which
  equals key 0, is where a player wraps (the GLB stores it as a closing key). A motion that already
  returns to its start is left almost unchanged;
- "pingpong": forwards then backwards, 2n intervals over twice the duration: no position jump, but the
  velocity reverses at both ends.

Positions, log-scales and (unnormalised) quaternions are corrected alike; quaternions are renormalised.

Examples:
    >>> timing = clip_timing(num_frames=16, motion_fps=8.0, fps=24.0, duration=None, loop="blend")
    >>> clip = MotionClip(field, static, timing)  # doctest: +SKIP
    >>> frames = [clip.frame(j) for j in range(len(timing))]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_field import MotionField

LoopMode = Literal["off", "blend", "pingpong"]
LOOP_MODES = ("off", "blend", "pingpong")
MAX_FPS = 240.0  # exported key rate, per second
MAX_DURATION = 600.0  # seconds a clip may play over


def check_clip_options(fps: float, duration: float | None, loop_mode: str) -> None:
    """Refuse a key rate, play time or loop closing no export can use (`--fps`, `--duration`, `--loop-mode`).

    Raises:
        OptionError: the value that is out of range, and its range.
    """
    from a3d_cli.errors import OptionError

    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise OptionError(f"--fps must be in (0, {MAX_FPS:g}], got {fps}.")
    if duration is not None and not (math.isfinite(duration) and 0 < duration <= MAX_DURATION):
        raise OptionError(f"--duration must be in (0, {MAX_DURATION:g}] seconds, got {duration}.")
    if loop_mode not in ("blend", "pingpong"):
        raise OptionError(f"--loop-mode must be blend or pingpong, got {loop_mode!r}.")


@dataclass(frozen=True)
class ClipTiming:
    """When each exported frame plays and which motion frame position it shows.

    Attributes:
        positions: [K] frame positions in [0, F − 1] of the K exported frames (before the loop blend).
        seconds: [K] play times.
        key_rate: keys per second (the requested fps); the GLB writers and the preview take it as their `fps`.
        loop: the loop mode.
        num_frames: F, the motion's frame count.
    """

    positions: np.ndarray
    seconds: np.ndarray
    key_rate: float
    loop: LoopMode
    num_frames: int

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def closes(self) -> bool:
        """Whether the clip wraps to frame 0 one key after its last frame (blend, pingpong)."""
        return self.loop != "off"

    @property
    def duration(self) -> float:
        """Seconds from the first key to the last one a player shows (the closing key included)."""
        return (len(self) - (0 if self.closes else 1)) / self.key_rate

    def motion_times(self) -> np.ndarray:
        """[K] the field's time coordinate in [-1, 1] of each frame."""
        return -1.0 + 2.0 * self.positions / (self.num_frames - 1)


def clip_timing(
    num_frames: int, motion_fps: float, fps: float, duration: float | None, loop: LoopMode = "off"
) -> ClipTiming:
    """Frame positions and times of a clip sampled at `fps` over `duration` seconds (see the module doc).

    Args:
        num_frames: F, frames of the motion (≥ 2).
        motion_fps: the motion's own rate; the default duration is (F − 1) / motion_fps.
        fps: sampling rate of the export (> 0).
        duration: seconds the motion's span plays over (to within half a key), or None for its own.
        loop: "off", "blend" or "pingpong".
    """
    if num_frames < 2:
        raise ValueError(f"a clip needs at least 2 motion frames, got {num_frames}")
    if loop not in LOOP_MODES:
        raise ValueError(f"loop must be one of {LOOP_MODES}, got {loop!r}")
    if not (fps > 0 and motion_fps > 0) or (duration is not None and not duration > 0):
        raise ValueError("fps, motion_fps and duration must be > 0")
    span = num_frames - 1
    d = span / motion_fps if duration is None else float(duration)
    n = max(1, round(d * fps))
    rate = float(fps)
    if loop == "off":
        j = np.arange(n + 1)
        positions = span * j / n
    elif loop == "blend":
        j = np.arange(n)
        positions = span * j / n
    else:  # pingpong
        j = np.arange(2 * n)
        positions = span - np.abs(span - span * j / n)
    positions = np.clip(positions.astype(np.float64), 0.0, float(span))
    return ClipTiming(positions=positions, seconds=j / rate, key_rate=rate, loop=loop, num_frames=num_frames)


def blend_basis(u: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(b(u), g(u)) = (3u² − 2u³, u³ − u²): b goes 0 → 1 with zero slope at both ends, g has zero value at
    both ends and slope 0 at u = 0, 1 at u = 1."""
    u = np.asarray(u, dtype=np.float64)
    return 3 * u**2 - 2 * u**3, u**3 - u**2


class PeriodicBlend:
    """A trajectory made cyclic by the time-periodic blend (see the module doc): x̃(s) = x(s) − Δx·b − Δv·S·g.

    Args:
        sample: s ↦ a tuple of arrays or tensors (the state at frame position s ∈ [0, span]).
        span: S, the last frame position.
        step: h, the frame-position step over which the end velocities are taken (one key of the clip).
    """

    def __init__(self, sample: Callable[[float], tuple], span: float, step: float) -> None:
        self.sample, self.span = sample, float(span)
        h = float(step)
        first, second, before_last, last = (sample(s) for s in (0.0, h, self.span - h, self.span))
        # per state: (Δx = x(S) − x(0), Δv = x'(S) − x'(0)), velocities as differences over one step
        self.delta = [
            (e - a, ((e - e1) - (b - a)) / h) for a, b, e1, e in zip(first, second, before_last, last, strict=True)
        ]

    def __call__(self, s: float) -> tuple:
        b, g = blend_basis(s / self.span)
        return tuple(
            x - float(b) * dx - float(g) * self.span * dv
            for x, (dx, dv) in zip(self.sample(s), self.delta, strict=True)
        )


class MotionClip:
    """The splats of each exported frame: the motion field at the clip's positions, loop-blended if asked.

    Args:
        field: the motion field.
        static: the static splats it moves.
        timing: from `clip_timing` (its num_frames must be the field's).
    """

    def __init__(self, field: MotionField, static: Gaussians, timing: ClipTiming) -> None:
        if timing.num_frames != field.config.num_frames:
            raise ValueError(f"timing is for {timing.num_frames} frames, the field has {field.config.num_frames}")
        self.field, self.static, self.timing = field, static, timing
        self._blend: PeriodicBlend | None = None
        if timing.loop == "blend":
            span = timing.num_frames - 1
            step = float(timing.positions[1]) if len(timing) > 1 else float(span)  # one key, in frames
            self._blend = PeriodicBlend(self._state_at, span, step)

    def __len__(self) -> int:
        return len(self.timing)

    def _state_at(self, s: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import torch

        g = self.field.deform_at(self.static, s)
        # q and -q are one rotation: the blend works on components, so every sample it mixes must sit in one
        # hemisphere (the static splat's), or it can pass through the zero quaternion between two of them.
        side = torch.where((g.quats * self.static.quats).sum(-1, keepdim=True) < 0, -1.0, 1.0)  # [N, 1]
        return g.means, g.quats * side, torch.log(g.scales)

    def frame(self, j: int) -> Gaussians:
        """Exported frame j (0 ≤ j < len(self)) as splats."""
        import torch

        s = float(self.timing.positions[j])
        if self._blend is None:
            return self.field.deform_at(self.static, s)
        means, quats, log_scales = self._blend(s)
        g = self.static.with_(means=means, quats=torch.nn.functional.normalize(quats, dim=-1))
        return g.with_(scales=torch.exp(log_scales))


def seam_jumps(frames: np.ndarray, key_rate: float, closes: bool, radius: float) -> dict[str, float]:
    """How much a repeating clip jumps where it wraps, in % of `radius` (and % of radius per second).

    The played sequence is frames 0 … K−1, then frame 0 again (for a closing loop that key is part of the
    clip; otherwise the player jumps there). Position jump: mean and max over points of |x_wrap − x_last|
    beyond a regular step, i.e. the step itself for an open clip and 0 for a closing one. Velocity jump:
    |v_start − v_end| with v_start = (x_1 − x_0) · rate and v_end the velocity entering the wrap.

    Args:
        frames: [K, P, 3] positions of P points in the exported frames (K ≥ 3).
        key_rate: frames per second.
        closes: the clip wraps one key after its last frame (loop blend / pingpong).
        radius: length that 100 % stands for.
    """
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] < 3:
        raise ValueError(f"frames must have shape [K >= 3, P, 3], got {list(x.shape)}")
    if closes:
        seq = np.concatenate([x, x[:1]])  # the closing key repeats frame 0
        pos = np.zeros(x.shape[1])
    else:
        seq = x
        pos = np.linalg.norm(x[0] - x[-1], axis=-1)  # [P] a jump with no time to make it
    v_start = (seq[1] - seq[0]) * key_rate
    v_end = (seq[-1] - seq[-2]) * key_rate
    vel = np.linalg.norm(v_start - v_end, axis=-1)  # [P]
    pct = 100.0 / radius
    return {
        "position_jump_mean_pct": float(pos.mean() * pct),
        "position_jump_max_pct": float(pos.max() * pct),
        "velocity_jump_mean_pct_per_s": float(vel.mean() * pct),
        "velocity_jump_max_pct_per_s": float(vel.max() * pct),
    }


__all__ = [
    "LOOP_MODES",
    "ClipTiming",
    "LoopMode",
    "MotionClip",
    "PeriodicBlend",
    "blend_basis",
    "clip_timing",
    "seam_jumps",
]
