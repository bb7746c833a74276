"""Every knob of the motion fit (`FitSettings`), without torch.

The reconstruct stage's options and presets hold `FitSettings`, and `a3d info` reads recorded options back into
them (`stages/outlook.py`): this module imports no torch, so `a3d info` stays fast. The fit itself is
`a3d_cli.gaussians.motion_fit.fit_motion`, which re-exports `FitSettings`.

Examples:
    >>> FitSettings(steps=100).field.num_frames
    16
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Literal

from a3d_cli.errors import OptionError, require_finite_options
from a3d_cli.gaussians.motion_field_config import MotionFieldConfig
from a3d_cli.io.mask_options import MaskOptions
from a3d_cli.models.mvvdm.shape import NUM_FRAMES, RESOLUTION


@dataclass(frozen=True)
class FitSettings:
    """Every knob of the motion fit. Defaults are Animate3D's `motion_recon_frame_16.yaml` but for `grad_fraction`
    (image gradients reach every splat; Animate3D's 0.1 is the `animate3d` preset's)."""

    steps: int = 800
    """Optimisation steps."""
    steps_per_frame: int = 50
    """Progressive schedule: at step s the frames 1 … min(s // steps_per_frame, 14) + 1 are active."""
    frames_per_step: int = 0
    """Frames rendered per step: 0 = all active frames (reference); k > 0 = the newest active frame plus
    k - 1 random earlier ones (cheaper steps; the reference's mesh path uses 2)."""
    resolution: int = RESOLUTION
    """Render and target size in pixels (targets are resized when the video differs)."""
    max_splats: int = 0
    """Fit on at most this many splats (random subset, scales enlarged to keep coverage; 0 = all). The
    saved field moves every splat: it is a function of position."""
    lr_grid: float = 0.01
    """Adam learning rate of the HexPlane planes (constant)."""
    lr_heads: float = 1e-4
    """Adam learning rate of the Δposition / Δrotation (/ Δscale) heads (constant)."""
    lr_global: float = 1e-3
    """Adam learning rate of the global rigid-motion heads (constant)."""
    adam_eps: float = 1e-15
    """Adam epsilon (the reference's 1e-15)."""
    lambda_rgb: float = 100.0
    """Weight of MSE(render, target composited on grey)."""
    lambda_mask: float = 100.0
    """Weight of MSE(rendered alpha, foreground mask)."""
    lambda_arap: float = 12.0
    """Weight of the local motion prior (`motion_prior`; a sum over sampled points, edges and frames); see
    `arap_anneal`."""
    motion_prior: Literal["arap", "affine"] = "arap"
    """The local motion prior: "arap" (the reference's: neighbourhoods move rigidly, `a3d_cli.gaussians.arap`) or
    "affine" (neighbourhoods of `affine_neighbours` points move by some affine map, so a smooth stretch or shear
    costs nothing, `a3d_cli.gaussians.local_affine`). Both use `lambda_arap`, `arap_anneal` and `arap_samples`."""
    arap_anneal: float = 1.0
    """ARAP weight schedule: at step s of S (s = 0 … S − 1) the weight is `lambda_arap · arap_anneal^(1 − 2s/S)`,
    falling geometrically from `arap_anneal` times `lambda_arap` at the first step through `lambda_arap`
    half-way towards 1/`arap_anneal` of it (the value at s = S, one step past the last). 1 = constant (the reference). Above 1 the field first learns a motion
    that keeps neighbourhoods rigid, then is let go to bend as far as the video asks."""
    arap_neighbours: int = 3
    """k nearest static splats per point in the ARAP term."""
    affine_neighbours: int | None = None
    """k nearest static splats per point in the affine prior (more than 3, or an affine map explains every
    motion); None = the prior's own default (`local_affine.AFFINE_NEIGHBOURS`). The neighbourhood's extent is
    what matters, so the best count grows with the splats fitted (docs/reconstruct.md, *The affine prior*)."""
    arap_samples: int = 512
    """Points scored by ARAP per step (drawn with replacement)."""
    grad_fraction: float = 1.0
    """Fraction of splats whose motion gets gradients from the image losses per step (the reference
    passes a random 10 %; 1.0 = all; see docs/reconstruct.md for the measurement)."""
    hexplane_backend: Literal["auto", "torch", "matmul"] = "auto"
    """HexPlane sampling backend (`a3d_cli.kernels.hexplane`): "torch" (`grid_sample`) or "matmul" (time planes as
    dense matrix products: same numbers, no atomic adds in the backward); "auto" = "matmul" on CUDA, else "torch"."""
    cuda_graphs: bool = True
    """On CUDA, replay each step's field and loss (forward and backward) as CUDA graphs recorded at
    `graph_frame_counts`, and the optimiser step as one more (`a3d_cli.gaussians.motion_step`): same numbers, fewer
    kernel launches and less host time (the eager step is bound by launching them; docs/PERF.md). Ignored on
    the CPU; each part falls back to eager launches if its recording fails."""
    graph_frame_counts: tuple[int, ...] = (4, 8, 12, 15)
    """With `cuda_graphs`, the frame counts the step is recorded at. A step with
    fewer active frames runs in the smallest recording that holds them, the extra frames evaluated by the
    field but given weight 0 in every loss term (same loss and gradients up to float rounding;
    `a3d_cli.gaussians.motion_step`): fewer recordings, more work per step; sizes above the fit's largest
    frame count are lowered to it. Empty = one recording per frame count (15 over the reference schedule).
    The default trades a little padding for fewer recordings (the choice measured in docs/PERF.md)."""
    graph_whole_step: bool = True
    """With `cuda_graphs` and gsplat, record the whole step, the rasterizer included, as one graph per bucket
    (`a3d_cli.gaussians.motion_step.WholeStepPiece`): the renders go through tile lists of a fixed length
    (`a3d_cli.kernels.rasterize_fixed`, the same renders as `gsplat.rasterization`), so no step waits for the
    device and a slower host CPU no longer slows the steps (docs/PERF.md, *The whole step as one graph*).
    False renders through `gsplat.rasterization` between the recorded field and loss pieces (one host read
    per step). Needs `grad_fraction` = 1 (else False)."""
    field: MotionFieldConfig = dc_field(default_factory=MotionFieldConfig)
    """The motion field's architecture."""
    masks: MaskOptions = dc_field(default_factory=MaskOptions)
    """How masks are computed for frames without alpha."""

    def __post_init__(self) -> None:
        require_finite_options(self)  # learning rates and loss weights have no check of their own
        if self.steps < 0 or self.steps_per_frame < 1 or self.frames_per_step < 0:
            raise OptionError("steps must be >= 0, steps_per_frame >= 1 and frames_per_step >= 0.")
        if not 16 <= self.resolution <= 2048:
            raise OptionError(f"--resolution must be between 16 and 2048 pixels (got {self.resolution}).")
        if self.max_splats < 0:
            raise OptionError(f"--max-splats must be >= 0 (got {self.max_splats}).")
        if self.hexplane_backend not in ("auto", "torch", "matmul"):
            raise OptionError(f"hexplane_backend must be auto, torch or matmul (got {self.hexplane_backend!r}).")
        if self.motion_prior not in ("arap", "affine"):
            raise OptionError(f"--motion-prior must be arap or affine (got {self.motion_prior!r}).")
        if self.affine_neighbours is not None and self.affine_neighbours <= 3:
            raise OptionError(f"--affine-neighbours must be more than 3 (got {self.affine_neighbours}).")
        if not (math.isfinite(self.arap_anneal) and self.arap_anneal > 0.0):
            raise OptionError(f"--arap-anneal must be a finite number > 0 (got {self.arap_anneal}).")
        if not 0.0 < self.grad_fraction <= 1.0:
            raise OptionError(f"--grad-fraction must be in (0, 1] (got {self.grad_fraction}).")
        if any(not 1 <= b <= NUM_FRAMES - 1 for b in self.graph_frame_counts):
            raise OptionError(
                f"graph_frame_counts must lie in 1 … {NUM_FRAMES - 1} (got {list(self.graph_frame_counts)})."
            )
        if self.field.num_frames != NUM_FRAMES:
            raise OptionError(f"the motion field must have {NUM_FRAMES} frames (got {self.field.num_frames}).")


__all__ = ["FitSettings"]
