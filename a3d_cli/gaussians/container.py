"""The Gaussian-splat container shared by every stage.

Attributes are stored *activated* (linear scales, opacities in [0, 1], RGB colours), which is what the
rasterizer takes (gsplat's convention). File formats convert at their boundary (`gaussians/ply.py` stores
log-scales, opacity logits and SH coefficients, as the 3DGS PLY layout does).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814  # degree-0 real spherical-harmonic constant, 1 / (2·sqrt(pi))


@dataclass(frozen=True)
class Gaussians:
    """N 3D Gaussians.

    Attributes:
        means: [N, 3] centres, world coordinates.
        quats: [N, 4] rotations, wxyz, unit length.
        scales: [N, 3] standard deviations along the rotated axes (linear, not log).
        opacities: [N] in [0, 1].
        colors: [N, 3] base RGB in [0, 1] (the SH degree-0 term: rgb = 0.5 + SH_C0 · f_dc).
        sh_rest: [N, K-1, 3] higher-order SH coefficients, or None for view-independent colour.
    """

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4]
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N]
    colors: Tensor  # [N, 3]
    sh_rest: Tensor | None = None  # [N, K-1, 3]

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,), "colors": (n, 3)}
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"Gaussians.{name} must have shape {list(shape)}, got {list(actual)}")
        if self.sh_rest is not None and (self.sh_rest.ndim != 3 or self.sh_rest.shape[0] != n or self.sh_rest.shape[2] != 3):
            raise ValueError(f"Gaussians.sh_rest must have shape [N, K-1, 3], got {list(self.sh_rest.shape)}")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        """Degree of the spherical harmonics stored (0 when only base colours exist)."""
        if self.sh_rest is None:
            return 0
        return int(round((self.sh_rest.shape[1] + 1) ** 0.5)) - 1

    def sh_coeffs(self) -> Tensor:
        """[N, K, 3] all SH coefficients (DC from `colors`), gsplat's `colors` input with `sh_degree`."""
        dc = ((self.colors - 0.5) / SH_C0).unsqueeze(1)  # [N, 1, 3]
        return dc if self.sh_rest is None else torch.cat([dc, self.sh_rest], dim=1)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Gaussians:
        """A copy on another device (and dtype for floating tensors)."""
        moved = {f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).to(device, dtype)) for f in fields(self)}
        return Gaussians(**moved)

    def subset(self, index: Tensor) -> Gaussians:
        """The Gaussians selected by a boolean mask or an index tensor."""
        picked = {f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[index]) for f in fields(self)}
        return Gaussians(**picked)

    def with_(self, **changes: Tensor | None) -> Gaussians:
        """A copy with some attributes replaced (e.g. deformed means for one frame)."""
        return replace(self, **changes)
