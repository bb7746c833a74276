"""How foreground masks are computed for frames without alpha (`MaskOptions`), without torch.

`FitSettings.masks` holds them, and `a3d info` reads recorded options back into it: this module imports no
torch. The masks themselves are made by `a3d_cli.io.masks`, which re-exports `MaskOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from a3d_cli.models.mvvdm.shape import MVVDM_BACKGROUND


@dataclass(frozen=True)
class MaskOptions:
    """How foreground masks are computed from RGB frames on a known background."""

    background: float = MVVDM_BACKGROUND
    """Grey level of the background, in [0, 1] (MV-VDM renders on 0.5)."""
    threshold: float = 0.06
    """Max-channel colour distance from the background above which a pixel is object (≈ 15/255)."""
    blur: int = 1
    """Radius of the box blur applied to the colour distance (0 = none); averages decoder noise."""
    motion_margin: float = 0.15
    """Foreground must lie within the static silhouette dilated by this fraction of the image size."""
    min_component: float = 2e-4
    """Connected foreground pieces smaller than this fraction of the image area are dropped."""
    ambiguity: float = 0.5
    """Pixels with |distance - threshold| < ambiguity × threshold take the temporal majority label."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.motion_margin < 0 or self.min_component < 0 or self.ambiguity < 0 or self.blur < 0:
            raise ValueError("motion_margin, min_component, ambiguity and blur must be >= 0")


__all__ = ["MaskOptions"]
