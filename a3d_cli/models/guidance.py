"""Per-frame classifier-free guidance scales for video diffusion, as plain functions the sampling loop calls.

SV3D guides each frame with its own scale (sgm `TrianglePredictionGuider`): weak at the two ends of the
orbit, which sit next to the input view, and strongest half-way round, where the model must invent the
back of the object. With ``v_f = f / (F − 1)``:

    tri(v) = 2·|v/period − floor(v/period + 1/2)|
    scale_f = min + (max − min)·tri(v_f)

For 21 frames, min 1.0 and max 2.5 this is 1.0, 1.15, …, 2.5 (frame 10), …, 1.15, 1.0. SVD's linear ramp
(`LinearPredictionGuider`) is ``scale_f = min + (max − min)·v_f``. Guidance is then
``pred_f = uncond_f + scale_f·(cond_f − uncond_f)``; applied to v or to x0 it is the same, because the
denoiser's x0 is an affine function of v with the same input in both branches.

Examples:
    >>> triangular_cfg_scales(5, 1.0, 2.0).tolist()
    [1.0, 1.5, 2.0, 1.5, 1.0]
    >>> linear_cfg_scales(3, 1.0, 2.0).tolist()
    [1.0, 1.5, 2.0]
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

CFGMode = Literal["triangular", "linear"]


def _frame_positions(num_frames: int) -> Tensor:
    if num_frames < 1:
        raise ValueError(f"num_frames must be ≥ 1, got {num_frames}")
    if num_frames == 1:
        return torch.zeros(1, dtype=torch.float64)
    return torch.arange(num_frames, dtype=torch.float64) / (num_frames - 1)  # [F] in [0, 1]


def triangular_cfg_scales(
    num_frames: int, min_scale: float = 1.0, max_scale: float = 2.5, period: float = 1.0
) -> Tensor:
    """Triangle-wave guidance scale per frame (SV3D's default).

    Args:
        num_frames: F.
        min_scale: scale at the first and last frame (period 1).
        max_scale: scale half-way through.
        period: triangle period in units of the whole clip.

    Returns:
        [F] float32 scales.
    """
    if period <= 0:
        raise ValueError(f"period must be > 0, got {period}")
    v = _frame_positions(num_frames) / period  # [F]
    tri = 2.0 * (v - torch.floor(v + 0.5)).abs()  # [F] in [0, 1]
    return (min_scale + (max_scale - min_scale) * tri).float()


def linear_cfg_scales(num_frames: int, min_scale: float = 1.0, max_scale: float = 2.5) -> Tensor:
    """SVD's linear guidance ramp: `min_scale` at the first frame to `max_scale` at the last.

    Returns:
        [F] float32 scales.
    """
    v = _frame_positions(num_frames)  # [F]
    return (min_scale + (max_scale - min_scale) * v).float()


def cfg_scales(mode: CFGMode, num_frames: int, min_scale: float = 1.0, max_scale: float = 2.5) -> Tensor:
    """The per-frame scales of a named schedule ("triangular" or "linear").

    Returns:
        [F] float32 scales.
    """
    if mode == "triangular":
        return triangular_cfg_scales(num_frames, min_scale, max_scale)
    if mode == "linear":
        return linear_cfg_scales(num_frames, min_scale, max_scale)
    raise ValueError(f"unknown CFG mode {mode!r}; use 'triangular' or 'linear'")


def apply_frame_cfg(uncond: Tensor, cond: Tensor, scales: Tensor) -> Tensor:
    """Combine unconditional and conditional predictions with one scale per frame.

    Args:
        uncond: [B, F, ...] prediction without image conditioning.
        cond: [B, F, ...] prediction with it.
        scales: [F] guidance scale per frame.

    Returns:
        [B, F, ...] ``uncond + scale_f·(cond − uncond)``.
    """
    if uncond.shape != cond.shape:
        raise ValueError(f"uncond {list(uncond.shape)} and cond {list(cond.shape)} differ")
    if scales.ndim != 1 or scales.shape[0] != cond.shape[1]:
        raise ValueError(f"scales must be [F={cond.shape[1]}], got {list(scales.shape)}")
    s = scales.to(cond).view(1, -1, *([1] * (cond.ndim - 2)))  # [1, F, 1, …]
    return uncond + s * (cond - uncond)
