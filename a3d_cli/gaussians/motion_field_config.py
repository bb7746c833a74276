"""The motion field's architecture (`MotionFieldConfig`) and the coarse HexPlane level, without torch.

Option dataclasses hold a `MotionFieldConfig` (`FitSettings.field`, the reconstruct presets), and `a3d info`
reads recorded options back into them: this module imports no torch, so neither do they. The field itself is
`a3d_cli.gaussians.motion_field.MotionField`, which re-exports these names.

Examples:
    >>> MotionFieldConfig().with_coarse_level(True).grid_sizes[0] == COARSE_GRID
    True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from a3d_cli.models.mvvdm.shape import NUM_FRAMES

COARSE_GRID = (12, 12, 12, 8)
"""A coarse HexPlane level (x, y, z, t cells) that both `reconstruct` presets put in front of Animate3D's two: a
cell spans a sixth of the [-1, 1] cube, so one feature moves a whole region — on uniformly coloured or
strongly bending parts the image loss reaches the finer levels only at edges (docs/reconstruct.md, *What
limits each asset*)."""


@dataclass(frozen=True)
class MotionFieldConfig:
    """Everything that defines a motion field's architecture (stored in every motion file).

    Defaults are Animate3D's `motion_recon_frame_16.yaml` / `Gaussian4DModel` values.
    """

    grid_sizes: tuple[tuple[int, int, int, int], ...] = ((50, 50, 50, 8), (100, 100, 100, 16))
    """HexPlane levels, each (R_x, R_y, R_z, R_t); features of the levels are concatenated."""
    grid_channels: int = 16
    """Feature channels per plane (per level); the field's feature size is this × number of levels."""
    spatial_init: tuple[float, float] = (0.1, 0.5)
    """Spatial planes (xy, xz, yz) start uniform in this range (keeps the plane product away from 0)."""
    time_init: float = 1.0
    """Time planes (xt, yt, zt) start at this constant, so the initial features do not depend on t."""
    bounds: float = 1.0
    """Half-size of the cube the grid covers: world x maps to grid x / bounds. The reference samples raw
    world coordinates (bounds 1), so objects must fit roughly in [-1, 1]³; points outside use the border."""
    head_width: int = 32
    """Neurons of each head's hidden layers."""
    head_hidden_layers: int = 1
    """Hidden layers (ReLU) per head; heads are bias-free, output layer zero-initialised."""
    use_global_rigid: bool = True
    """Add the global rigid-motion heads (Euler angles and translation from the mean feature)."""
    use_delta_scale: bool = False
    """Apply the Δlog-scale head (the reference uses it only during SDS refinement)."""
    num_frames: int = NUM_FRAMES
    """Frames of the motion; frame f has time -1 + 2 f / (num_frames - 1)."""
    static_first_frame: bool = True
    """Frame 0 is the static model, never deformed (the reference's `first_frame_trainable: false`)."""

    def __post_init__(self) -> None:
        if not self.grid_sizes or any(len(g) != 4 or min(g) < 2 for g in self.grid_sizes):
            raise ValueError(
                f"grid_sizes must be a non-empty list of (R_x, R_y, R_z, R_t) with every R >= 2, got {self.grid_sizes}"
            )
        if self.grid_channels < 1 or self.head_width < 1 or self.head_hidden_layers < 0:
            raise ValueError("grid_channels and head_width must be >= 1 and head_hidden_layers >= 0")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        if self.bounds <= 0:
            raise ValueError(f"bounds must be > 0, got {self.bounds}")

    @property
    def feature_dim(self) -> int:
        """Size of the concatenated HexPlane feature."""
        return self.grid_channels * len(self.grid_sizes)

    @classmethod
    def tiny(cls, **overrides: Any) -> MotionFieldConfig:
        """A few-kilobyte field of the same code, for tests on CPU."""
        base = dict(grid_sizes=((8, 8, 8, 4), (12, 12, 12, 8)), grid_channels=4, head_width=8)
        base.update(overrides)
        return cls(**base)

    @property
    def has_coarse_level(self) -> bool:
        """True when the first level is `COARSE_GRID`."""
        return self.grid_sizes[0] == COARSE_GRID

    def with_coarse_level(self, on: bool) -> MotionFieldConfig:
        """This field with `COARSE_GRID` in front of its other levels (`on`) or without it."""
        if on == self.has_coarse_level:
            return self
        grids = (COARSE_GRID, *self.grid_sizes) if on else self.grid_sizes[1:]
        return dataclasses.replace(self, grid_sizes=grids)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MotionFieldConfig:
        """Inverse of `to_json`; unknown keys are an error (a file from a newer a3d)."""
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown motion-field config keys {unknown}")
        data["grid_sizes"] = tuple(tuple(int(v) for v in g) for g in data["grid_sizes"])
        data["spatial_init"] = tuple(data["spatial_init"])
        return cls(**data)


__all__ = ["COARSE_GRID", "MotionFieldConfig"]
